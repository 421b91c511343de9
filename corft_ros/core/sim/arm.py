"""The sim_arm node's ROS-free setup (nodes/sim_arm.py is the adapter): its configuration built and checked from its
parameters' plain values (pace, scene, start regions, forward-controller joints, the physics steps per
/joint_states tick), the reset requests its service hands the physics thread, and what a finished reset reports.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from corft_ros.core.robot import CommandError, ConfigError, RobotConfig
from corft_ros.core.sim.pacing import PacingConfig
from corft_ros.core.sim.regions import Box2D, StartRegions
from corft_ros.core.sim.scene import ResetInfo, SceneConfig


@dataclass(frozen=True)
class SimArmConfig:
    pacing: PacingConfig
    scene: SceneConfig
    joint_state_rate_hz: float  # /joint_states per sim second (robot.yaml's where the parameter is 0)
    forward_indices: np.ndarray  # the forward controller's joints, robot.yaml indices
    physics_steps_per_tick: int  # physics steps per /joint_states tick
    tick_dt: float  # sim s per tick


def sim_arm_config(robot: RobotConfig, *, realtime_factor: float, policy_lag: float, frame_lag: float,
                   cameras: Sequence[str], image_width: int, image_height: int, goal: Sequence[float],
                   start_area: Sequence[float], held_out_area: Sequence[float], render_lod: float,
                   joint_state_rate_hz: float, forward_joints: Sequence[str]) -> SimArmConfig:
    """The node's configuration from its parameters (0 / [] = robot.yaml's rate / joint names); ConfigError
    names the first bad one."""
    rate_hz = joint_state_rate_hz or robot.joint_state_rate_hz
    forward_joints = forward_joints or robot.joint_names
    try:
        pacing = PacingConfig(realtime_factor=realtime_factor, policy_lag=policy_lag, frame_lag=frame_lag)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    area, held = start_area, held_out_area
    if len(goal) != 3 or len(area) != 4 or len(held) != 4:
        raise ConfigError("goal needs 3 values; start_area and held_out_area need 4 (xmin, xmax, ymin, ymax)")
    try:
        forward_indices = robot.index_of(forward_joints)
    except CommandError as exc:
        raise ConfigError(f"forward_joints: {exc}") from None
    regions = StartRegions(area=Box2D(x=(area[0], area[1]), y=(area[2], area[3])),
                           held_out=Box2D(x=(held[0], held[1]), y=(held[2], held[3])))
    scene = SceneConfig(cameras=tuple(cameras), image_width=image_width, image_height=image_height,
                        goal=(goal[0], goal[1], goal[2]), regions=regions, render_lod=render_lod)
    steps = max(1, int(round(1.0 / (rate_hz * scene.physics_dt))))
    return SimArmConfig(pacing=pacing, scene=scene, joint_state_rate_hz=rate_hz, forward_indices=forward_indices,
                        physics_steps_per_tick=steps, tick_dt=steps * scene.physics_dt)


@dataclass
class ResetRequest:
    """One reset for the physics thread: it sets `result` (or `error`), then `done`."""

    seed: int
    region: str
    done: threading.Event
    result: dict | None = None
    error: str | None = None


def reset_result(info: ResetInfo, instruction: str, stamp: float) -> dict:
    """What the reset service answers (as JSON): the episode's start and task."""
    return {
        "seed": info.seed, "region": info.region, "cube_xy": list(info.cube_xy), "cube_yaw": info.cube_yaw,
        "goal": list(info.goal), "instruction": instruction, "stamp": stamp,
    }
