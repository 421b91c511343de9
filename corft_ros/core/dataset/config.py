"""What the dataset reads from a bag and how (the trainer's `dataset.*` parameters), and the command topics whose
messages are a tick's action."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from corft_ros.core import topics
from corft_ros.core.dataset.cache import CACHE_VERSION
from corft_ros.core.robot import RobotConfig
from corft_ros.core.topics import canonical

FORWARD_COMMANDS = canonical(topics.controller_commands(topics.FORWARD_CONTROLLER))
TRAJECTORY_COMMANDS = canonical(topics.controller_trajectory(topics.TRAJECTORY_CONTROLLER))


@dataclass
class DatasetConfig:
    """What the dataset reads from a bag and how (the trainer's `dataset.*` parameters)."""

    camera_names: list[str] = field(default_factory=lambda: ["front", "wrist"])
    image_size: tuple[int, int] = (64, 64)  # (height, width)
    rate_hz: float | None = None  # None: robot.action_rate_hz
    image_topic: str = canonical(topics.CAMERA_IMAGE_FORMAT)
    joint_states_topic: str = canonical(topics.JOINT_STATES)
    action_topics: list[str] = field(default_factory=lambda: [FORWARD_COMMANDS, TRAJECTORY_COMMANDS])
    intervention_topic: str = canonical(topics.INTERVENTION)  # std_msgs/Bool: ticks an operator held the arm
    cache_dir: str | None = None  # None: $XDG_CACHE_HOME/corft_ros/datasets
    require_label: bool = True
    require_instruction: bool = True
    min_ticks: int = 2
    stale_factor: float = 2.5

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
