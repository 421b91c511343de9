"""Label a finished episode (success/failure) in episode.yaml and in the bag's metadata.yaml custom data."""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from corft_ros.core.episodes.errors import EpisodeReadError
from corft_ros.core.episodes.layout import EPISODE_FILENAME, bag_dir_of, episode_dir_of
from corft_ros.core.episodes.metadata import EpisodeMetadata, read_episode_yaml, write_episode_yaml


def set_episode_label(path: str | Path, success: bool, cycle_time_s: float | None = None) -> EpisodeMetadata:
    """Set the success label (and cycle time, when given) of a closed episode; returns the new record."""
    ep = episode_dir_of(path)
    file = ep / EPISODE_FILENAME
    if not file.is_file():
        raise EpisodeReadError(f"{ep}: no {EPISODE_FILENAME} to label")
    meta = read_episode_yaml(file)
    meta.success = bool(success)
    if cycle_time_s is not None:
        meta.cycle_time_s = float(cycle_time_s)
    write_episode_yaml(file, meta)
    bag_meta = bag_dir_of(ep) / "metadata.yaml"
    if bag_meta.is_file():
        data = yaml.safe_load(bag_meta.read_text())
        info = data["rosbag2_bagfile_information"]
        info["custom_data"] = {**(info.get("custom_data") or {}), **meta.custom_data()}
        tmp = bag_meta.with_name("metadata.yaml.tmp")
        tmp.write_text(yaml.safe_dump(data, sort_keys=False))
        os.replace(tmp, bag_meta)
    return meta
