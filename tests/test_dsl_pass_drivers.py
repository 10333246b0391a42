"""The single-walk pass drivers (lpu.dsl.passes.walk) against xDSL's own passes and pattern
walker: after each pass, the printed IR (ops, order, names, attributes) is the same."""

import glob
import os
import sys

import pytest
from xdsl.pattern_rewriter import GreedyRewritePatternApplier, PatternRewriteWalker
from xdsl.transforms.canonicalize import CanonicalizePass as XdslCanonicalize
from xdsl.transforms.common_subexpression_elimination import CommonSubexpressionElimination as XdslCse
from xdsl.transforms.dead_code_elimination import DeadCodeElimination as XdslDce

from lpu.dsl.frontend import parse_module
from lpu.dsl.passes import context, run_pipeline
from lpu.dsl.passes.decompose import _PATTERNS as DECOMPOSE_PATTERNS
from lpu.dsl.passes.walk import CanonicalizePass, CsePass, DcePass
from lpu.dsl.printer import print_module
from dsl_helpers import EXAMPLES, func

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "benchmarks"))
from bench_frontend import generate  # noqa: E402


class XdslDecompose:
    """df-decompose as it was driven before: xDSL's walker, no recursion into new ops."""

    def apply(self, ctx, module):
        PatternRewriteWalker(GreedyRewritePatternApplier(list(DECOMPOSE_PATTERNS)),
                             apply_recursively=False).rewrite_module(module)


def _sources():
    out = {os.path.basename(p): open(p).read() for p in sorted(glob.glob(os.path.join(EXAMPLES, "*.lpu")))}
    out["generated"] = generate(600, funcs=3)
    # dead code, duplicates, foldable constants, chains, a loop (nested region) and a dead loop body op
    out["handmade"] = func(
        "%c1 = constant {value = 2.0} : tensor<4x320xf16>\n%c2 = constant {value = 3.0} : tensor<4x320xf16>\n"
        "%s = add %c1, %c2\n%dead = exp %x\n%a = mul %x, %s\n%b = mul %x, %s\n%r1 = reshape %a : tensor<1280xf16>\n"
        "%r2 = reshape %r1 : tensor<4x320xf16>\n%t = transpose %r2\n%t2 = transpose %t\n%q = cast %t2 : tensor<4x320xf16>\n"
        "%l = for %i = 0 to 2 iter(%acc = %q) : tensor<4x320xf16> {\n  %u = mul %x, %s\n  %w = neg %u\n"
        "  %n = add %acc, %u\n  yield %n\n}\n%o = add %l, %b\nreturn %o")
    # stores and gets of SRAM tensors (never merged, removed or reordered), through a symbol
    # parameter, and the decoder's composites
    out["kv-cache"] = (
        "reserve @k : tensor<4x8xf16>\n\n"
        "func @put(%v: tensor<1x8xf16>, %i: tensor<i32>, @t: tensor<4x8xf16>) -> tensor<4x8xf16> {\n"
        "  %a = get @t\n  store %v, @t, %i {offsets = [0, 0], step = [1, 0]}\n  %b = get @t\n  %c = get @t\n"
        "  %s = add %b, %c\n  %d = add %a, %s\n  %z = constant {value = 2} : tensor<i32>\n"
        "  store %v, @t, %z {offsets = [0, 0], step = [1, 0]}\n  %e = erf %d\n  %g = gelu %e {approximate = \"none\"}\n"
        "  %m = argmax %g {axis = 0}\n  %sg = sign %g\n  %sm = softmax %sg {axis = 0}\n"
        "  %h = slice %sm {offsets = [0, 0], sizes = [4, 4]}\n  %r = rope %sm, %h, %h\n  %unused = get @t\n  return %r\n}\n\n"
        "func @main(%v: tensor<1x8xf16>, %i: tensor<i32>) -> tensor<4x8xf16> {\n  %r = call @put(%v, %i, @k)\n"
        "  return %r\n}\n")
    return out


SOURCES = _sources()
STAGES = [
    ("df-decompose", XdslDecompose, None),
    ("canonicalize", XdslCanonicalize, CanonicalizePass),
    ("cse", XdslCse, CsePass),
    ("dce", XdslDce, DcePass),
]


@pytest.mark.parametrize("prefix", ["", "inline,unroll"])
@pytest.mark.parametrize("name", list(SOURCES))
def test_each_pass_prints_the_same_ir_as_xdsl(name, prefix):
    ours = parse_module(SOURCES[name], name)
    theirs = parse_module(SOURCES[name], name)
    if prefix:
        run_pipeline(ours, prefix)
        run_pipeline(theirs, prefix)
    ctx = context()
    for pass_name, xdsl_pass, _ in STAGES:
        run_pipeline(ours, pass_name)
        xdsl_pass().apply(ctx, theirs)
        assert print_module(ours) == print_module(theirs), f"{name}: after {pass_name}"
