"""One action chunk in canonical joint order, and the checks that decide whether it may be executed."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from corft_ros.core.robot import CommandError, RobotConfig


class ChunkError(ValueError):
    """A chunk that must not be executed; the one-line message names the chunk stamp and the field."""


@dataclass(frozen=True)
class Chunk:
    """Action i (row i of `positions`) applies at `start + i * dt`; it holds until the next one.

    `stamp` is the stamp of the observation the chunk was computed from; `start` is `stamp` plus the
    first point's time_from_start (normally 0). Positions are absolute joint targets, canonical order.
    """

    stamp: float
    dt: float
    positions: np.ndarray  # (horizon, dof) float64, all finite
    start: float

    @property
    def horizon(self) -> int:
        return int(self.positions.shape[0])

    @cached_property
    def slopes(self) -> np.ndarray:
        """positions[i + 1] - positions[i], with a zero last row (the last action holds)."""
        p = self.positions
        slopes = np.empty_like(p)
        np.subtract(p[1:], p[:-1], out=slopes[:-1])
        slopes[-1] = 0.0
        return slopes

    @property
    def end(self) -> float:
        """Time at which the chunk stops covering (the last action holds for one dt)."""
        return self.start + self.horizon * self.dt


def make_chunk(
    robot: RobotConfig,
    stamp: float,
    names: Sequence[str],
    times: Sequence[float],
    rows: Sequence[Sequence[float]],
    default_dt: float | None = None,
) -> Chunk:
    """Validate a chunk as received (joint names, time_from_start per point, positions per point).

    Rejects NaN/Inf, unknown/duplicate/missing joint names, wrong row lengths, non-monotonic or
    unevenly spaced times. Out-of-limit values are accepted: the safety filter clamps (and counts) them.
    """
    label = f"chunk stamped {stamp:.6f}"
    if not math.isfinite(stamp) or stamp <= 0.0:
        raise ChunkError(f"{label}: header.stamp is {stamp} (must be the observation's stamp, > 0)")
    if len(rows) == 0:
        raise ChunkError(f"{label}: points is empty")
    if len(times) != len(rows):
        raise ChunkError(f"{label}: {len(times)} time_from_start values for {len(rows)} points")
    try:
        index = robot.index_of(names)
    except CommandError as exc:
        raise ChunkError(f"{label}: joint_names: {exc}") from None
    if len(index) != robot.dof:
        missing = sorted(set(robot.joint_names) - set(names), key=robot.joint_names.index)
        raise ChunkError(f"{label}: joint_names lacks {', '.join(missing)} (every robot joint is required)")
    width = len(names)
    for i, row in enumerate(rows):
        if len(row) != width:
            raise ChunkError(f"{label}: points[{i}].positions has {len(row)} values, expected {width}")
    received = np.asarray(rows, dtype=np.float64)
    finite = np.isfinite(received)
    if not finite.all():
        i, j = (int(v) for v in np.argwhere(~finite)[0])
        raise ChunkError(f"{label}: points[{i}].positions[{j}] ({names[j]}) is {received[i, j]} (NaN/Inf)")
    stamps = np.asarray(times, dtype=np.float64)
    if not np.isfinite(stamps).all():
        raise ChunkError(f"{label}: time_from_start is not finite")
    steps = np.diff(stamps)
    if steps.size and not (steps > 0).all():
        i = int(np.argmax(steps <= 0)) + 1
        raise ChunkError(
            f"{label}: points[{i}].time_from_start {stamps[i]:.6f} s is not after points[{i - 1}] {stamps[i - 1]:.6f} s"
        )
    if steps.size:
        dt = float(steps.mean())
        spread = np.abs(stamps - (stamps[0] + dt * np.arange(stamps.size)))
        tolerance = max(1e-6, 0.01 * dt)
        if spread.max() > tolerance:
            i = int(np.argmax(spread))
            raise ChunkError(
                f"{label}: points[{i}].time_from_start {stamps[i]:.6f} s breaks the even spacing of {dt:.6f} s"
            )
    else:
        if default_dt is None or not default_dt > 0:
            raise ChunkError(f"{label}: a single-point chunk needs a default dt")
        dt = float(default_dt)
    positions = np.empty_like(received)
    positions[:, index] = received
    return Chunk(stamp=float(stamp), dt=dt, positions=positions, start=float(stamp + stamps[0]))
