"""Chunks keyed by time: each chunk is resampled once, on arrival, onto the control loop's time grid.

The control loop ticks at slot k, time k * period (slots are absolute on the clock, so chunks stamped
by another node line up with the loop without any shared tick counter). A chunk covers the slots from
its start to its end; resampling there (linear interpolation between chunk points) makes every later
per-tick lookup an O(1) row read. Slots already in the past when the chunk arrives are dropped: that
is how inference latency is compensated.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np

from corft_ros.core.chunking.chunk import Chunk

# Float seconds near 1.7e9 have a resolution of ~0.24 µs; anything closer than this is "the same time".
TIME_EPSILON = 1e-6


@dataclass(frozen=True)
class ControlGrid:
    period: float

    def slot_at_or_after(self, t: float) -> int:
        return math.ceil((t - TIME_EPSILON) / self.period)

    def slot_of(self, t: float) -> int:
        """The slot whose time is nearest to t."""
        return round(t / self.period)

    def time_of(self, slot: int) -> float:
        return slot * self.period


@dataclass(frozen=True)
class GridChunk:
    """A chunk resampled onto grid slots first_slot .. last_slot (inclusive): rows[slot - first_slot]."""

    seq: int
    chunk: Chunk
    first_slot: int
    last_slot: int
    rows: np.ndarray  # (last_slot - first_slot + 1, dof)
    switch_slot: int  # receding horizon: first slot at or after start + k * dt

    def covers(self, slot: int) -> bool:
        return self.first_slot <= slot <= self.last_slot

    def row(self, slot: int) -> np.ndarray:
        return self.rows[slot - self.first_slot]


def resample(chunk: Chunk, grid: ControlGrid, from_slot: int) -> tuple[int, int, np.ndarray]:
    """(first_slot, last_slot, rows) of `chunk` on `grid`, slots before `from_slot` dropped.

    Between points the value is linear in time; the last point holds for one dt. last < first means
    nothing of the chunk is left.
    """
    first = max(grid.slot_at_or_after(chunk.start), from_slot)
    last = grid.slot_at_or_after(chunk.end) - 1
    if last < first:
        return first, last, np.empty((0, chunk.positions.shape[1]))
    n = last - first + 1
    # fractional chunk index of each slot: u = (slot * period - start) / dt, in [0, horizon) by construction
    u = np.multiply(_counting(n), grid.period / chunk.dt)
    u += (first * grid.period - chunk.start) / chunk.dt
    lower = u.astype(np.intp)
    np.minimum(lower, chunk.horizon - 1, out=lower)  # rounding at the very end
    u -= lower
    rows = chunk.positions.take(lower, axis=0)
    rows += u[:, None] * chunk.slopes.take(lower, axis=0)
    return first, last, rows


_COUNTING = np.arange(4096, dtype=np.float64)


def _counting(n: int) -> np.ndarray:
    return _COUNTING[:n] if n <= _COUNTING.size else np.arange(n, dtype=np.float64)


class ChunkBuffer:
    """The chunks still covering now or the future, oldest first (stamps strictly increasing)."""

    def __init__(self, grid: ControlGrid, receding_k: int = 1, max_chunks: int = 256) -> None:
        self.grid = grid
        self.receding_k = receding_k
        self.max_chunks = max_chunks
        self.chunks: deque[GridChunk] = deque()
        self._seq = 0

    def __len__(self) -> int:
        return len(self.chunks)

    @property
    def newest(self) -> GridChunk | None:
        return self.chunks[-1] if self.chunks else None

    def add(self, chunk: Chunk, from_slot: int) -> GridChunk | None:
        """Resample and keep `chunk`; None when nothing of it is at or after `from_slot`."""
        first, last, rows = resample(chunk, self.grid, from_slot)
        if last < first:
            return None
        self._seq += 1
        switch = self.grid.slot_at_or_after(chunk.start + self.receding_k * chunk.dt)
        entry = GridChunk(self._seq, chunk, first, last, rows, switch)
        self.chunks.append(entry)
        if len(self.chunks) > self.max_chunks:
            self.chunks.popleft()
        return entry

    def prune(self, slot: int) -> None:
        """Forget chunks that ended before `slot`."""
        chunks = self.chunks
        while chunks and chunks[0].last_slot < slot:
            chunks.popleft()

    def newest_covering(self, slot: int) -> GridChunk | None:
        for entry in reversed(self.chunks):
            if entry.first_slot <= slot <= entry.last_slot:
                return entry
        return None

    def clear(self) -> None:
        self.chunks.clear()
