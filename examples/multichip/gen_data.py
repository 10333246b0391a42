"""Writes the weights of gemv_4chips.lpu (deterministic: seed 7): W of 1280 x 1280 i8, cut
into the four 1280 x 320 column blocks the four chips hold. ``python examples/multichip/gen_data.py``."""

import os

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


def main() -> None:
    w = np.random.default_rng(7).integers(-128, 128, size=(1280, 1280)).astype(np.int8)
    for c in range(4):
        np.save(os.path.join(HERE, f"gemv_4chips_w{c}.npy"), w[:, 320 * c:320 * (c + 1)], allow_pickle=False)


if __name__ == "__main__":
    main()
