"""Repair a bag whose writer died: recover every intact chunk, rewrite a closed MCAP + metadata.yaml."""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from rosbags.interfaces import Connection
from rosbags.rosbag2 import Reader, Writer
from rosbags.rosbag2.storage_mcap import get_qos

from corft_ros.core.episodes.errors import EpisodeReadError
from corft_ros.core.episodes.layout import EPISODE_FILENAME, bag_dir_of, episode_dir_of, mcap_files
from corft_ros.core.episodes.metadata import EpisodeMetadata, TopicStats, read_episode_yaml, write_episode_yaml
from corft_ros.core.episodes.reader import bag_is_intact
from corft_ros.core.episodes.scan import McapScan, scan_mcap
from corft_ros.core.episodes.typestore import hash_for_definition
from corft_ros.core.episodes.writer import open_bag_writer


@dataclass
class RepairReport:
    path: Path
    repaired: bool
    messages: int = 0
    topics: dict[str, int] = field(default_factory=dict)
    damage: str = ""  # what the scanner found wrong ("" when the bag was intact)
    bytes_lost: int = 0  # trailing bytes that were not part of an intact chunk

    def summary(self) -> str:
        if not self.repaired:
            return f"{self.path}: intact, nothing to repair"
        return (
            f"{self.path}: repaired, {self.messages} messages on {len(self.topics)} topics recovered"
            f"{f', {self.bytes_lost} trailing bytes dropped' if self.bytes_lost else ''} ({self.damage})"
        )


def repair_episode(path: str | Path, force: bool = False) -> RepairReport:
    """Rebuild the bag (closed MCAP with index, metadata.yaml with custom data) and episode.yaml.

    The rebuilt bag is written like a recorded one (writer.open_bag_writer): metadata version 8, type hashes."""
    ep = episode_dir_of(path)
    bag = bag_dir_of(path)
    files = mcap_files(bag)
    if not files:
        raise EpisodeReadError(f"{bag}: no .mcap file to repair")
    if bag_is_intact(bag) and not force:
        return RepairReport(bag, repaired=False)

    meta_file = ep / EPISODE_FILENAME
    meta = _episode_metadata(ep, meta_file)
    work = ep / f".{bag.name}.repair"
    if work.exists():
        shutil.rmtree(work)
    work.mkdir()
    writer = open_bag_writer(work / bag.name, "zstd" if meta.compression == "zstd" else "none")
    report = RepairReport(bag, repaired=True)
    try:
        types, end_ns = _recover_messages(files, writer, report)
        _mark_repaired(meta, report, types, end_ns)
        for key, value in meta.custom_data().items():
            writer.set_custom_data(key, value)
        writer.close()
    except BaseException:
        writer.abort()
        shutil.rmtree(work, ignore_errors=True)
        raise

    _replace_bag(bag, ep, work, report.messages)
    write_episode_yaml(meta_file, meta)
    return report


def _episode_metadata(ep: Path, meta_file: Path) -> EpisodeMetadata:
    """The episode's metadata from episode.yaml, or fresh metadata named after the folder when that is missing or
    unreadable."""
    try:
        return read_episode_yaml(meta_file) if meta_file.is_file() else EpisodeMetadata(episode_id=ep.name)
    except Exception:
        return EpisodeMetadata(episode_id=ep.name)


def _recover_messages(files: list[Path], writer: Writer, report: RepairReport) -> tuple[dict[str, str], int | None]:
    """Copy every intact message of `files` into `writer` and fill the report's damage, counts and bytes lost.
    Returns (topic -> message type, the latest end time the scans found, or None)."""
    counts: dict[str, int] = {}
    types: dict[str, str] = {}
    end_ns: int | None = None
    damage: list[str] = []
    for file in files:
        scan = _copy_messages(file, writer, counts, types)
        if scan.damage:
            damage.append(f"{file.name}: {scan.damage}")
        report.bytes_lost += file.stat().st_size - scan.valid_bytes if not scan.complete else 0
        if scan.end_ns is not None:
            end_ns = scan.end_ns if end_ns is None else max(end_ns, scan.end_ns)

    report.damage = "; ".join(damage) or "metadata.yaml missing"
    report.topics = counts
    report.messages = sum(counts.values())
    return types, end_ns


def _copy_messages(file: Path, writer: Writer, counts: dict[str, int], types: dict[str, str]) -> McapScan:
    """Copy one MCAP file's intact messages into `writer`, counting them per topic and noting each topic's type;
    the file's scan (damage, valid bytes, end time)."""
    scan, messages = scan_mcap(file)
    conns: dict[int, Connection] = {}
    for cid, t_ns, data in messages:
        conn = conns.get(cid)
        if conn is None:
            channel = scan.channels[cid]
            schema = scan.schemas[channel.schema_id]
            conn = writer.add_connection(
                channel.topic,
                schema.name,
                msgdef=schema.data,
                rihs01=hash_for_definition(schema.name, schema.data) or "RIHS01_unknown",
                serialization_format=channel.message_encoding,
                offered_qos_profiles=get_qos(channel.metadata),
            )
            conns[cid] = conn
            types[channel.topic] = schema.name
        writer.write(conn, t_ns, data)
        counts[conn.topic] = counts.get(conn.topic, 0) + 1
    return scan


def _mark_repaired(meta: EpisodeMetadata, report: RepairReport, types: dict[str, str], end_ns: int | None) -> None:
    """Update the metadata for the recovered bag: per-topic counts, the stop time if unknown, status "repaired"
    and a note of the repair."""
    old = meta.topics
    meta.topics = {
        t: TopicStats(types.get(t, old.get(t, TopicStats("")).msgtype), n, old.get(t, TopicStats("")).dropped)
        for t, n in report.topics.items()
    }
    for t, stats in old.items():  # topics declared but with nothing recovered
        meta.topics.setdefault(t, TopicStats(stats.msgtype, 0, stats.dropped))
    if meta.stop_ns is None:
        meta.stop_ns = end_ns if end_ns is not None else meta.start_ns
    if meta.status == "recording":
        meta.status = "crashed"
    meta.extra = {**meta.extra, "repair": {"at_ns": time.time_ns(), "damage": report.damage,
                                           "bytes_lost": report.bytes_lost, "original_status": meta.status}}
    meta.status = "repaired"


def _replace_bag(bag: Path, ep: Path, work: Path, expected: int) -> None:
    """Check that the bag rebuilt in `work` holds `expected` messages, then put it in place of `bag` (the damaged one
    is moved aside first, then deleted, and so is `work`)."""
    with Reader(work / bag.name) as check:
        if check.message_count != expected:
            raise EpisodeReadError(
                f"{bag}: repaired bag holds {check.message_count} messages, expected {expected}"
            )
    damaged = ep / f".{bag.name}.damaged"
    if damaged.exists():
        shutil.rmtree(damaged)
    os.rename(bag, damaged)
    os.rename(work / bag.name, bag)
    work.rmdir()
    shutil.rmtree(damaged)
