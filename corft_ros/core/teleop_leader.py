"""The leader arm's side of teleop, ROS-free (nodes/teleop.py is the adapter): which leader joint drives which
follower joint with what offset and scale (the leader_joint_map, leader_offsets and leader_scales parameters, parsed
and checked), and whether a leader may take over from a deployed policy (it must be close to the follower's pose).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from corft_ros.core.robot import ConfigError, RobotConfig


@dataclass
class LeaderMapping:
    """Leader joint name -> follower joint, plus per-follower-joint offset and scale (follower = scale*q + offset)."""

    robot: RobotConfig
    names: dict[str, str] = field(default_factory=dict)  # leader name -> follower name (identity when absent)
    offsets: np.ndarray | None = None
    scales: np.ndarray | None = None

    def __post_init__(self) -> None:
        dof = self.robot.dof
        self.offsets = np.zeros(dof) if self.offsets is None else np.asarray(self.offsets, dtype=np.float64)
        self.scales = np.ones(dof) if self.scales is None else np.asarray(self.scales, dtype=np.float64)
        for what, arr in (("leader_offsets", self.offsets), ("leader_scales", self.scales)):
            if arr.shape != (dof,):
                raise ConfigError(f"{what} has {arr.size} values, expected {dof} (robot.yaml joint order)")
        known = set(self.robot.joint_names)
        for leader, follower in self.names.items():
            if follower not in known:
                raise ConfigError(f"leader_joint_map: '{leader}={follower}' names no joint of the robot")

    def apply(self, names: Sequence[str], positions: Sequence[float], base: np.ndarray) -> tuple[np.ndarray, int]:
        """Follower targets (base where the leader says nothing) and how many joints the leader set."""
        if len(names) != len(positions):
            raise ValueError(f"leader message has {len(names)} names but {len(positions)} positions")
        target = base.copy()
        lookup = {n: i for i, n in enumerate(self.robot.joint_names)}
        mapped = 0
        for name, value in zip(names, positions, strict=True):
            follower = self.names.get(name, name)
            i = lookup.get(follower)
            if i is None:
                continue  # leader joints the follower lacks are ignored (they are counted by the caller)
            if not math.isfinite(value):
                raise ValueError(f"leader joint '{name}' is {value}")
            target[i] = self.scales[i] * value + self.offsets[i]
            mapped += 1
        return target, mapped


def leader_mapping(robot: RobotConfig, joint_map: Sequence[str], offsets: Sequence[float],
                   scales: Sequence[float]) -> LeaderMapping:
    """The mapping from teleop's parameters: `joint_map` entries 'leader_name=follower_name' ([""] = no mapping:
    rclpy cannot override with []), per-joint `offsets` and `scales` ([] = zeros / ones); ConfigError names a bad
    one."""
    offsets = offsets or [0.0] * robot.dof
    scales = scales or [1.0] * robot.dof
    names: dict[str, str] = {}
    for entry in (e for e in joint_map if e):
        leader, sep, follower = entry.partition("=")
        if not sep or not leader or not follower:
            raise ConfigError(f"leader_joint_map: '{entry}' is not 'leader_name=follower_name'")
        names[leader.strip()] = follower.strip()
    return LeaderMapping(robot, names, np.array(offsets, dtype=float), np.array(scales, dtype=float))


def leader_engage_refusal(robot: RobotConfig, target: np.ndarray | None, state: np.ndarray, input_age_s: float,
                          input_timeout_s: float, max_offset: float) -> str | None:
    """Why a leader arm may not take over from the policy yet (None: it may): it must be heard from within
    `input_timeout_s` and be within `max_offset` (rad, every joint) of the follower's measured `state`."""
    if target is None or input_age_s > input_timeout_s:
        return "intervention: no leader message yet; not taking over"
    if np.abs(target - state).max() > max_offset:
        worst = int(np.argmax(np.abs(target - state)))
        return (f"intervention refused: the leader's {robot.joint_names[worst]} is "
                f"{abs(target[worst] - state[worst]):.2f} rad from the follower "
                f"(leader_max_offset {max_offset:g}); move the leader to the follower's pose first")
    return None
