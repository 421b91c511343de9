"""Bag → per-episode arrays at the action rate.

Per episode (one rosbag2 folder, MCAP or sqlite3):
- ticks every 1/action_rate_hz on a grid anchored at whole multiples of dt, from the moment every
  stream has started until the first stream ends;
- images: for each camera, the latest frame whose `header.stamp` is at or before the tick (never a
  future frame), converted to RGB and resized (area) to `image_size`; only frames that some tick
  uses are decoded;
- state: `/joint_states` positions interpolated at the tick, mapped by name to robot.yaml order;
- action: the command in force at the tick (Float64MultiArray in robot.yaml order, or a
  JointTrajectory evaluated at the tick), i.e. what was actually sent to the controller.

The bag is read once (streams.py) and its streams resampled onto the ticks (align.py); caching and the instruction
and success label are the loader's (load.py).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from corft_ros.core.dataset.align import action_at, images_at, onto_header_clock, state_at, takeover_flags, tick_grid
from corft_ros.core.dataset.config import DatasetConfig, dt_ns
from corft_ros.core.dataset.episode import EpisodeProblem
from corft_ros.core.dataset.frames import FrameError, area_resize  # noqa: F401 (area_resize: API)
from corft_ros.core.dataset.streams import Streams, read_streams
from corft_ros.core.episodes.reader import EpisodeBag, training_metadata
from corft_ros.core.robot import RobotConfig


def build_episode(bag: Path, robot: RobotConfig, cfg: DatasetConfig, meta: dict | None = None) -> tuple[dict, dict]:
    """Decode one bag into tick-aligned arrays. Returns (arrays, stats); raises EpisodeProblem."""
    bag = Path(bag)
    meta = meta if meta is not None else training_metadata(bag)
    names = robot.joint_names
    recorded_names = meta.get("joint_names")
    command_order = np.arange(robot.dof)
    if recorded_names:
        if sorted(recorded_names) != sorted(names):
            missing = [n for n in names if n not in recorded_names]
            extra = [n for n in recorded_names if n not in names]
            raise EpisodeProblem(
                f"{bag}: joint names do not match the robot (missing {missing or '[]'}, unexpected {extra or '[]'})"
            )
        command_order = np.array([recorded_names.index(n) for n in names])

    workers = min(4, os.cpu_count() or 1)
    with EpisodeBag(bag, canonical_names=True, require_intact=True, metadata=meta) as reader, \
            ThreadPoolExecutor(workers) as pool:
        return _build(bag, reader, pool, robot, cfg, command_order)


def _build(bag: Path, reader: EpisodeBag, pool: ThreadPoolExecutor, robot: RobotConfig, cfg: DatasetConfig,
           command_order: np.ndarray) -> tuple[dict, dict]:
    """Read the bag once and resample its streams onto the control ticks. Returns (arrays, stats)."""
    topics = reader.topics()
    cam_topics, action_topic = _required_topics(bag, topics, cfg)
    dt = dt_ns(cfg, robot)
    streams = read_streams(bag, reader, pool, robot, cfg, command_order, topics, cam_topics, action_topic, dt)
    frames_of = _finished_frames(bag, streams, cfg, cam_topics, action_topic)
    to_header, cmd_h, offset = onto_header_clock(streams)
    ticks = tick_grid(bag, streams, cmd_h, dt, cfg.min_ticks)
    state = state_at(streams, ticks)
    action = action_at(streams, cmd_h, ticks)
    images, frame_report = images_at(bag, streams.cells, frames_of, ticks, dt, cfg.stale_factor)

    if not np.all(np.isfinite(state)) or not np.all(np.isfinite(action)):
        raise EpisodeProblem(f"{bag}: NaN/Inf in joint states or commands")
    arrays = {
        "state": state.astype(np.float32),
        "action": action.astype(np.float32),
        "tick_ns": ticks,
        "intervention": takeover_flags(streams.takeover_log, ticks, to_header),
        **{f"image_{cam}": img for cam, img in images.items()},
    }
    stats = {
        "ticks": len(ticks),
        "duration_s": round((ticks[-1] - ticks[0]) / 1e9, 3),
        "action_topic": action_topic,
        "clock_offset_ns": offset,
        "messages": streams.message_count,
        "bytes": streams.byte_count,
        "cameras": frame_report,
        "content_hash": streams.digest.hexdigest()[:32],
    }
    return arrays, stats


def _required_topics(bag: Path, topics: dict[str, str], cfg: DatasetConfig) -> tuple[dict[str, str], str]:
    """(camera -> image topic, the first configured action topic the bag has); raises EpisodeProblem naming the
    required topics the bag lacks."""
    cam_topics = {cam: cfg.image_topic.format(name=cam) for cam in cfg.camera_names}
    action_topic = next((t for t in cfg.action_topics if t in topics), None)
    missing = [t for t in cam_topics.values() if t not in topics]
    if cfg.joint_states_topic not in topics:
        missing.append(cfg.joint_states_topic)
    if action_topic is None:
        missing.append(" or ".join(cfg.action_topics))
    if missing:
        raise EpisodeProblem(f"{bag}: missing required topics: {', '.join(missing)}")
    return cam_topics, action_topic


def _finished_frames(bag: Path, streams: Streams, cfg: DatasetConfig, cam_topics: dict[str, str],
                     action_topic: str) -> dict:
    """The decoded frames per camera (cell -> (stamp, image)); raises EpisodeProblem when a frame does not decode, a
    stream has no messages or a joint is never reported."""
    try:
        frames_of = {cam: cell.finish() for cam, cell in streams.cells.items()}
    except FrameError as exc:
        raise EpisodeProblem(f"{bag}: {exc}") from None

    empty = [cam_topics[c] for c, cell in streams.cells.items() if not cell.stamps]
    if not streams.js_log:
        empty.append(cfg.joint_states_topic)
    if not streams.cmd_t and not streams.trajectories:
        empty.append(action_topic)
    if empty:
        raise EpisodeProblem(f"{bag}: no messages on {', '.join(empty)}")
    missing_joints = [n for n in streams.robot.joint_names if not streams.js_t[n]]
    if missing_joints:
        raise EpisodeProblem(f"{bag}: {cfg.joint_states_topic} never reports joints {missing_joints}")
    return frames_of
