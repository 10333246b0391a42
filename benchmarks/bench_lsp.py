"""Language server latency through the real protocol: ``lpu-lsp`` started over stdio, driven by
a pygls client as an editor drives it.

On a generated 5,000-line assembly file (50 kernels), a 1,000-op dataflow function and the
same 1,000 ops in 20 functions it measures, as medians over repeated trials:
  - the baseline: opening the document (a full parse and check, published);
  - a one-character edit to published diagnostics (debounce included), alternating an edit that
    makes a timing error with one that fixes it, so each publish carries a real change;
  - hover latency on a stream operand (the stream timing is served from the last analysis).
Targets (issue 7): edit to diagnostics within 300 ms, hover within 50 ms.

    python benchmarks/bench_lsp.py
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
import time

from lsprotocol import types
from pygls.lsp.client import LanguageClient

KERNELS, PER_KERNEL = 50, 25  # 4 instructions per step: 50 x (25 x 4 + 2) lines ~ 5,150 lines
DATAFLOW_OPS = 1000
TRIALS = 15


def assembly_text() -> str:
    out = ['target "lpu-v1"', "",
           f"reserve @a : tensor<{PER_KERNEL}x320xi8> in MEM_W0",
           f"reserve @b : tensor<{PER_KERNEL}x320xi8> in MEM_E0",
           f"reserve @sum : tensor<{PER_KERNEL}x320xi8> in MEM_E1", ""]
    for k in range(KERNELS):
        out.append(f"kernel @k{k} {{")
        rows = []
        for i in range(PER_KERNEL):
            rows += [(i, 0, f"  @{i} MEM_W0 read.i8 [@a + {i}], s0e"),
                     (i, 1, f"  @{i} MEM_E0 read.i8 [@b + {i}], s1w"),
                     (i + 3, 2, f"  @{i + 3} VXM.0 add.i8 s0e, s1w, s2e"),
                     (i + 7, 3, f"  @{i + 7} MEM_E1 write.i8 [@sum + {i}], s2e")]
        out += [r[2] for r in sorted(rows)]
        out += ["}", ""]
    return "\n".join(out) + "\n"


def dataflow_text() -> str:
    ops = ["add", "sub", "mul", "max", "min"]
    out = ['target "lpu-v1"', "", "func @main(%x: tensor<320xi8>, %y: tensor<320xi8>) -> tensor<320xi8> {",
           "  %v0 = add %x, %y"]
    out += [f"  %v{i} = {ops[i % 5]} %v{i - 1}, %x" for i in range(1, DATAFLOW_OPS)]
    out += [f"  return %v{DATAFLOW_OPS - 1}", "}", ""]
    return "\n".join(out)


def dataflow_functions_text(funcs: int = 20) -> str:
    """The same 1,000 ops in ``funcs`` functions, each calling the one before: an edit inside
    one function re-checks that function only (lpu.dsl.incremental)."""
    ops = ["add", "sub", "mul", "max", "min"]
    per = DATAFLOW_OPS // funcs
    out = ['target "lpu-v1"', ""]
    for f in range(funcs):
        out.append(f"func @f{f}(%x: tensor<320xi8>, %y: tensor<320xi8>) -> tensor<320xi8> {{")
        out.append(f"  %v0 = call @f{f - 1}(%x, %y)" if f else "  %v0 = add %x, %y")
        out += [f"  %v{i} = {ops[i % 5]} %v{i - 1}, %x" for i in range(1, per)]
        out += [f"  return %v{per - 1}", "}", ""]
    return "\n".join(out)


class Bench:
    def __init__(self) -> None:
        self.client = LanguageClient("bench-lsp", "1")
        self.published: dict[tuple[str, int | None], float] = {}

        @self.client.feature(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
        def publish(params: types.PublishDiagnosticsParams):
            self.published[(params.uri, params.version)] = time.perf_counter()
            self.last = params

    async def start(self) -> None:
        await self.client.start_io(sys.executable, "-m", "lpu.lsp.cli")
        await self.client.initialize_async(types.InitializeParams(capabilities=types.ClientCapabilities()))
        self.client.initialized(types.InitializedParams())

    async def wait(self, uri: str, version: int, since: float) -> float:
        while (uri, version) not in self.published:
            await asyncio.sleep(0.0005)
        return self.published[(uri, version)] - since

    async def open(self, uri: str, text: str) -> float:
        t0 = time.perf_counter()
        self.client.text_document_did_open(types.DidOpenTextDocumentParams(types.TextDocumentItem(uri, "lpu", 1, text)))
        return await self.wait(uri, 1, t0)

    async def edit(self, uri: str, version: int, line: int, col: int, new: str) -> float:
        t0 = time.perf_counter()
        self.client.text_document_did_change(types.DidChangeTextDocumentParams(
            types.VersionedTextDocumentIdentifier(version=version, uri=uri),
            [types.TextDocumentContentChangePartial(
                types.Range(types.Position(line, col), types.Position(line, col + 1)), new)]))
        return await self.wait(uri, version, t0)

    async def hover(self, uri: str, line: int, col: int) -> tuple[float, object]:
        t0 = time.perf_counter()
        h = await self.client.text_document_hover_async(types.HoverParams(
            types.TextDocumentIdentifier(uri), types.Position(line, col)))
        return time.perf_counter() - t0, h

    async def stop(self) -> None:
        await self.client.shutdown_async(None)
        self.client.exit(None)
        await self.client.stop()


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


async def run(tmp: str) -> None:
    b = Bench()
    await b.start()
    try:
        # --- assembly -------------------------------------------------------------------------
        text = assembly_text()
        lines = text.split("\n")
        uri = "file://" + os.path.join(tmp, "big.lpu")
        opened = [await b.open(uri + f"?{i}", text) for i in range(3)]  # cold, whole-file checks
        full = statistics.median(opened)
        await b.open(uri, text)
        # the write of step 12 in kernel 25: its cycle digit '1' of '@19' toggles to '2' and back,
        # a timing error and its fix
        target = next(i for i, l in enumerate(lines) if l == "kernel @k25 {")
        line = next(i for i in range(target, len(lines)) if lines[i].startswith("  @19 MEM_E1"))
        edits = []
        for v in range(2, 2 + TRIALS * 2):
            edits.append(await b.edit(uri, v, line, 4, "0" if v % 2 == 0 else "9"))
        errors = len(b.last.diagnostics)
        hovers = []
        for _ in range(TRIALS * 3):
            dt, h = await b.hover(uri, line - 1, lines[line - 1].rindex("s2e") + 1)
            hovers.append(dt)
        assert h is not None and "s2e" in h.contents.value
        edit = statistics.median(edits)
        print(f"lsp asm lines: {len(lines)} lines")
        print(f"lsp asm full check (open, baseline): {ms(full)}")
        print(f"lsp asm edit to diagnostics: {ms(edit)}")
        print(f"lsp asm edit to diagnostics max: {ms(max(edits))}")
        print(f"lsp asm edit/full: {edit / full:.2f}x")
        print(f"lsp asm hover: {ms(statistics.median(hovers))}")
        print(f"lsp asm hover max: {ms(max(hovers))}")
        print(f"lsp asm diagnostics after the last edit: {errors} errors")
        # --- dataflow -------------------------------------------------------------------------
        text = dataflow_text()
        lines = text.split("\n")
        uri = "file://" + os.path.join(tmp, "big_df.lpu")
        full = statistics.median([await b.open(uri + f"?{i}", text) for i in range(3)])  # the first is cold
        await b.open(uri, text)
        line = len(lines) // 2
        col = lines[line].index("%x")  # %x <-> %y: both defined, so the file stays valid
        edits = []
        for v in range(2, 2 + TRIALS):
            edits.append(await b.edit(uri, v, line, col + 1, "y" if v % 2 == 0 else "x"))
        hovers = []
        for _ in range(TRIALS * 3):
            dt, h = await b.hover(uri, line, 3)
            hovers.append(dt)
        assert h is not None and "tensor<320xi8>" in h.contents.value
        edit = statistics.median(edits)
        print(f"lsp dataflow ops: {DATAFLOW_OPS} ops")
        print(f"lsp dataflow full check (open, baseline): {ms(full)}")
        print(f"lsp dataflow edit to diagnostics: {ms(edit)}")
        print(f"lsp dataflow edit/full: {edit / full:.2f}x")
        print(f"lsp dataflow hover: {ms(statistics.median(hovers))}")
        # the same ops in 20 functions: the edit re-checks one of them
        text = dataflow_functions_text()
        lines = text.split("\n")
        uri = "file://" + os.path.join(tmp, "funcs_df.lpu")
        full = statistics.median([await b.open(uri + f"?{i}", text) for i in range(3)])
        await b.open(uri, text)
        line = lines.index("func @f10(%x: tensor<320xi8>, %y: tensor<320xi8>) -> tensor<320xi8> {") + 25
        col = lines[line].index("%x")
        edits = []
        for v in range(2, 2 + TRIALS):
            edits.append(await b.edit(uri, v, line, col + 1, "y" if v % 2 == 0 else "x"))
        edit = statistics.median(edits)
        stats = await b.client.workspace_execute_command_async(types.ExecuteCommandParams("lpu.stats", [uri]))
        print(f"lsp dataflow 20 functions full check (open, baseline): {ms(full)}")
        print(f"lsp dataflow 20 functions re-parsed per edit: {stats['reparsed']} functions")
        print(f"lsp dataflow 20 functions edit to diagnostics: {ms(edit)}")
        print(f"lsp dataflow 20 functions edit/full: {edit / full:.2f}x")
    finally:
        await b.stop()


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(run(tmp))


if __name__ == "__main__":
    main()
