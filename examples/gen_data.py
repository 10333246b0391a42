"""Writes the .npy data of the dataflow examples (deterministic: seed 5). Run from anywhere:
``python examples/gen_data.py``; the files are committed, so running the examples needs no step."""

import os

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


def main() -> None:
    rng = np.random.default_rng(5)
    files = {
        "gemv_i8_w.npy": rng.integers(-128, 128, size=(320, 640)).astype(np.int8),
        "attention_k.npy": rng.standard_normal((320, 160)).astype(np.float16),
        "attention_v.npy": rng.standard_normal((320, 160)).astype(np.float16),
        "decoder_k.npy": rng.standard_normal((63, 640)).astype(np.float16),
        "decoder_v.npy": rng.standard_normal((63, 640)).astype(np.float16),
        # inputs the docs' commands pass with --input (drawn last: the files above stay as they were)
        "gemv_i8_x.npy": rng.integers(-128, 128, size=320).astype(np.int8),
        "attention_q.npy": rng.standard_normal((1, 160)).astype(np.float16),
    }
    for name, array in files.items():
        np.save(os.path.join(HERE, name), array, allow_pickle=False)


if __name__ == "__main__":
    main()
