"""Reading episodes back, for every reader in the stack (`bag info`, the trainer, the benchmarks, the tests):
listing, metadata, and raw (topic, msgtype, log_time_ns, cdr_bytes) messages.

`EpisodeBag` is the one way to read a bag's messages. A closed bag (ours or `ros2 bag record`'s, MCAP or sqlite3)
is read through rosbags (index, time order). An MCAP bag whose writer died (no metadata.yaml or no footer) is read
with the forgiving scanner, in file order, up to its last intact chunk; a reader that needs the whole episode (the
trainer) opens with `require_intact=True` and gets the same one-line "run bag repair" error `bag info` shows.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from corft_ros.core.episodes.errors import EpisodeReadError
from corft_ros.core.episodes.layout import (
    EPISODE_FILENAME,
    bag_dir_of,
    data_files,
    episode_dir_of,
    looks_like_episode_dir,
    mcap_files,
)
from corft_ros.core.episodes.metadata import EpisodeMetadata, TopicStats, read_episode_yaml
from corft_ros.core.episodes.scan import scan_mcap
from corft_ros.core.topics import canonical

__all__ = ["EpisodeBag", "EpisodeInfo", "EpisodeReadError", "RawMessage", "bag_is_intact", "episode_info",
           "list_episodes", "load_episode_metadata", "read_episode", "training_metadata"]


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
    interventions: int | None = None  # takeovers during the episode (None: recorded without a takeover-able executor)

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
    """The writer closed the bag: metadata.yaml, a data file, and every MCAP file with its footer."""
    bag = bag_dir_of(path)
    return ((bag / "metadata.yaml").is_file() and bool(data_files(bag))
            and all(_mcap_closed(f) for f in mcap_files(bag)))


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


@dataclass(frozen=True)
class RawMessage:
    topic: str
    msgtype: str
    log_time_ns: int
    data: bytes


class EpisodeBag:
    """One open bag: its topics and its raw messages, never deserialized.

    `canonical`: topics as they would be named without the recording graph's namespace ('/left/joint_states'
    recorded under '/left' reads as '/joint_states'), so a namespaced arm's episodes train like any other.
    `require_intact`: refuse a bag whose recording was interrupted instead of reading what survived.
    `metadata`: the bag's `training_metadata` when the caller has it already (else it is read for the namespace)."""

    def __init__(self, path: str | Path, canonical_names: bool = False, require_intact: bool = False,
                 metadata: dict | None = None) -> None:
        self.bag = bag_dir_of(path)
        if not self.bag.is_dir() or not data_files(self.bag):
            raise EpisodeReadError(f"{self.bag}: no .mcap or .db3 data file")
        self.intact = bag_is_intact(self.bag)
        if not self.intact and (require_intact or not mcap_files(self.bag)):
            raise EpisodeReadError(f"{self.bag}: the recording was interrupted (no metadata.yaml or no MCAP footer); "
                                   f"run `corft-ros bag repair {episode_dir_of(self.bag)}`")
        if canonical_names and metadata is None:
            metadata = training_metadata(self.bag)
        namespace = str(metadata.get("namespace") or "") if canonical_names else ""
        self._reader = None
        if self.intact:
            from rosbags.rosbag2 import Reader

            try:
                self._reader = Reader(self.bag)
                self._reader.open()
            except Exception as exc:  # rosbags raises several types for broken bags
                raise EpisodeReadError(f"{self.bag}: cannot open bag ({_one_line(exc)})") from None
            self._topics = {c.id: (canonical(c.topic, namespace), c.msgtype) for c in self._reader.connections}
        else:
            self._namespace = namespace

    def topics(self) -> dict[str, str]:
        """topic -> message type (of an interrupted bag: one scan through what survived)."""
        if self._reader is None:
            return {m.topic: m.msgtype for m in self.messages()}
        return dict(self._topics.values())

    def _scanned(self) -> Iterator[RawMessage]:
        """The messages of an interrupted recording, in file order (the scanner learns channels as it goes)."""
        for file in mcap_files(self.bag):
            scan, messages = scan_mcap(file)
            for cid, t_ns, data in messages:
                channel = scan.channels.get(cid)
                if channel is not None:
                    schema = scan.schemas.get(channel.schema_id)
                    yield RawMessage(canonical(channel.topic, self._namespace), schema.name if schema else "",
                                     int(t_ns), data)

    def messages(self, topics: Collection[str] | None = None) -> Iterator[RawMessage]:
        """Every message of `topics` (all if None): in log-time order from an intact bag, in file order from an
        interrupted one. A truncated or corrupt bag is an EpisodeReadError."""
        if self._reader is None:
            yield from (m for m in self._scanned() if topics is None or m.topic in topics)
            return
        conns = [c for c in self._reader.connections if topics is None or self._topics[c.id][0] in topics]
        if not conns:
            return
        try:
            for conn, stamp, data in self._reader.messages(connections=conns):
                topic, msgtype = self._topics[conn.id]
                yield RawMessage(topic, msgtype, int(stamp), data)
        except Exception as exc:
            raise EpisodeReadError(f"{self.bag}: bag is truncated or corrupt ({_one_line(exc)})") from None

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()

    def __enter__(self) -> EpisodeBag:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_episode(
    path: str | Path, topics: Collection[str] | None = None
) -> Iterator[tuple[str, str, int, bytes]]:
    """Yield (topic, msgtype, log_time_ns, cdr_bytes) for every message of the episode (optionally some topics),
    also from an interrupted recording (what survived)."""
    with EpisodeBag(path) as bag:
        for m in bag.messages(topics):
            yield m.topic, m.msgtype, m.log_time_ns, m.data


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


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
        if isinstance(meta.extra.get("interventions"), dict):
            info.interventions = int(meta.extra["interventions"].get("count", 0))
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


