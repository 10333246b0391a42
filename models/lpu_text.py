"""The ``.lpu`` text of an imported Llama model: SRAM tensors, ``@main`` (one decode step) and
``@block`` (one transformer block, called once per block with that block's tensors).

One step takes the token id and its position, and returns the greedy next token and the
logits. The residual stream and elementwise math are f32; MXM operands (weights, matmul inputs)
are the import's type (f16 or bf16). The KV cache is two ``reserve`` tensors per block that
``store`` writes at the position; the causal mask's row for the position gives the positions not
yet written -inf.
"""

from __future__ import annotations

import numpy as np

from lpu.models.llama import LlamaConfig


def number(x: float) -> str:
    """The shortest text that reads back as the same f32 (``1e-05``, ``0.125``)."""
    return str(np.float32(x))


# (symbol suffix, GGUF tensor kind) of a block's data tensors, in the module's order: @blk0_wq
# holds blk.0.attn_q
BLOCK_DATA = (("attn_norm", "attn_norm"), ("wq", "attn_q"), ("wk", "attn_k"), ("wv", "attn_v"),
              ("wo", "attn_output"), ("ffn_norm", "ffn_norm"), ("wg", "ffn_gate"), ("wu", "ffn_up"),
              ("wd", "ffn_down"))


def module_text(cfg: LlamaConfig, folder: str, context: int, dtype: str, header: list[str],
                target: str) -> str:
    """The module for ``cfg`` whose ``load``s read ``folder/NAME.npy`` (relative to the file)."""
    d, f, v, hd, kv, g, C, t = cfg.dim, cfg.ffn, cfg.vocab, cfg.head_dim, cfg.kv_heads, cfg.group, context, dtype
    half, kvd = hd // 2, cfg.kv_dim
    eps = number(cfg.rms_eps)
    scale = number(1.0 / np.sqrt(hd))
    shapes = {"attn_norm": f"{d}xf32", "wq": f"{d}x{d}x{t}", "wk": f"{d}x{kvd}x{t}", "wv": f"{d}x{kvd}x{t}",
              "wo": f"{d}x{d}x{t}", "ffn_norm": f"{d}xf32", "wg": f"{d}x{f}x{t}", "wu": f"{d}x{f}x{t}",
              "wd": f"{f}x{d}x{t}"}
    kt_type, v_type = f"tensor<{kv}x{hd}x{C}x{t}>", f"tensor<{kv}x{C}x{hd}x{t}>"

    out = [f"// {line}" if line else "//" for line in header]
    out += [f'target "{target}"', ""]

    def load(name: str) -> str:
        return f'load("{folder}/{name}.npy")'

    out.append(f"data @tok_embd : tensor<{v}x{d}x{t}> = {load('token_embd')}")
    if not cfg.tied:
        out.append(f"data @output : tensor<{d}x{v}x{t}> = {load('output')}")
    out.append(f"data @rope_cos : tensor<{C}x{half}xf32> = {load('rope_cos')}     "
               f"// cos(p · base^(-2i/{hd})), base {number(cfg.rope_base)}")
    out.append(f"data @rope_sin : tensor<{C}x{half}xf32> = {load('rope_sin')}")
    out.append(f"data @causal_mask : tensor<{C}x{C}xf32> = {load('causal_mask')}  // row p: 0 for t <= p, -inf after")
    out.append(f"data @positions : tensor<{C}xf32> = [{', '.join(str(i) for i in range(C))}]  // t")
    out.append(f"data @output_norm : tensor<{d}xf32> = {load('output_norm')}")
    for b in range(cfg.blocks):
        for sym, stem in BLOCK_DATA:
            out.append(f"data @blk{b}_{sym} : tensor<{shapes[sym]}> = {load(f'blk.{b}.{stem}')}")
        note = ["     // the KV cache: keys transposed [kv head, dim, position]",
                "      // values [kv head, position, dim]"] if b == 0 else ["", ""]
        out.append(f"reserve @blk{b}_kt : {kt_type}{note[0]}")
        out.append(f"reserve @blk{b}_v : {v_type}{note[1]}")
    out.append("")

    x_last = f"%x{cfg.blocks}"
    out += [f"func @main(%token: tensor<i32>, %pos: tensor<i32>) -> tensor<1x1xi32>, tensor<1x{v}xf32> {{",
            f"  %E = get @tok_embd : tensor<{v}x{d}x{t}>",
            f"  %e = slice %E, %token {{offsets = [0, 0], sizes = [1, {d}], step = [1, 0]}}",
            f"  %x0 = cast %e : tensor<1x{d}xf32>",
            f"  %ct = get @rope_cos : tensor<{C}x{half}xf32>",
            f"  %cos = slice %ct, %pos {{offsets = [0, 0], sizes = [1, {half}], step = [1, 0]}}",
            f"  %st = get @rope_sin : tensor<{C}x{half}xf32>",
            f"  %sin = slice %st, %pos {{offsets = [0, 0], sizes = [1, {half}], step = [1, 0]}}",
            f"  %mt = get @causal_mask : tensor<{C}x{C}xf32>",
            f"  %mask = slice %mt, %pos {{offsets = [0, 0], sizes = [1, {C}], step = [1, 0]}}"]
    for b in range(cfg.blocks):
        p = f"@blk{b}_"
        # one line: a call's arguments may not span lines (the function's parameters may)
        out.append(f"  %x{b + 1} = call @block(%x{b}, %cos, %sin, %mask, %pos, {p}attn_norm, {p}wq, {p}wk, {p}wv, {p}wo, "
                   f"{p}ffn_norm, {p}wg, {p}wu, {p}wd, {p}kt, {p}v)")
    out += [f"  %gn = get @output_norm : tensor<{d}xf32>",
            f"  %hn = rmsnorm {x_last}, %gn {{eps = {eps}}}",
            f"  %h = cast %hn : tensor<1x{d}x{t}>"]
    if cfg.tied:
        out.append(f"  %Wt = transpose %E {{perm = [1, 0]}} : tensor<{d}x{v}x{t}>   // tied embeddings")
    else:
        out.append(f"  %Wt = get @output : tensor<{d}x{v}x{t}>")
    out += [f"  %logits = matmul %h, %Wt : tensor<1x{v}xf32>",
            "  %next = argmax %logits {axis = -1} : tensor<1x1xi32>",
            "  return %next, %logits",
            "}",
            ""]

    out += [f"func @block(%x: tensor<1x{d}xf32>, %cos: tensor<1x{half}xf32>, %sin: tensor<1x{half}xf32>, %mask: tensor<1x{C}xf32>,",
            f"            %pos: tensor<i32>, @attn_norm: tensor<{d}xf32>, @wq: tensor<{shapes['wq']}>, @wk: tensor<{shapes['wk']}>,",
            f"            @wv: tensor<{shapes['wv']}>, @wo: tensor<{shapes['wo']}>, @ffn_norm: tensor<{d}xf32>,",
            f"            @wg: tensor<{shapes['wg']}>, @wu: tensor<{shapes['wu']}>, @wd: tensor<{shapes['wd']}>,",
            f"            @kt: {kt_type}, @v: {v_type}) -> tensor<1x{d}xf32> {{",
            f"  %g1 = get @attn_norm : tensor<{d}xf32>",
            f"  %hn = rmsnorm %x, %g1 {{eps = {eps}}}",
            f"  %h = cast %hn : tensor<1x{d}x{t}>",
            f"  %wq = get @wq : tensor<{shapes['wq']}>",
            f"  %q32 = matmul %h, %wq : tensor<1x{d}xf32>",
            f"  %q3 = reshape %q32 : tensor<{kv}x{g}x{hd}xf32>                  // [kv head, query head of the group, dim]",
            "  %qr = rope %q3, %cos, %sin {style = \"half\"}",
            f"  %q = cast %qr : tensor<{kv}x{g}x{hd}x{t}>",
            f"  %wk = get @wk : tensor<{shapes['wk']}>",
            f"  %k32 = matmul %h, %wk : tensor<1x{kvd}xf32>",
            f"  %k3 = reshape %k32 : tensor<{kv}x1x{hd}xf32>",
            "  %kr = rope %k3, %cos, %sin {style = \"half\"}",
            f"  %k = cast %kr : tensor<{kv}x1x{hd}x{t}>",
            f"  %wv = get @wv : tensor<{shapes['wv']}>",
            f"  %v32 = matmul %h, %wv : tensor<1x{kvd}xf32>",
            f"  %v16 = cast %v32 : tensor<1x{kvd}x{t}>",
            f"  %vrow = reshape %v16 : tensor<{kv}x1x{hd}x{t}>",
            "  store %vrow, @v, %pos {offsets = [0, 0, 0], step = [0, 1, 0]}",
            f"  %K = get @kt : {kt_type}",
            f"  %V = get @v : {v_type}",
            f"  %sc = matmul %q, %K : tensor<{kv}x{g}x{C}xf32>                // grouped-query attention as batches",
            # the key of this position joins the cache after the scores that read the cache: its
            # own score is a dot product (f16 products are exact in f32), so the scores need not
            # wait for the key's column to be written
            f"  %kcol = transpose %k {{perm = [0, 2, 1]}} : tensor<{kv}x{hd}x1x{t}>",
            "  store %kcol, @kt, %pos {offsets = [0, 0, 0], step = [0, 0, 1]}",
            f"  %qf = cast %q : tensor<{kv}x{g}x{hd}xf32>",
            f"  %kf = cast %k : tensor<{kv}x1x{hd}xf32>",
            "  %qk = mul %qf, %kf",
            "  %sp = reduce_sum %qk {axis = -1}",
            f"  %pt = get @positions : tensor<{C}xf32>",
            "  %pf = cast %pos : tensor<f32>",
            "  %hot = eq %pt, %pf",
            # the cached positions' scores (this one's lane masked) and this position's own:
            # the row maximum of the cached ones need not wait for the dot product
            f"  %mc = select %hot, {number(-1e38)}, %mask                    // below any score, and finite",
            f"  %ss = mul %sc, {scale}                                      // 1/sqrt({hd})",
            "  %sm = add %ss, %mc",
            "  %so = mul %sp, " + scale,
            "  %mr = reduce_max %sm {axis = -1}",
            "  %mx = max %mr, %so",
            # softmax with its division after the product (as flash attention has it): the
            # exponentials' matmul need not wait for their sum, which runs beside it
            "  %sd = sub %sm, %mx",
            "  %ec = exp %sd",
            "  %od = sub %so, %mx",
            "  %eo = exp %od",
            "  %ex = select %hot, %eo, %ec",
            f"  %p = cast %ex : tensor<{kv}x{g}x{C}x{t}>",
            "  %l = reduce_sum %p {axis = -1}",
            f"  %ou = matmul %p, %V : tensor<{kv}x{g}x{hd}xf32>",
            "  %r = recip %l",
            "  %o32 = mul %ou, %r",
            f"  %o3 = cast %o32 : tensor<{kv}x{g}x{hd}x{t}>",
            f"  %o = reshape %o3 : tensor<1x{d}x{t}>",
            f"  %wo = get @wo : tensor<{shapes['wo']}>",
            f"  %a = matmul %o, %wo : tensor<1x{d}xf32>",
            "  %x1 = add %x, %a",
            f"  %g2 = get @ffn_norm : tensor<{d}xf32>",
            f"  %h2n = rmsnorm %x1, %g2 {{eps = {eps}}}",
            f"  %h2 = cast %h2n : tensor<1x{d}x{t}>",
            f"  %wg = get @wg : tensor<{shapes['wg']}>",
            f"  %gate = matmul %h2, %wg : tensor<1x{f}xf32>",
            f"  %wu = get @wu : tensor<{shapes['wu']}>",
            f"  %up = matmul %h2, %wu : tensor<1x{f}xf32>",
            "  %sg = silu %gate",
            "  %gu = mul %sg, %up",
            f"  %f = cast %gu : tensor<1x{f}x{t}>",
            f"  %wd = get @wd : tensor<{shapes['wd']}>",
            f"  %d = matmul %f, %wd : tensor<1x{d}xf32>",
            "  %y = add %x1, %d",
            "  return %y",
            "}",
            ""]
    return "\n".join(out)
