"""docs/simulator.md: its hazard example is what lpu-sim prints for the program it describes."""

from __future__ import annotations

import os
import re

from lpu.linker.imagefile import write_image
from lpu.linker.link import link_objects
from lpu.sim.cli import main as sim_main
from test_sim import HAZARD_CASES, ROOT, obj_of

DOC = os.path.join(ROOT, "docs", "simulator.md")


def test_hazard_example_is_the_output(tmp_path, monkeypatch, capsys):
    doc = open(DOC).read()
    block = re.search(r"## Hazards.*?```\n(.*?)```", doc, re.S).group(1)
    text, _ = HAZARD_CASES["port"]
    (tmp_path / "t.lpu").write_text(text)
    img = link_objects([("t", obj_of(str(tmp_path / "t.lpu"), monkeypatch))])
    monkeypatch.chdir(tmp_path)
    # the line table holds the path as given to lpu-as: relative here, as in the doc
    monkeypatch.setattr(img.chips[0], "files", ["t.lpu"])
    (tmp_path / "t.lpx").write_bytes(write_image(img))
    assert sim_main(["t.lpx"]) == 1
    assert capsys.readouterr().err == block


def test_every_hazard_kind_is_in_the_table():
    from lpu.sim import hazards

    doc = open(DOC).read()
    kinds = [v for k, v in vars(hazards).items() if k.isupper() and isinstance(v, str)]
    assert len(kinds) == 12
    for kind in kinds:
        assert f"\n| {kind} |" in doc, kind
