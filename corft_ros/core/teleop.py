"""Teleop's pure logic: gamepad jogging, keyboard steps, the command clamp (nodes/teleop.py is the ROS adapter; the
leader arm's mapping is core/teleop_leader.py)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from corft_ros.core.chunking.safety import SafetyFilter, SafetyLimits
from corft_ros.core.robot import ConfigError, RobotConfig


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


def joy_jogger(robot: RobotConfig, axes: Sequence[int], speed: float, deadzone: float, enable_button: int,
               gripper_open_button: int, gripper_close_button: int, gripper_joint: str) -> JoyJogger:
    """The jogger from teleop's parameters (`axes` in robot.yaml order; `gripper_joint` '' = none), checked."""
    if len(axes) != robot.dof:
        raise ConfigError(f"joy_axes has {len(axes)} entries, expected {robot.dof} (robot.yaml order)")
    if gripper_joint and gripper_joint not in robot.joint_names:
        raise ConfigError(f"gripper_joint '{gripper_joint}' is not a joint of {robot.name}")
    if not 0 <= deadzone < 1:
        raise ConfigError(f"joy_deadzone must be in [0, 1), got {deadzone}")
    return JoyJogger(robot, [int(a) for a in axes], speed, deadzone, enable_button, gripper_open_button,
                     gripper_close_button, robot.joint_names.index(gripper_joint) if gripper_joint else -1)


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


def keyboard_target(robot: RobotConfig, key: str, base: np.ndarray, step: float) -> np.ndarray | None:
    """The target after one key press from `base`: home for HOME_KEY, one jog step (within the joint limits) for a
    jog key; None for other keys."""
    if key == HOME_KEY:
        return robot.home_array.copy()
    delta = keyboard_delta(key, robot.dof, step)
    return None if delta is None else np.clip(base + delta, robot.lower, robot.upper)


def keyboard_help(robot: RobotConfig) -> str:
    """The keyboard source's key map, in one line."""
    pairs = ", ".join(f"{robot.joint_names[i]} {k[0]}/{k[1]}" for i, k in enumerate(KEY_PAIRS[: robot.dof]))
    return f"keyboard teleop: {pairs}; {HOME_KEY} = home"


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
