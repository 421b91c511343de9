"""How overlapping chunks become one action per control tick: four modes behind one interface.

- temporal_ensembling: ACT's rule. Every chunk covering the slot contributes its (interpolated)
  action with weight exp(-m * i), i = 0 the oldest such chunk; the weighted mean is the action.
  Kept as running sums per slot (updated once per chunk arrival), so a tick is one row division.
- open_loop: play the active chunk to its end, then switch to the newest chunk covering now.
- receding_horizon: play the first k actions of the active chunk, then switch to the newest.
- latest: always the newest chunk covering now.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np

from corft_ros.core.chunking.buffer import ChunkBuffer, GridChunk
from corft_ros.core.robot import ConfigError

MODES = ("temporal_ensembling", "open_loop", "receding_horizon", "latest")


class Blender(ABC):
    mode: str

    def __init__(self, buffer: ChunkBuffer) -> None:
        self.buffer = buffer

    def add(self, entry: GridChunk, now_slot: int) -> None:  # noqa: B027 - optional hook
        """Called once per chunk just added to the buffer (at or after `now_slot`)."""

    @abstractmethod
    def action(self, slot: int) -> tuple[np.ndarray, int] | None:
        """(action row, seq of the newest chunk behind it) for `slot`, or None when nothing covers it.

        Ticks call this with increasing slots; it may advance the mode's state (the active chunk). The row
        may be a buffer reused by the next call: copy it if you keep it.
        """

    @abstractmethod
    def preview(self, slots: Sequence[int]) -> list[np.ndarray]:
        """Actions for future `slots` (increasing) if no new chunk arrived; stops at the first gap."""

    def clear(self) -> None:
        self.buffer.clear()


class TemporalEnsembling(Blender):
    """Running sums per slot in a ring: sums[s] = Σ w_i a_i(s), wsum[s] = Σ w_i, count[s] = chunks so far.

    A chunk arrival adds its weighted rows to the slots it covers (a few numpy ops on contiguous
    slices); a tick reads one slot. Ring entries are reset lazily: every slot from the current tick up
    to `_ready` holds valid sums (possibly empty); slots beyond are reset when a chunk first reaches them.
    """

    mode = "temporal_ensembling"

    def __init__(self, buffer: ChunkBuffer, dof: int, m: float = 0.01, capacity: int = 512) -> None:
        super().__init__(buffer)
        if not np.isfinite(m):
            raise ConfigError(f"m must be a finite number, got {m}")
        self.m = float(m)
        self.dof = dof
        self._allocate(1 << max(4, (capacity - 1).bit_length()))
        self._ready = -(1 << 62)  # highest slot whose ring entry is valid
        self._out = np.empty(dof)

    def _allocate(self, capacity: int) -> None:
        self._capacity = capacity
        self._mask = capacity - 1
        self._sums = np.zeros((capacity, self.dof))
        self._wsum = np.zeros(capacity)
        # log of the factor every stored sum is divided by: keeps exp(-m * i) finite for m < 0
        self._scale = np.zeros(capacity)
        self._count = np.zeros(capacity, dtype=np.int64)
        self._newest = np.zeros(capacity, dtype=np.int64)

    def _arrays(self) -> tuple[np.ndarray, ...]:
        return self._sums, self._wsum, self._scale, self._count, self._newest

    def _segments(self, first: int, last: int) -> list[tuple[int, int, int]]:
        """Ring slices (start, stop, offset into the slot range) covering slots first..last."""
        start = first & self._mask
        n = last - first + 1
        if start + n <= self._capacity:
            return [(start, start + n, 0)]
        head = self._capacity - start
        return [(start, self._capacity, 0), (0, n - head, head)]

    def _grow(self, needed: int, now_slot: int) -> None:
        old = self._arrays()
        old_mask = self._mask
        self._allocate(1 << needed.bit_length())
        if self._ready >= now_slot:
            live = np.arange(now_slot, self._ready + 1, dtype=np.int64)
            for new, previous in zip(self._arrays(), old, strict=True):
                new[live & self._mask] = previous[live & old_mask]

    def add(self, entry: GridChunk, now_slot: int) -> None:
        if entry.last_slot - now_slot + 1 > self._capacity:
            self._grow(entry.last_slot - now_slot + 1, now_slot)
        if entry.last_slot > self._ready:
            for a, b, _ in self._segments(max(self._ready + 1, now_slot), entry.last_slot):
                self._sums[a:b] = 0.0
                self._wsum[a:b] = 0.0
                self._scale[a:b] = 0.0
                self._count[a:b] = 0
            self._ready = entry.last_slot
        for a, b, offset in self._segments(entry.first_slot, entry.last_slot):
            rows = entry.rows[offset : offset + b - a]
            exponent = self._count[a:b] * -self.m
            if self.m < 0.0:
                # newer chunks weigh more and exp grows without bound: divide the slot's sums so the new
                # weight is at most exp(0) = 1; the normalised mean is unchanged
                scale = self._scale[a:b]
                rescaled = np.maximum(scale, exponent)
                factor = np.exp(scale - rescaled)
                self._sums[a:b] *= factor[:, None]
                self._wsum[a:b] *= factor
                scale[:] = rescaled
                exponent -= rescaled
            weights = np.exp(exponent, out=exponent)
            self._sums[a:b] += weights[:, None] * rows
            self._wsum[a:b] += weights
            self._count[a:b] += 1
            self._newest[a:b] = entry.seq

    def action(self, slot: int) -> tuple[np.ndarray, int] | None:
        if slot > self._ready:
            return None
        p = slot & self._mask
        weight = self._wsum[p]
        if weight == 0.0:
            return None
        np.divide(self._sums[p], weight, out=self._out)
        return self._out, int(self._newest[p])

    def preview(self, slots: Sequence[int]) -> list[np.ndarray]:
        wanted = np.asarray([s for s in slots if s <= self._ready], dtype=np.int64)
        idx = wanted & self._mask
        weights = self._wsum[idx]
        n = len(weights) if weights.all() else int(np.argmin(weights != 0.0))
        return list(self._sums[idx[:n]] / weights[:n, None])

    def clear(self) -> None:
        super().clear()
        self._ready = -(1 << 62)


class _SingleChunkBlender(Blender):
    """Modes that play one chunk at a time; subclasses say when to leave the active chunk."""

    def __init__(self, buffer: ChunkBuffer) -> None:
        super().__init__(buffer)
        self._active: GridChunk | None = None

    def _keep(self, active: GridChunk, newest: GridChunk | None, slot: int) -> bool:
        return True

    def _select(self, active: GridChunk | None, slot: int) -> GridChunk | None:
        if active is not None and active.first_slot <= slot <= active.last_slot:
            newest = self.buffer.newest
            if newest is active or self._keep(active, newest, slot):
                return active
        return self.buffer.newest_covering(slot)

    def action(self, slot: int) -> tuple[np.ndarray, int] | None:
        chosen = self._select(self._active, slot)
        if chosen is None:
            return None
        self._active = chosen
        return chosen.rows[slot - chosen.first_slot], chosen.seq

    def preview(self, slots: Sequence[int]) -> list[np.ndarray]:
        active = self._active
        rows = []
        for slot in slots:
            active = self._select(active, slot)
            if active is None:
                break
            rows.append(active.rows[slot - active.first_slot])
        return rows

    def clear(self) -> None:
        super().clear()
        self._active = None


class OpenLoop(_SingleChunkBlender):
    mode = "open_loop"


class RecedingHorizon(_SingleChunkBlender):
    """Switch once the active chunk's first k actions have been played (k is set on the buffer)."""

    mode = "receding_horizon"

    def _keep(self, active: GridChunk, newest: GridChunk | None, slot: int) -> bool:
        if slot < active.switch_slot:
            return True
        # past the k-th action: the newest chunk covering now takes over; without a newer one, keep playing
        for entry in reversed(self.buffer.chunks):
            if entry.seq <= active.seq:
                return True
            if entry.first_slot <= slot <= entry.last_slot:
                return False
        return True


class Latest(_SingleChunkBlender):
    mode = "latest"

    def _select(self, active: GridChunk | None, slot: int) -> GridChunk | None:
        newest = self.buffer.newest
        if newest is not None and newest.first_slot <= slot <= newest.last_slot:
            return newest
        return self.buffer.newest_covering(slot)


def make_blender(mode: str, buffer: ChunkBuffer, dof: int, m: float = 0.01) -> Blender:
    if mode == "temporal_ensembling":
        return TemporalEnsembling(buffer, dof, m)
    if mode == "open_loop":
        return OpenLoop(buffer)
    if mode == "receding_horizon":
        return RecedingHorizon(buffer)
    if mode == "latest":
        return Latest(buffer)
    raise ConfigError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
