"""Episode metadata: what was recorded, by whom, and how it ended; stored in episode.yaml and in the bag."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from corft_ros import __version__

# custom_data keys in the bag's metadata.yaml (rosbag2 custom data is a map of strings).
CUSTOM_DATA_KEY = "corft_ros.episode"


@dataclass
class TopicStats:
    msgtype: str
    count: int = 0
    dropped: int = 0
    bytes: int = 0


@dataclass
class EpisodeMetadata:
    episode_id: str
    instruction: str = ""
    success: bool | None = None
    operator: str = ""  # teleop operator id, or the policy id for deployment episodes
    source: str = "teleop"  # teleop | policy | scripted | ...
    robot: str = ""
    joint_names: list[str] = field(default_factory=list)
    namespace: str = ""  # the recording node's ROS namespace ('/' or '' = none); bag topics carry it
    start_ns: int = 0
    stop_ns: int | None = None
    cycle_time_s: float | None = None
    software_version: str = __version__
    compression: str = "none"
    # recording | stopped | disk_full | write_error | crashed | repaired
    status: str = "recording"
    error: str = ""
    topics: dict[str, TopicStats] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def duration_s(self) -> float | None:
        if self.stop_ns is None or not self.start_ns:
            return None
        return max(0.0, (self.stop_ns - self.start_ns) / 1e9)

    @property
    def dropped_total(self) -> int:
        return sum(t.dropped for t in self.topics.values())

    @property
    def message_total(self) -> int:
        return sum(t.count for t in self.topics.values())

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["duration_s"] = self.duration_s
        data["dropped_total"] = self.dropped_total
        data["message_total"] = self.message_total
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EpisodeMetadata:
        known = {f.name for f in fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in known}
        kwargs["topics"] = {
            name: TopicStats(**{k: v for k, v in stats.items() if k in {"msgtype", "count", "dropped", "bytes"}})
            for name, stats in (data.get("topics") or {}).items()
        }
        kwargs.setdefault("episode_id", "")
        return cls(**kwargs)

    def custom_data(self) -> dict[str, str]:
        """The rosbag2 custom_data map: the whole record as JSON plus a few plain keys for `ros2 bag info`."""
        return {
            CUSTOM_DATA_KEY: json.dumps(self.to_dict(), sort_keys=True),
            "corft_ros.instruction": self.instruction,
            "corft_ros.success": "" if self.success is None else str(self.success).lower(),
            "corft_ros.operator": self.operator,
            "corft_ros.robot": self.robot,
            "corft_ros.software_version": self.software_version,
        }

    @classmethod
    def from_custom_data(cls, custom: dict[str, str] | None) -> EpisodeMetadata | None:
        if not custom or CUSTOM_DATA_KEY not in custom:
            return None
        return cls.from_dict(json.loads(custom[CUSTOM_DATA_KEY]))


def write_episode_yaml(path: str | Path, metadata: EpisodeMetadata) -> None:
    """Write atomically (temp file + rename), so a crash never leaves a half-written episode.yaml."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    header = "# corft_ros episode metadata (the bag's metadata.yaml custom_data holds the same record)\n"
    tmp.write_text(header + yaml.safe_dump(metadata.to_dict(), sort_keys=False, allow_unicode=True))
    os.replace(tmp, path)


def read_episode_yaml(path: str | Path) -> EpisodeMetadata:
    with open(path) as f:
        data = yaml.safe_load(f)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: not a mapping")
    return EpisodeMetadata.from_dict(data)
