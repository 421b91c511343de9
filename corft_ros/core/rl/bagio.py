"""Bags on disk: find episode bags, read their raw messages (MCAP or sqlite3), hash their content,
and read the episode metadata (instruction, success label, joint names) written beside them."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml

from corft_ros.core.topics import canonical

DATA_SUFFIXES = (".mcap", ".db3", ".mcap.zstd", ".db3.zstd")


class BagError(ValueError):
    """A bag cannot be used; the message names the bag and what is wrong, on one line."""


@dataclass(frozen=True)
class RawMessage:
    topic: str
    msgtype: str
    log_time_ns: int
    data: bytes


def data_files(bag: Path) -> list[Path]:
    return sorted(p for p in bag.iterdir() if p.is_file() and p.name.endswith(DATA_SUFFIXES))


def episode_name(bag: Path) -> str:
    """A readable name for a bag: the episode folder's name (bags live in <episode>/bag/)."""
    return bag.parent.name if bag.name == "bag" else bag.name


def find_bags(root: str | Path) -> list[Path]:
    """Episode bag folders under `root` (or `root` itself): folders holding an .mcap/.db3 file."""
    root = Path(root)
    if not root.exists():
        raise BagError(f"{root}: no such folder")
    if root.is_dir() and data_files(root):
        return [root]
    found = {p.parent for p in root.rglob("*") if p.is_file() and p.name.endswith(DATA_SUFFIXES)}
    return sorted(found)


def open_reader(bag: Path):
    """A rosbags Reader over an MCAP or sqlite3 bag folder; BagError says why it cannot open."""
    from rosbags.rosbag2 import Reader

    if not (bag / "metadata.yaml").is_file():
        raise BagError(f"{bag}: no metadata.yaml (truncated recording? run `corft-ros bag repair {bag}`)")
    try:
        reader = Reader(bag)
        reader.open()
    except Exception as exc:  # rosbags raises several types for broken bags
        raise BagError(f"{bag}: cannot open bag ({_one_line(exc)})") from None
    return reader


class BagReader:
    """One open bag: its topics and its raw messages (one open: rosbags parses metadata.yaml on open)."""

    def __init__(self, bag: Path) -> None:
        self.bag = Path(bag)
        self.reader = open_reader(self.bag)
        # Topics as they would be named without the recording graph's namespace ('/left/joint_states' recorded
        # under '/left' reads as '/joint_states'), so a namespaced arm's episodes train like any other.
        namespace = str(episode_metadata(self.bag).get("namespace") or "")
        self._name = {c.id: canonical(c.topic, namespace) for c in self.reader.connections}

    def topics(self) -> dict[str, str]:
        """topic -> message type from the bag's own metadata (canonical names)."""
        return {self._name[c.id]: c.msgtype for c in self.reader.connections}

    def messages(self, topics: set[str] | None = None) -> Iterator[RawMessage]:
        """Every message of `topics` (all if None) in log-time order, raw CDR bytes, never deserialized."""
        conns = [c for c in self.reader.connections if topics is None or self._name[c.id] in topics]
        if not conns:
            return
        try:
            for conn, stamp, data in self.reader.messages(connections=conns):
                yield RawMessage(self._name[conn.id], conn.msgtype, int(stamp), data)
        except Exception as exc:
            raise BagError(f"{self.bag}: bag is truncated or corrupt ({_one_line(exc)})") from None

    def close(self) -> None:
        self.reader.close()

    def __enter__(self) -> BagReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_raw(bag: Path, topics: set[str] | None = None) -> Iterator[RawMessage]:
    with BagReader(bag) as reader:
        yield from reader.messages(topics)


def bag_topics(bag: Path) -> dict[str, str]:
    with BagReader(bag) as reader:
        return reader.topics()


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


# --------------------------------------------------------------------------- content-hash memo


def stat_key(bag: Path) -> str:
    files = data_files(bag)
    if not files:
        raise BagError(f"{bag}: no .mcap or .db3 data file")
    return "|".join(f"{f.resolve()}:{f.stat().st_size}:{f.stat().st_mtime_ns}" for f in files)


def remembered_hash(bag: Path, memo_file: Path) -> str | None:
    """The content hash remembered for this bag's files (same paths, sizes and mtimes), if any."""
    key = stat_key(bag)
    try:
        return json.loads(memo_file.read_text()).get(key)
    except (OSError, ValueError, AttributeError):
        return None


def remember_hash(bag: Path, memo_file: Path, value: str, key: str | None = None) -> None:
    key = key or stat_key(bag)
    try:
        memo = json.loads(memo_file.read_text()) if memo_file.is_file() else {}
    except (OSError, ValueError):
        memo = {}
    memo[key] = value
    try:
        memo_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = memo_file.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(memo))
        tmp.replace(memo_file)
    except OSError:
        pass


# --------------------------------------------------------------------------- metadata


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


def _from_corft_episodes(bag: Path) -> dict | None:
    """The logging area's reader, when that module is present (it owns the episode.yaml format)."""
    try:
        from corft_ros.core.episodes import load_episode_metadata  # type: ignore[attr-defined]
    except Exception:
        return None
    try:
        data = load_episode_metadata(bag)
    except Exception:
        return None
    return dict(data) if isinstance(data, dict) else None


def episode_metadata(bag: Path) -> dict:
    """Episode metadata as a flat dict: `instruction` (str|None), `success` (bool|None),
    `joint_names` (list|None), plus whatever else was recorded.

    Sources, later ones filling gaps: the logging area's reader, `episode.yaml` in the bag folder
    (or `<bag>.yaml`/`episode.yaml` beside it), the bag's metadata.yaml `custom_data`.
    """
    merged: dict = {}
    sources: list[dict] = []
    found = _from_corft_episodes(bag)
    if found:
        sources.append(found)
    for candidate in (bag / "episode.yaml", bag.parent / "episode.yaml", bag.parent / f"{bag.name}.yaml"):
        if candidate.is_file():
            try:
                data = yaml.safe_load(candidate.read_text())
            except (OSError, yaml.YAMLError) as exc:
                raise BagError(f"{bag}: {candidate.name} is not valid YAML ({_one_line(exc)})") from None
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
