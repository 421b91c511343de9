"""The sim_arm node's parameters (the one declaration)."""

from __future__ import annotations

from dataclasses import dataclass

from corft_ros.core import topics
from corft_ros.core.params import param
from corft_ros.core.sim.pacing import PacingConfig
from corft_ros.core.sim.regions import REGIONS
from corft_ros.core.sim.rollout import RolloutConfig
from corft_ros.core.sim.scene import CAMERAS, TASK, SceneConfig


@dataclass
class SimArmParams:
    robot_config: str = param("", "robot.yaml path ('' = bundled)")
    realtime_factor: float = param(PacingConfig.realtime_factor,
                                   "sim seconds per wall second (1 = real time; 0 = as fast as the renderer, "
                                   "policy and executor allow)", min=0)
    policy_lag: float = param(PacingConfig.policy_lag,
                              "sim s an observation may wait for the policy's chunk before the sim waits for "
                              "it (factor != 1; must exceed the policy's period)")
    frame_lag: float = param(PacingConfig.frame_lag,
                             "sim s physics may run ahead of a frame being rendered (factor != 1; at 1: one "
                             "camera period)")
    chunk_topic: str = param(topics.ACTION_CHUNK, "the policy's chunks (pacing only)")
    cameras: list = param(list(SceneConfig.cameras), f"cameras to render ({', '.join(CAMERAS)})", array="string")
    image_width: int = param(SceneConfig.image_width, "rendered image width (px)")
    image_height: int = param(SceneConfig.image_height, "rendered image height (px)")
    camera_rate_hz: float = param(RolloutConfig.camera_rate_hz, "camera frames per sim second", above=0)
    render_lod: float = param(SceneConfig.render_lod, "visual mesh vertices closer than this (m) are merged when "
                                                      "drawing (physics keeps the full meshes); 0 = full meshes",
                              min=0)
    joint_state_rate_hz: float = param(0.0, "/joint_states rate, sim time (0 = robot.yaml joint_state_rate_hz)",
                                       min=0)
    seed: int = param(0, "seed of the next reset (incremented after each reset)", dynamic=True)
    region: str = param("seen", "cube start region of the next reset (unseen: held out)", choices=REGIONS,
                        dynamic=True)
    goal: list = param(list(SceneConfig.goal), "cube target position x, y, z (m)", array="double")
    start_area: list = param(list(SceneConfig().regions.area.x + SceneConfig().regions.area.y),
                             "cube start area xmin, xmax, ymin, ymax (m)", array="double")
    held_out_area: list = param(list(SceneConfig().regions.held_out.x + SceneConfig().regions.held_out.y),
                                "unseen region inside start_area", array="double")
    instruction: str = param(TASK, "the task, in words")
    trajectory_topic: str = param(topics.controller_trajectory(topics.TRAJECTORY_CONTROLLER), "JTC input")
    forward_topic: str = param(topics.controller_commands(topics.FORWARD_CONTROLLER), "forward input")
    forward_joints: list = param([], "forward controller joints ([] = robot.yaml joint names)", array="string")
