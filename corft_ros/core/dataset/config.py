"""What the dataset reads from a bag and how (the trainer's `dataset.*` parameters), and the command topics whose
messages are a tick's action."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from corft_ros.core import topics
from corft_ros.core.dataset.cache import CACHE_VERSION
from corft_ros.core.params import param
from corft_ros.core.robot import RobotConfig
from corft_ros.core.topics import canonical

FORWARD_COMMANDS = canonical(topics.controller_commands(topics.FORWARD_CONTROLLER))
TRAJECTORY_COMMANDS = canonical(topics.controller_trajectory(topics.TRAJECTORY_CONTROLLER))


@dataclass
class DatasetConfig:
    """What the dataset reads from a bag and how (the trainer's `dataset.*` parameters)."""

    camera_names: list[str] = param(["front", "wrist"], "cameras the model sees, by name (the model's camera_names "
                                                         "follow)", array="string")
    image_size: tuple[int, int] = param((64, 64), "(height, width) in px every camera image is resized to (the "
                                                  "model's image_height/width follow)", array="integer")
    rate_hz: float | None = param(None, "tick rate of the dataset, the chunk dt = 1 / rate (0 or null: "
                                        "robot.action_rate_hz)")
    image_topic: str = param(canonical(topics.CAMERA_IMAGE_FORMAT), "sensor_msgs/Image topic of each camera ({name}: "
                                                                    "the camera's name)")
    joint_states_topic: str = param(canonical(topics.JOINT_STATES), "sensor_msgs/JointState topic: the state")
    action_topics: list[str] = param([FORWARD_COMMANDS, TRAJECTORY_COMMANDS], "command topics whose message in force "
                                     "is a tick's action (Float64MultiArray or JointTrajectory)", array="string")
    intervention_topic: str = param(canonical(topics.INTERVENTION), "std_msgs/Bool topic: the ticks an operator held "
                                                                    "the arm")
    cache_dir: str | None = param(None, "dataset cache folder ('' or null: $XDG_CACHE_HOME/corft_ros/datasets; "
                                        "--cache)")
    require_label: bool = param(True, "an episode without a success label is bad input (skipped; fatal with strict)")
    require_instruction: bool = param(True, "an episode without an instruction is bad input (skipped; fatal with "
                                            "strict)")
    min_ticks: int = param(2, "fewest ticks where all streams overlap for an episode to be used")
    stale_factor: float = param(2.5, "a tick's frame counts as stale (reported) when older than this many nominal "
                                     "frame periods")

    def resolved_cache_dir(self) -> Path:
        if self.cache_dir:
            return Path(self.cache_dir).expanduser()
        base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        return Path(base) / "corft_ros" / "datasets"

    def fingerprint(self, robot: RobotConfig) -> str:
        data = {
            "v": CACHE_VERSION,
            "cams": list(self.camera_names),
            "size": list(self.image_size),
            "dt_ns": dt_ns(self, robot),
            "img": self.image_topic,
            "js": self.joint_states_topic,
            "act": list(self.action_topics),
            "intervention": self.intervention_topic,
            "joints": robot.joint_names,
            "stale": self.stale_factor,
        }
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:8]


def dt_ns(cfg: DatasetConfig, robot: RobotConfig) -> int:
    rate = cfg.rate_hz or robot.action_rate_hz
    return int(round(1e9 / rate))
