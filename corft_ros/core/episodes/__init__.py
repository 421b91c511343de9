"""Episodes: one rosbag2 (MCAP) bag per episode, written from raw CDR bytes, plus episode metadata.

No rclpy here. Nodes hand raw serialized messages to `EpisodeWriter`; the trainer reads episodes back
through `list_episodes`, `read_episode` and `load_episode_metadata`.
"""

from corft_ros.core.episodes.diskguard import DiskFullError, free_bytes
from corft_ros.core.episodes.label import set_episode_label
from corft_ros.core.episodes.layout import (
    BAG_DIRNAME,
    EPISODE_FILENAME,
    bag_dir_of,
    episode_dir_of,
    new_episode_dir,
    slugify,
)
from corft_ros.core.episodes.metadata import EpisodeMetadata, TopicStats, read_episode_yaml, write_episode_yaml
from corft_ros.core.episodes.reader import (
    EpisodeInfo,
    EpisodeReadError,
    episode_info,
    list_episodes,
    load_episode_metadata,
    read_episode,
)
from corft_ros.core.episodes.repair import RepairReport, repair_episode
from corft_ros.core.episodes.typestore import TypeResolutionError, resolve_msgdef
from corft_ros.core.episodes.writer import EpisodeWriter, WriterStats

__all__ = [
    "BAG_DIRNAME",
    "EPISODE_FILENAME",
    "DiskFullError",
    "EpisodeInfo",
    "EpisodeMetadata",
    "EpisodeReadError",
    "EpisodeWriter",
    "RepairReport",
    "TopicStats",
    "TypeResolutionError",
    "WriterStats",
    "bag_dir_of",
    "episode_dir_of",
    "episode_info",
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
    "write_episode_yaml",
]
