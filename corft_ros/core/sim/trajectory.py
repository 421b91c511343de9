"""Joint-space trajectory following with ros2_control joint_trajectory_controller semantics.

A new trajectory replaces the old one; it starts from the current desired state; positions-only waypoints are
interpolated linearly; a start time of 0 means "now"; after the last waypoint the last position is held.
Joints not named by a trajectory keep their current desired position.
"""

from __future__ import annotations

import numpy as np

from corft_ros.core.robot import CommandError


class TrajectoryFollower:
    def __init__(self, initial: np.ndarray) -> None:
        initial = np.asarray(initial, dtype=np.float64)
        self._times = np.array([-np.inf])
        self._knots = initial[None, :].copy()

    def sample(self, t: float) -> np.ndarray:
        times, knots = self._times, self._knots
        if t >= times[-1]:
            return knots[-1].copy()
        i = int(np.searchsorted(times, t, side="right"))
        if i == 0:
            return knots[0].copy()
        t0, t1 = times[i - 1], times[i]
        if not np.isfinite(t0):
            return knots[i - 1].copy() if t < t1 else knots[i].copy()
        alpha = (t - t0) / (t1 - t0)
        return knots[i - 1] + alpha * (knots[i] - knots[i - 1])

    def hold(self, position: np.ndarray) -> None:
        """Replace whatever is running by a constant target (forward_command_controller semantics)."""
        self._times = np.array([-np.inf])
        self._knots = np.asarray(position, dtype=np.float64)[None, :].copy()

    def set_trajectory(
        self,
        now: float,
        start_time: float,
        times_from_start: np.ndarray,
        positions: np.ndarray,
        joint_indices: np.ndarray,
    ) -> None:
        """Replace the running trajectory. `positions` is N x len(joint_indices) in the message's joint order."""
        times_from_start = np.asarray(times_from_start, dtype=np.float64)
        positions = np.asarray(positions, dtype=np.float64)
        if times_from_start.size == 0:
            raise CommandError("trajectory has no points")
        if np.any(np.diff(times_from_start) <= 0):
            raise CommandError("points[].time_from_start must increase strictly")
        if times_from_start[0] < 0:
            raise CommandError("points[0].time_from_start is negative")
        start = now if start_time <= 0 else start_time
        absolute = start + times_from_start
        current = self.sample(now)
        future = absolute > now
        if not future.any():
            # Entirely in the past: go to the final point (what a late message most plausibly meant).
            self.hold(_merge(current, joint_indices, positions[-1]))
            return
        knots = [current]
        times = [now]
        for t_abs, point in zip(absolute[future], positions[future], strict=True):
            knots.append(_merge(current, joint_indices, point))
            times.append(t_abs)
        self._times = np.array(times)
        self._knots = np.vstack(knots)

    @property
    def end_time(self) -> float:
        return float(self._times[-1])


def _merge(base: np.ndarray, indices: np.ndarray, values: np.ndarray) -> np.ndarray:
    merged = base.copy()
    merged[indices] = values
    return merged
