"""Teleop's pure logic: leader-arm mapping, gamepad jogging, keyboard steps, the command clamp (nodes/teleop.py is
the ROS adapter)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from corft_ros.core.chunking.safety import SafetyFilter, SafetyLimits
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


@dataclass
class JoyJogger:
    """Gamepad axes -> joint velocities (joint jogging); two buttons open/close the gripper."""

    robot: RobotConfig
    axes: Sequence[int]  # per robot joint: axis index, -1 = not jogged
    speed: float = 0.5  # rad/s at full deflection
    deadzone: float = 0.1
    enable_button: int = -1  # dead-man: -1 = always enabled
    gripper_open_button: int = -1
    gripper_close_button: int = -1
    gripper_index: int = -1

    def velocity(self, axes: Sequence[float], buttons: Sequence[int]) -> np.ndarray:
        vel = np.zeros(self.robot.dof)
        if self.enable_button >= 0 and not (self.enable_button < len(buttons) and buttons[self.enable_button]):
            return vel
        for joint, axis in enumerate(self.axes):
            if axis < 0:
                continue
            if axis >= len(axes):
                raise ValueError(f"joy message has {len(axes)} axes, joy_axes needs axis {axis}")
            value = float(axes[axis])
            if not math.isfinite(value):
                raise ValueError(f"joy axis {axis} is {value}")
            if abs(value) < self.deadzone:
                continue
            # Rescale past the dead zone so motion starts smoothly from zero.
            value = math.copysign((abs(value) - self.deadzone) / (1.0 - self.deadzone), value)
            vel[joint] = max(-1.0, min(1.0, value)) * self.speed
        if self.gripper_index >= 0:
            j = self.gripper_index
            gripper_speed = self.robot.joints[j].max_velocity
            if 0 <= self.gripper_open_button < len(buttons) and buttons[self.gripper_open_button]:
                vel[j] = -gripper_speed
            elif 0 <= self.gripper_close_button < len(buttons) and buttons[self.gripper_close_button]:
                vel[j] = gripper_speed
        return vel


# Keyboard: one key pair per joint (+/-), in robot.yaml order; '0' = home.
HOME_KEY = "0"
KEY_PAIRS = ("qa", "ws", "ed", "rf", "tg", "yh", "uj", "ik", "ol")


def keyboard_delta(key: str, dof: int, step: float) -> np.ndarray | None:
    """Joint delta for one key press; None for keys that are not jog keys."""
    for joint, (plus, minus) in enumerate(KEY_PAIRS[:dof]):
        if key == plus:
            delta = np.zeros(dof)
            delta[joint] = step
            return delta
        if key == minus:
            delta = np.zeros(dof)
            delta[joint] = -step
            return delta
    return None


def clamp_command(robot: RobotConfig, target: np.ndarray, previous: np.ndarray | None, dt: float,
                  velocity_scale: float = 1.0) -> np.ndarray:
    """Within the joint limits, and no joint faster than velocity_scale * max_velocity from `previous` (the
    executor's SafetyFilter with this tick's dt; a NaN joint holds `previous`)."""
    limits = SafetyLimits.from_robot(robot)
    safety = SafetyFilter(SafetyLimits(limits.lower, limits.upper,
                                       tuple(v * velocity_scale for v in limits.max_velocity)), dt)
    if previous is None:
        return np.asarray(safety.clamp_position(target))
    safety.reset(previous)
    return np.asarray(safety.apply(target))


def yaw_of(q_w: float, q_x: float, q_y: float, q_z: float) -> float:
    return math.atan2(2.0 * (q_w * q_z + q_x * q_y), 1.0 - 2.0 * (q_y * q_y + q_z * q_z))
