"""Episodes: one rosbag2 (MCAP) bag per episode, written from raw CDR bytes, plus episode metadata.

No rclpy here. This package owns the format: layout, metadata, CDR fields, the one reader (`EpisodeBag`), repair,
the writer and the error types (errors.py). Nodes hand raw serialized messages to `EpisodeWriter`; `bag info`, the
trainer and the benchmarks read episodes back through `EpisodeBag`, `list_episodes` and `load_episode_metadata`.
"""

from corft_ros.core.episodes.diskguard import free_bytes
from corft_ros.core.episodes.errors import CdrError, DiskFullError, EpisodeReadError, TypeResolutionError
from corft_ros.core.episodes.label import set_episode_label
from corft_ros.core.episodes.layout import (
    BAG_DIRNAME,
    EPISODE_FILENAME,
    bag_dir_of,
    data_files,
    episode_dir_of,
    episode_name,
    find_bags,
    new_episode_dir,
    slugify,
)
from corft_ros.core.episodes.metadata import EpisodeMetadata, TopicStats, read_episode_yaml, write_episode_yaml
from corft_ros.core.episodes.reader import (
    EpisodeBag,
    EpisodeInfo,
    RawMessage,
    episode_info,
    list_episodes,
    load_episode_metadata,
    read_episode,
    training_metadata,
)
from corft_ros.core.episodes.repair import RepairReport, repair_episode
from corft_ros.core.episodes.typestore import resolve_msgdef
from corft_ros.core.episodes.writer import EpisodeWriter, WriterStats

__all__ = [
    "BAG_DIRNAME",
    "EPISODE_FILENAME",
    "CdrError",
    "DiskFullError",
    "EpisodeBag",
    "EpisodeInfo",
    "EpisodeMetadata",
    "EpisodeReadError",
    "EpisodeWriter",
    "RawMessage",
    "RepairReport",
    "TopicStats",
    "TypeResolutionError",
    "WriterStats",
    "bag_dir_of",
    "data_files",
    "episode_dir_of",
    "episode_info",
    "episode_name",
    "find_bags",
    "free_bytes",
    "list_episodes",
    "load_episode_metadata",
    "new_episode_dir",
    "read_episode",
    "read_episode_yaml",
    "repair_episode",
    "resolve_msgdef",
    "set_episode_label",
    "slugify",
    "training_metadata",
    "write_episode_yaml",
]
