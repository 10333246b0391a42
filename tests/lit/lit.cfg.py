# lit configuration: the command-line tools tested the way LLVM tests its own.
import os
import shutil
import sys

import lit.formats

config.name = "lpu"
config.test_format = lit.formats.ShTest(execute_external=False)
config.suffixes = [".lpu", ".test"]
config.excludes = ["Inputs"]
config.test_source_root = os.path.dirname(__file__)
config.test_exec_root = os.path.join(config.test_source_root, ".lit-out")

# The tools of the environment lit runs from (the project's .venv).
bindir = os.path.dirname(sys.executable)
config.environment["PATH"] = os.pathsep.join([bindir, config.environment.get("PATH", os.environ.get("PATH", ""))])
root = os.path.dirname(os.path.dirname(config.test_source_root))
config.substitutions.append(("%examples", os.path.join(root, "examples")))
config.substitutions.append(("%python", sys.executable))
# `filecheck` is PyPI's FileCheck; spell it as LLVM tests do.
config.substitutions.append(("FileCheck", "filecheck"))
for tool in ("readelf", "nm"):
    if shutil.which(tool):
        config.available_features.add(tool)
