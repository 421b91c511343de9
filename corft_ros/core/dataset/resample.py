"""Timestamps → control ticks. Pure numpy; every function states what it may look at.

- images: the latest frame stamped at or before a tick (never a future frame);
- joint states: linear interpolation between the samples around a tick;
- commands: the command in force at a tick (the latest one sent at or before it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def make_ticks(start_ns: int, stop_ns: int, dt_s: float) -> np.ndarray:
    """Tick times start, start+dt, ... <= stop (int64 ns)."""
    step = int(round(dt_s * 1e9))
    if stop_ns < start_ns or step <= 0:
        return np.zeros(0, dtype=np.int64)
    return start_ns + step * np.arange((stop_ns - start_ns) // step + 1, dtype=np.int64)


def latest_at_or_before(stamps_ns: np.ndarray, ticks_ns: np.ndarray) -> np.ndarray:
    """Index of the last stamp <= each tick (stamps sorted ascending); -1 where there is none."""
    return np.searchsorted(stamps_ns, ticks_ns, side="right") - 1


def interpolate(stamps_ns: np.ndarray, values: np.ndarray, ticks_ns: np.ndarray) -> np.ndarray:
    """Per-column linear interpolation of `values[N, d]` at `ticks_ns` (held flat outside the samples)."""
    base = stamps_ns[0]
    x = (stamps_ns - base).astype(np.float64)
    xt = (ticks_ns - base).astype(np.float64)
    out = np.empty((len(ticks_ns), values.shape[1]), dtype=np.float64)
    for k in range(values.shape[1]):
        out[:, k] = np.interp(xt, x, values[:, k])
    return out


def clock_offsets(log_ns: np.ndarray, header_ns: np.ndarray, at_log_ns: np.ndarray,
                  window_ns: int = 250_000_000, same_clock_ns: int = 20_000_000) -> np.ndarray:
    """The header-clock minus log-clock offset at each `at_log_ns`, from messages stamped on both clocks.

    A message's header - log difference is the clocks' offset minus its transport delay, so the largest difference
    among the messages logged within +-`window_ns` (the one delivered fastest) estimates the offset with the least
    delay in it, and a window follows a slow drift (a sim that runs slightly slower than real time). With one clock
    (a real robot) the result is minus the smallest delay: about zero. Where the window holds no message, the
    nearest one's difference is used. Offsets within `same_clock_ns` are taken as one clock plus transport delay
    (0): below half an action period either way.
    """
    order = np.argsort(log_ns, kind="stable")
    logs = np.asarray(log_ns, dtype=np.int64)[order]
    diffs = (np.asarray(header_ns, dtype=np.int64) - np.asarray(log_ns, dtype=np.int64))[order]
    queries = np.asarray(at_log_ns, dtype=np.int64)
    lo = np.searchsorted(logs, queries - window_ns, side="left")
    hi = np.searchsorted(logs, queries + window_ns, side="right")
    out = np.empty(len(queries), dtype=np.int64)
    for i, (a, b) in enumerate(zip(lo, hi, strict=True)):
        if b > a:
            out[i] = diffs[a:b].max()
        else:
            nearest = min(max(int(a), 0), len(logs) - 1)
            if nearest > 0 and abs(logs[nearest - 1] - queries[i]) < abs(logs[nearest] - queries[i]):
                nearest -= 1
            out[i] = diffs[nearest]
    out[np.abs(out) <= same_clock_ns] = 0
    return out


def sort_unique(stamps_ns: np.ndarray) -> np.ndarray:
    """Order that sorts stamps (stable) and keeps the last of equal stamps."""
    order = np.argsort(stamps_ns, kind="stable")
    s = stamps_ns[order]
    keep = np.ones(len(s), dtype=bool)
    keep[:-1] = s[1:] != s[:-1]
    return order[keep]


@dataclass(frozen=True)
class FrameStats:
    """Per camera: frames recorded, frames estimated missing from gaps in the stamps, ticks that used a
    stale frame (older than `stale_after_ns`), ticks that reused the previous tick's frame."""

    frames: int
    dropped: int
    stale_ticks: int
    repeated_ticks: int
    period_ms: float

    def as_dict(self) -> dict:
        return {
            "frames": self.frames,
            "dropped": self.dropped,
            "stale_ticks": self.stale_ticks,
            "repeated_ticks": self.repeated_ticks,
            "period_ms": round(self.period_ms, 3),
        }


def frame_stats(
    stamps_ns: np.ndarray, ticks_ns: np.ndarray, chosen: np.ndarray, stale_factor: float = 2.5
) -> FrameStats:
    """Drops are gaps longer than 1.5 nominal periods (nominal = median spacing); a tick's frame is stale
    when it is older than `stale_factor` nominal periods."""
    if len(stamps_ns) < 2:
        return FrameStats(len(stamps_ns), 0, 0, 0, 0.0)
    gaps = np.diff(stamps_ns).astype(np.float64)
    period = float(np.median(gaps))
    if period <= 0:
        return FrameStats(len(stamps_ns), 0, 0, 0, 0.0)
    dropped = int(np.sum(np.maximum(np.rint(gaps / period) - 1, 0)))
    ok = chosen >= 0
    age = (ticks_ns[ok] - stamps_ns[chosen[ok]]).astype(np.float64)
    stale = int(np.sum(age > stale_factor * period))
    repeated = int(np.sum(chosen[1:] == chosen[:-1])) if len(chosen) > 1 else 0
    return FrameStats(len(stamps_ns), dropped, stale, repeated, period / 1e6)
