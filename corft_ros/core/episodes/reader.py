"""Reading episodes back: listing, metadata, and (topic, msgtype, log_time_ns, cdr_bytes) iteration.

A closed bag is read through rosbags (index, time order). A bag whose writer died (no metadata.yaml or
no MCAP footer) is read with the forgiving scanner, in file order, up to its last intact chunk.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from rosbags.rosbag2 import Reader

from corft_ros.core.episodes.layout import (
    EPISODE_FILENAME,
    bag_dir_of,
    episode_dir_of,
    looks_like_episode_dir,
    mcap_files,
)
from corft_ros.core.episodes.metadata import EpisodeMetadata, TopicStats, read_episode_yaml
from corft_ros.core.episodes.scan import scan_mcap


class EpisodeReadError(OSError):
    """An episode folder or bag cannot be read; the message names the path and the reason."""


@dataclass
class EpisodeInfo:
    path: Path
    episode_id: str
    instruction: str = ""
    success: bool | None = None
    status: str = ""
    operator: str = ""
    start_ns: int = 0
    duration_s: float | None = None
    topics: dict[str, TopicStats] = field(default_factory=dict)
    needs_repair: bool = False
    error: str = ""

    @property
    def message_total(self) -> int:
        return sum(t.count for t in self.topics.values())

    @property
    def dropped_total(self) -> int:
        return sum(t.dropped for t in self.topics.values())

    @property
    def label(self) -> str:
        return {True: "success", False: "failure", None: "unlabelled"}[self.success]


def _bag_metadata(bag_dir: Path) -> dict[str, Any] | None:
    file = bag_dir / "metadata.yaml"
    if not file.is_file():
        return None
    with open(file) as f:
        data = yaml.safe_load(f)
    info = data.get("rosbag2_bagfile_information") if isinstance(data, dict) else None
    if not isinstance(info, dict):
        raise EpisodeReadError(f"{file}: not a rosbag2 metadata file")
    return info


def _mcap_closed(file: Path) -> bool:
    """True when the MCAP file ends with its footer magic (the writer closed it)."""
    try:
        with open(file, "rb") as f:
            f.seek(-8, 2)
            return f.read(8) == b"\x89MCAP0\r\n"
    except OSError:
        return False


def bag_is_intact(path: str | Path) -> bool:
    bag = bag_dir_of(path)
    files = mcap_files(bag)
    return (bag / "metadata.yaml").is_file() and bool(files) and all(_mcap_closed(f) for f in files)


def load_episode_metadata(path: str | Path) -> dict[str, Any]:
    """The episode record (see EpisodeMetadata.to_dict) from episode.yaml, else from the bag's custom_data."""
    return _load_metadata(path).to_dict()


def _load_metadata(path: str | Path) -> EpisodeMetadata:
    ep = episode_dir_of(path)
    file = ep / EPISODE_FILENAME
    if file.is_file():
        try:
            return read_episode_yaml(file)
        except (OSError, ValueError, yaml.YAMLError) as exc:
            raise EpisodeReadError(f"{file}: cannot read episode metadata ({exc})") from None
    info = _bag_metadata(bag_dir_of(path))
    meta = EpisodeMetadata.from_custom_data(info.get("custom_data") if info else None)
    if meta is None:
        raise EpisodeReadError(f"{ep}: no {EPISODE_FILENAME} and no corft_ros metadata in the bag")
    return meta


def read_episode(
    path: str | Path, topics: Collection[str] | None = None
) -> Iterator[tuple[str, str, int, bytes]]:
    """Yield (topic, msgtype, log_time_ns, cdr_bytes) for every message of the episode (optionally some topics)."""
    bag = bag_dir_of(path)
    files = mcap_files(bag)
    if not files:
        raise EpisodeReadError(f"{bag}: no .mcap file")
    if bag_is_intact(bag):
        try:
            with Reader(bag) as reader:
                conns = [c for c in reader.connections if topics is None or c.topic in topics]
                for conn, t_ns, data in reader.messages(connections=conns):
                    yield conn.topic, conn.msgtype, t_ns, data
            return
        except Exception as exc:
            raise EpisodeReadError(f"{bag}: cannot read bag ({exc})") from None
    for file in files:
        scan, messages = scan_mcap(file)
        for cid, t_ns, data in messages:
            channel = scan.channels.get(cid)
            if channel is None:
                continue
            if topics is not None and channel.topic not in topics:
                continue
            schema = scan.schemas.get(channel.schema_id)
            yield channel.topic, schema.name if schema else "", t_ns, data


def episode_info(path: str | Path) -> EpisodeInfo:
    """Labels, durations, per-topic counts and drops of one episode; problems go into `.error`."""
    ep = episode_dir_of(path)
    info = EpisodeInfo(path=ep, episode_id=ep.name)
    meta: EpisodeMetadata | None = None
    try:
        meta = _load_metadata(ep)
    except EpisodeReadError as exc:
        info.error = str(exc)
    bag = bag_dir_of(ep)
    info.needs_repair = not bag_is_intact(bag)
    if meta is not None:
        info.episode_id = meta.episode_id or ep.name
        info.instruction = meta.instruction
        info.success = meta.success
        info.status = meta.status
        info.operator = meta.operator
        info.start_ns = meta.start_ns
        info.duration_s = meta.duration_s
        info.topics = {k: TopicStats(v.msgtype, v.count, v.dropped, v.bytes) for k, v in meta.topics.items()}
    try:
        bag_meta = _bag_metadata(bag)
    except (EpisodeReadError, yaml.YAMLError) as exc:
        info.error = info.error or str(exc)
        bag_meta = None
    if bag_meta is not None:
        # The bag's own counts are authoritative for what is on disk.
        for entry in bag_meta.get("topics_with_message_count") or []:
            tm = entry.get("topic_metadata", {})
            name = tm.get("name", "")
            stats = info.topics.setdefault(name, TopicStats(msgtype=tm.get("type", "")))
            stats.count = int(entry.get("message_count", 0))
        if info.duration_s is None:
            info.duration_s = int(bag_meta.get("duration", {}).get("nanoseconds", 0)) / 1e9
    if info.needs_repair and not info.status.startswith("crash"):
        info.status = f"{info.status or 'unknown'} (needs repair)"
    return info


def list_episodes(root: str | Path) -> list[EpisodeInfo]:
    """Every episode folder directly under `root` (sorted by name, i.e. by start time)."""
    root = Path(root)
    if not root.is_dir():
        raise EpisodeReadError(f"episodes folder {root} does not exist")
    return [episode_info(p) for p in sorted(root.iterdir()) if looks_like_episode_dir(p)]