# --------------------------------------------------------------------------- the trainer's view of the metadata


def _as_bool(value: object) -> bool | None:
    if isinstance(value, bool):
        return value
    if value is None:
        return None
    text = str(value).strip().lower()
    if text in ("true", "1", "yes", "success", "succeeded"):
        return True
    if text in ("false", "0", "no", "failure", "failed", "fail"):
        return False
    return None


def training_metadata(bag: str | Path) -> dict:
    """Episode metadata as a flat dict: `instruction` (str|None), `success` (bool|None), `joint_names` (list|None),
    plus whatever else was recorded. Works for bags other tools recorded too.

    Sources, later ones filling gaps: our episode record (`load_episode_metadata`), `episode.yaml` in the bag
    folder (or `<bag>.yaml`/`episode.yaml` beside it), the bag's metadata.yaml `custom_data`.
    """
    bag = Path(bag)
    merged: dict = {}
    sources: list[dict] = []
    # not one of ours (or a damaged record): the files below may still say what the trainer needs
    with contextlib.suppress(EpisodeReadError, OSError, ValueError, LookupError, TypeError, AttributeError,
                             yaml.YAMLError):
        sources.append(load_episode_metadata(bag))
    for candidate in (bag / "episode.yaml", bag.parent / "episode.yaml", bag.parent / f"{bag.name}.yaml"):
        if candidate.is_file():
            try:
                data = yaml.safe_load(candidate.read_text())
            except (OSError, yaml.YAMLError) as exc:
                raise EpisodeReadError(f"{bag}: {candidate.name} is not valid YAML ({_one_line(exc)})") from None
            if isinstance(data, dict):
                sources.append(data.get("episode", data) if isinstance(data.get("episode"), dict) else data)
            break
    meta_file = bag / "metadata.yaml"
    complete = all(any(src.get(k) not in (None, "", []) for src in sources) for k in ("instruction", "success"))
    if meta_file.is_file() and not complete:
        try:
            info = yaml.load(meta_file.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)) or {}
            custom = (info.get("rosbag2_bagfile_information") or {}).get("custom_data") or {}
            if isinstance(custom, dict):
                sources.append(custom)
        except (OSError, yaml.YAMLError):
            pass
    for src in sources:
        for key, value in src.items():
            if merged.get(key) is None:
                merged[key] = value
    instruction = merged.get("instruction") or merged.get("task")
    merged["instruction"] = str(instruction).strip() if instruction else None
    success = merged.get("success")
    if success is None and "label" in merged:
        success = merged["label"]
    merged["success"] = _as_bool(success)
    names = merged.get("joint_names")
    if isinstance(names, str):
        try:
            names = json.loads(names)
        except ValueError:
            names = [n.strip() for n in names.split(",") if n.strip()]
    merged["joint_names"] = list(names) if names else None
    return merged
