"""Validation of incoming joint commands (controller-shaped inputs), ROS-free.

Every rejection is a CommandError whose one-line message names the field that was wrong.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from corft_ros.core.robot import CommandError, RobotConfig, check_finite


@dataclass(frozen=True)
class TrajectoryCommand:
    joint_indices: np.ndarray  # canonical indices of the message's joints, in message order
    times_from_start: np.ndarray  # (N,)
    positions: np.ndarray  # (N, len(joint_indices)) in message order


def parse_trajectory(
    robot: RobotConfig, joint_names: Sequence[str], times_from_start: Sequence[float],
    positions: Sequence[Sequence[float]],
) -> TrajectoryCommand:
    if len(joint_names) == 0:
        raise CommandError("joint_names is empty")
    indices = robot.index_of(joint_names)
    if len(positions) == 0:
        raise CommandError("points is empty")
    rows = []
    for i, row in enumerate(positions):
        arr = np.asarray(row, dtype=np.float64)
        if arr.shape != (len(indices),):
            raise CommandError(f"points[{i}].positions has {arr.size} values for {len(indices)} joint_names")
        names = [robot.joint_names[j] for j in indices]
        check_finite(arr, names, f"points[{i}].positions")
        low, high = robot.lower[indices], robot.upper[indices]
        out = np.nonzero((arr < low) | (arr > high))[0]
        if out.size:
            j = int(out[0])
            raise CommandError(
                f"points[{i}].positions[{j}] ({names[j]}) = {arr[j]:.4f} is outside [{low[j]:.4f}, {high[j]:.4f}]"
            )
        rows.append(arr)
    times = np.asarray(times_from_start, dtype=np.float64)
    check_finite(times, [f"points[{i}]" for i in range(times.size)], "time_from_start")
    if times[0] < 0:
        raise CommandError("points[0].time_from_start is negative")
    if np.any(np.diff(times) <= 0):
        bad = int(np.nonzero(np.diff(times) <= 0)[0][0]) + 1
        raise CommandError(f"points[{bad}].time_from_start does not increase")
    # A single point at time_from_start 0 is valid: joint_trajectory_controller (Humble → Kilted) accepts it and
    # goes there at once; so does the sim.
    return TrajectoryCommand(joint_indices=indices, times_from_start=times, positions=np.vstack(rows))


def parse_forward(robot: RobotConfig, controller_indices: np.ndarray, data: Sequence[float]) -> np.ndarray:
    """A forward_command_controller command (controller joint order) -> full joint vector in canonical order."""
    arr = np.asarray(data, dtype=np.float64)
    if arr.shape != (len(controller_indices),):
        raise CommandError(f"data has {arr.size} values, expected {len(controller_indices)} (controller joints)")
    names = [robot.joint_names[j] for j in controller_indices]
    check_finite(arr, names, "data")
    low, high = robot.lower[controller_indices], robot.upper[controller_indices]
    out = np.nonzero((arr < low) | (arr > high))[0]
    if out.size:
        j = int(out[0])
        raise CommandError(f"data[{j}] ({names[j]}) = {arr[j]:.4f} is outside [{low[j]:.4f}, {high[j]:.4f}]")
    return arr


def parse_intervention(robot: RobotConfig, joint_names: Sequence[str],
                       positions: Sequence[float]) -> list[float] | None:
    """A takeover source's sensor_msgs/JointState → a target in canonical order (NaN: a joint it does not set, which
    holds), or None for an empty message (the source lets go). Names must be the robot's, each once; a value may be
    NaN (hold that joint) but not ±Inf. Targets outside the limits are clamped by the executor, like chunks."""
    if len(joint_names) == 0 and len(positions) == 0:
        return None
    if len(joint_names) != len(positions):
        raise CommandError(f"name has {len(joint_names)} entries but position {len(positions)}")
    indices = robot.index_of(joint_names)
    arr = np.asarray(positions, dtype=np.float64)
    if np.isinf(arr).any():
        j = int(np.nonzero(np.isinf(arr))[0][0])
        raise CommandError(f"position[{j}] ({joint_names[j]}) is {arr[j]} (NaN holds a joint; Inf is refused)")
    target = np.full(robot.dof, np.nan)
    target[indices] = arr
    return target.tolist()
