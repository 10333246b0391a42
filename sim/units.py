"""The state a unit keeps between instructions: SRAM words of a slice, an MXM plane's weights
and accumulators. Streams keep no state (``streams.py``); VXM and SXM keep none either."""

from __future__ import annotations

import numpy as np



class SramSlice:
    """One MEM slice: ``words`` words of ``lanes`` bytes, allocated on first write.

    Until then the slice is its initial contents: segments of the system image's bytes (and
    ``--input`` tensors), kept as read-only views. A read inside one segment is a view of the
    image, so streaming a weight matrix copies it once (into the value pool), not three times.
    ``storage``, when given, is the zeroed (words, lanes) array that holds the slice from the
    start (the plan engine keeps every slice in one array, so it is written through)."""

    def __init__(self, words: int, lanes: int, storage: np.ndarray | None = None) -> None:
        self.words, self.lanes = words, lanes
        self._data: np.ndarray | None = storage
        self._init: list[tuple[int, np.ndarray]] = []  # (first word, (n, lanes) uint8), later wins
        self.bytes_read = 0
        self.bytes_written = 0
        self.version = 0  # counts writes from outside the program (what the plan's caches check)

    @property
    def data(self) -> np.ndarray:
        """The whole slice as a writable array (materialized on first use)."""
        if self._data is None:
            self._data = np.zeros((self.words, self.lanes), np.uint8)
            for addr, seg in self._init:
                self._data[addr:addr + len(seg)] = seg
            self._init = []
        return self._data

    @property
    def touched(self) -> bool:
        return self._data is not None or bool(self._init)

    def preload(self, addr: int, words: np.ndarray) -> None:
        """Initial contents (image data, inputs): no copy until the slice is written."""
        self.version += 1
        if self._data is not None:
            self._data[addr:addr + len(words)] = words
        else:
            self._init.append((addr, words))
            if len(self._init) > 8:  # a read would search many segments: one array is faster
                self.data

    def span(self, addr: int, n: int) -> np.ndarray:
        """Words addr .. addr+n-1 (in range) as a read-only (n, lanes) array, a view when it can."""
        if self._data is not None:
            return self._data[addr:addr + n]
        end = addr + n
        for a, seg in reversed(self._init):
            b = a + len(seg)
            if a <= addr and end <= b:
                return seg[addr - a:end - a]
            if a < end and addr < b:  # straddles a segment boundary: build the slice
                return self.data[addr:end]
        return np.zeros((n, self.lanes), np.uint8)

    def load(self, index: np.ndarray) -> np.ndarray:
        """(n, w) word addresses → (n, w, lanes) byte planes."""
        self.bytes_read += index.size * self.lanes
        if self._data is None and not self._init:
            return np.zeros(index.shape + (self.lanes,), np.uint8)
        return np.take(self.data, index, axis=0)

    def load_run(self, addr: int, n: int, w: int) -> np.ndarray:
        """n vectors of w words at consecutive addresses from ``addr`` (in range): (n, w, lanes)."""
        self.bytes_read += n * w * self.lanes
        return self.span(addr, n * w).reshape(n, w, self.lanes)

    def store(self, index: np.ndarray, planes: np.ndarray) -> None:
        self.bytes_written += index.size * self.lanes
        flat = index.reshape(-1)
        if len(np.unique(flat)) == len(flat):
            self.data[flat] = planes.reshape(-1, self.lanes)
        else:  # overlapping repetitions: in issue order, the last one wins
            for i in range(len(index)):
                self.data[index[i]] = planes[i]


class Plane:
    """One MXM plane: a shadow and an active weight buffer, accumulator slots.

    An ``lw`` widens the rows it loads to float32 into the shadow buffer (exact for i8, f16
    and bf16), so ``iw`` is a copy into the one active buffer and one BLAS product serves every
    type: an i8 dot product of 320 terms is an integer below 2^24 at every partial sum, so it is
    exact in f32; f16/bf16 products are exact in f32 and summed in f32. A row keeps its weights
    until it is loaded again, so rows not reloaded since the last ``iw`` install their old
    weights again. Widening as rows arrive converts each loaded row once, where widening the
    whole shadow at ``iw`` would convert rows that did not change."""

    def __init__(self, rows: int, cols: int, slots: int) -> None:
        self.rows, self.cols = rows, cols
        self.shadow = np.zeros((rows, cols), np.float32)
        self._owned = True  # False: the shadow is shared (the active buffer, kept rows): copy before writing
        self.next_row = 0
        self.active: np.ndarray | None = None
        self.acc = np.zeros((slots, cols), np.uint32)  # raw bits: i32 or f32
        self.prev = np.zeros((slots, cols), np.uint32)  # the slot before its latest mm lands
        self.lands = np.zeros(slots, np.int64)  # the cycle the latest mm into a slot lands
        self.busy_until = 0
        self.mm_cycles = 0

    def load_rows(self, rows: np.ndarray) -> None:
        """The next rows of the shadow buffer ((n, cols) f32), wrapping after the last row. A
        load of every row at once takes the array as it is (no copy; nothing writes it)."""
        n = len(rows)
        a = self.next_row
        if a == 0 and n == self.rows and rows.dtype == np.float32 and rows.flags.c_contiguous:
            self.shadow, self._owned = rows, False
        else:
            if not self._owned:
                self.shadow, self._owned = self.shadow.copy(), True
            if a + n <= self.rows:
                self.shadow[a:a + n] = rows
            else:
                self.shadow[(a + np.arange(n)) % self.rows] = rows
        self.next_row = int((a + n) % self.rows)

    def install(self) -> None:
        """The shadow becomes the active buffer; both share it until the next load."""
        self.active, self._owned = self.shadow, False
        self.next_row = 0

    def multiply(self, act: np.ndarray, dtype: str, slot: int, add: int, last_cycle: int, occupancy: int):
        products = act.astype(np.float32) @ self.active  # (n, cols)
        n = len(products)
        self.mm_cycles += n * occupancy
        value = self.acc[slot]
        if dtype == "i8":
            # exact integers below 2^24 in f32; int32 sums wrap, as i32 accumulation does
            steps = products.astype(np.int32)
            if add:
                if n > 1:
                    steps = np.cumsum(steps, axis=0, dtype=np.int32)
                steps += value.view(np.int32)
            steps = steps.view(np.uint32)
        elif n == 1:  # one f32 sum, as the loop below makes it
            r = products[0] + value.view(np.float32) if add else products[0]
            self.prev[slot] = value
            self.acc[slot] = r.view(np.uint32)
            self.lands[slot] = last_cycle + occupancy
            return
        else:
            f = products.astype(np.float32)
            steps = np.empty_like(f)
            cur = value.view(np.float32).copy()
            for i in range(n):
                cur = (cur + f[i]).astype(np.float32) if add else f[i]
                steps[i] = cur
            steps = steps.view(np.uint32)
        self.prev[slot] = steps[-2] if n > 1 else value
        self.acc[slot] = steps[-1]
        self.lands[slot] = last_cycle + occupancy

    def emit(self, slot: int, cycles: np.ndarray, clear: bool) -> np.ndarray:
        """The slot as each ``acc`` of the batch sees it (an mm lands ``occupancy`` after issue)."""
        out = np.empty((len(cycles), self.cols), np.uint32)
        for i, c in enumerate(cycles.tolist()):
            out[i] = self.acc[slot] if c >= self.lands[slot] else self.prev[slot]
            if clear:
                self.acc[slot] = 0
                self.prev[slot] = 0
        return out
