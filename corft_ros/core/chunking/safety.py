"""The last word before a command leaves: position limits, per-joint velocity limits, hold.

Plain Python floats on purpose: for 7 joints a scalar loop beats a chain of numpy calls (each costs
~1 µs of dispatch), and it never allocates arrays per tick.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from corft_ros.core.robot import RobotConfig


@dataclass(frozen=True)
class SafetyLimits:
    lower: tuple[float, ...]
    upper: tuple[float, ...]
    max_velocity: tuple[float, ...]

    @classmethod
    def from_robot(cls, robot: RobotConfig) -> SafetyLimits:
        return cls(
            lower=tuple(j.lower for j in robot.joints),
            upper=tuple(j.upper for j in robot.joints),
            max_velocity=tuple(j.max_velocity for j in robot.joints),
        )


class SafetyFilter:
    """Clamps each command into the position limits and within max_velocity * period of the previous one.

    Since the previous command is inside the limits (a convex box), a velocity-limited step towards a
    clamped target stays inside them: no output is ever outside the limits.
    """

    def __init__(self, limits: SafetyLimits, period: float) -> None:
        self.limits = limits
        self.period = period
        self._lower = list(limits.lower)
        self._upper = list(limits.upper)
        self._step = [v * period for v in limits.max_velocity]
        self._joints = range(len(self._lower))
        self.last: list[float] | None = None
        self.position_clamps = 0  # ticks on which at least one joint hit a position limit
        self.velocity_clamps = 0  # ticks on which at least one joint hit its velocity limit
        self.nonfinite = 0  # ticks whose target had NaN/Inf (held that joint)

    def clamp_position(self, positions: Sequence[float]) -> list[float]:
        return [min(max(float(x), lo), hi) for x, lo, hi in zip(positions, self._lower, self._upper, strict=True)]

    def reset(self, positions: Sequence[float]) -> list[float]:
        """Start holding `positions` (e.g. the measured state), clamped into the limits."""
        self.last = self.clamp_position(positions)
        return self.last

    def apply(self, target: np.ndarray | Sequence[float]) -> list[float]:
        """The safe command for this tick towards `target`; requires reset() first."""
        last = self.last
        assert last is not None, "SafetyFilter.apply before reset"
        values = target.tolist() if isinstance(target, np.ndarray) else list(target)
        lower, upper, step = self._lower, self._upper, self._step
        position_hit = velocity_hit = nonfinite = False
        for j in self._joints:
            x = values[j]
            if x < lower[j]:
                x = lower[j]
                position_hit = True
            elif x > upper[j]:
                x = upper[j]
                position_hit = True
            elif x != x:  # NaN (Inf is caught by the limits above)
                x = last[j]
                nonfinite = True
            delta = x - last[j]
            if delta > step[j]:
                x = last[j] + step[j]
                velocity_hit = True
            elif delta < -step[j]:
                x = last[j] - step[j]
                velocity_hit = True
            values[j] = x
        if position_hit:
            self.position_clamps += 1
        if velocity_hit:
            self.velocity_clamps += 1
        if nonfinite:
            self.nonfinite += 1
        self.last = values
        return values

    def limit_path(self, rows: Sequence[np.ndarray], spacing: Sequence[float]) -> list[list[float]]:
        """Waypoints reachable from the last command: row i comes spacing[i] seconds after row i-1
        (row 0 after the last command), clamped like apply() but without counting or committing."""
        assert self.last is not None, "SafetyFilter.limit_path before reset"
        previous = self.last
        path = []
        velocity = self.limits.max_velocity
        for row, gap in zip(rows, spacing, strict=True):
            point = []
            for x, lo, hi, v, p in zip(row.tolist(), self._lower, self._upper, velocity, previous, strict=True):
                x = p if x != x else min(max(x, lo), hi)
                reach = v * gap
                point.append(min(max(x, p - reach), p + reach))
            path.append(point)
            previous = point
        return path
