"""Bag → per-episode arrays at the action rate, cached as memory-mappable .npy files.

Per episode (one rosbag2 folder, MCAP or sqlite3):
- ticks every 1/action_rate_hz on a grid anchored at whole multiples of dt, from the moment every
  stream has started until the first stream ends;
- images: for each camera, the latest frame whose `header.stamp` is at or before the tick (never a
  future frame), converted to RGB and resized (area) to `image_size`; only frames that some tick
  uses are decoded;
- state: `/joint_states` positions interpolated at the tick, mapped by name to robot.yaml order;
- action: the command in force at the tick (Float64MultiArray in robot.yaml order, or a
  JointTrajectory evaluated at the tick), i.e. what was actually sent to the controller;
- instruction and success label from the episode metadata (read fresh, never cached).

The arrays are cached under `<cache_dir>/<content hash>-<config hash>/`; a later run maps them
(`np.load(mmap_mode="r")`) without touching the bag. Bad bags are skipped with one line each
(`strict=True` makes the first one fatal).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import os
import struct
import time
import zlib
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from corft_ros.core.dataset import resample
from corft_ros.core.dataset.cache import remember_hash, remembered_hash, save_cache, stat_key, try_cache
from corft_ros.core.dataset.config import DatasetConfig, dt_ns
from corft_ros.core.dataset.frames import FrameCells, FrameError, area_resize  # noqa: F401 (area_resize: API)
from corft_ros.core.episodes import cdr
from corft_ros.core.episodes.errors import EpisodeReadError
from corft_ros.core.episodes.layout import episode_name, find_bags
from corft_ros.core.episodes.reader import EpisodeBag, training_metadata
from corft_ros.core.robot import RobotConfig


@dataclass
class Episode:
    bag: Path
    key: str
    instruction: str
    success: bool
    images: dict[str, np.ndarray]  # cam -> [T, H, W, 3] uint8
    state: np.ndarray  # [T, d] float32, robot.yaml order
    action: np.ndarray  # [T, d] float32
    tick_ns: np.ndarray  # [T] int64
    stats: dict
    from_cache: bool = False
    intervention: np.ndarray | None = None  # [T] bool: an operator (or the sim's intervener) held the arm

    def __post_init__(self) -> None:
        if self.intervention is None:
            self.intervention = np.zeros(len(self.state), dtype=bool)

    def __len__(self) -> int:
        return int(self.state.shape[0])


class EpisodeProblem(EpisodeReadError):
    """An episode the trainer cannot use (missing topics or label, other joints); a kind of EpisodeReadError."""


# --------------------------------------------------------------------------- building


@functools.lru_cache(maxsize=1)
def _typestore():
    """One typestore per process: rosbags compiles a deserializer per type on first use."""
    from rosbags.typesys import Stores, get_typestore

    return get_typestore(Stores.ROS2_KILTED)


def _stamp(header, log_ns: int) -> int:
    ns = int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)
    return ns if ns > 0 else log_ns


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


_Trajectory = tuple[int, np.ndarray, np.ndarray, bool]  # (start, times[P], positions[P, d], stamped)


@dataclass
class _Streams:
    """One bag's samples per stream (frames, joint states, commands, takeover changes) and the hash of what was read."""

    bag: Path
    robot: RobotConfig
    command_order: np.ndarray
    topic_cam: dict[str, str]
    joint_states_topic: str
    action_topic: str
    intervention_topic: str
    cells: dict[str, FrameCells]
    js_t: dict[str, list[int]]
    js_q: dict[str, list[float]]
    js_log: list[int] = field(default_factory=list)
    js_header: list[int] = field(default_factory=list)
    cmd_t: list[int] = field(default_factory=list)
    cmd_q: list[np.ndarray] = field(default_factory=list)
    trajectories: list[_Trajectory] = field(default_factory=list)
    takeover_log: list[tuple[int, bool]] = field(default_factory=list)  # (log time, state) of corft/intervention
    message_count: int = 0
    byte_count: int = 0
    # The cache key: every message the dataset is made of (topic, log time, CRC-32 of its bytes), so a
    # re-chunked, repaired or converted (sqlite3 <-> MCAP) bag with the same messages keeps its entry.
    digest: hashlib._Hash = field(default_factory=hashlib.sha256)

    def add(self, msg, topic_id: int, ts) -> None:
        """Count and hash one message and file it under its stream; one that does not parse is an EpisodeProblem."""
        self.message_count += 1
        self.byte_count += len(msg.data)
        self.digest.update(struct.pack("<BqII", topic_id, msg.log_time_ns, len(msg.data), zlib.crc32(msg.data)))
        try:
            self._file(msg, ts)
        except (cdr.CdrError, ValueError) as exc:
            if isinstance(exc, EpisodeProblem):
                raise
            raise EpisodeProblem(f"{self.bag}: bad {msg.topic} message at {msg.log_time_ns} ns ({exc})") from None

    def _file(self, msg, ts) -> None:
        """Decode one message into the samples of its stream."""
        if msg.topic in self.topic_cam:
            view = cdr.parse_image(msg.data)
            if view.stamp_ns <= 0:
                view = dataclasses.replace(view, stamp_ns=msg.log_time_ns)
            self.cells[self.topic_cam[msg.topic]].add(view)
        elif msg.topic == self.joint_states_topic:
            self._joint_states(ts.deserialize_cdr(msg.data, msg.msgtype), msg.log_time_ns)
        elif msg.topic == self.action_topic:
            self._command(ts.deserialize_cdr(msg.data, msg.msgtype), msg.msgtype, msg.log_time_ns)
        elif msg.topic == self.intervention_topic:
            self.takeover_log.append((msg.log_time_ns, bool(ts.deserialize_cdr(msg.data, msg.msgtype).data)))

    def _joint_states(self, js, log_ns: int) -> None:
        """Record a JointState's header stamp and the positions of the robot's joints."""
        stamp = _stamp(js.header, log_ns)
        self.js_log.append(log_ns)
        self.js_header.append(stamp)
        for name, pos in zip(js.name, js.position, strict=False):
            if name in self.js_t:
                self.js_t[name].append(stamp)
                self.js_q[name].append(float(pos))

    def _command(self, cmd, msgtype: str, log_ns: int) -> None:
        """Record a command: a Float64MultiArray in robot.yaml order, or a JointTrajectory."""
        if msgtype.endswith("Float64MultiArray"):
            values = np.asarray(cmd.data, dtype=np.float64)
            if values.shape != (self.robot.dof,):
                raise EpisodeProblem(
                    f"{self.bag}: {self.action_topic} command has {values.size} values, expected {self.robot.dof}"
                )
            self.cmd_t.append(log_ns)
            self.cmd_q.append(values[self.command_order])
        else:
            self.trajectories.append(_trajectory(self.bag, cmd, log_ns, self.robot))


def _build(bag: Path, reader: EpisodeBag, pool: ThreadPoolExecutor, robot: RobotConfig, cfg: DatasetConfig,
           command_order: np.ndarray) -> tuple[dict, dict]:
    """Read the bag once and resample its streams onto the control ticks. Returns (arrays, stats)."""
    topics = reader.topics()
    cam_topics, action_topic = _required_topics(bag, topics, cfg)
    dt = dt_ns(cfg, robot)
    streams = _read_streams(bag, reader, pool, robot, cfg, command_order, topics, cam_topics, action_topic, dt)
    frames_of = _finished_frames(bag, streams, cfg, cam_topics, action_topic)
    to_header, cmd_h, offset = _onto_header_clock(streams)
    ticks = _tick_grid(bag, streams, cmd_h, dt, cfg.min_ticks)
    state = _state_at(streams, ticks)
    action = _action_at(streams, cmd_h, ticks)
    images, frame_report = _images_at(bag, streams.cells, frames_of, ticks, dt, cfg.stale_factor)

    if not np.all(np.isfinite(state)) or not np.all(np.isfinite(action)):
        raise EpisodeProblem(f"{bag}: NaN/Inf in joint states or commands")
    arrays = {
        "state": state.astype(np.float32),
        "action": action.astype(np.float32),
        "tick_ns": ticks,
        "intervention": _takeover_flags(streams.takeover_log, ticks, to_header),
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


def _read_streams(bag: Path, reader: EpisodeBag, pool: ThreadPoolExecutor, robot: RobotConfig, cfg: DatasetConfig,
                  command_order: np.ndarray, topics: dict[str, str], cam_topics: dict[str, str], action_topic: str,
                  dt: int) -> _Streams:
    """One pass over the bag's wanted topics (cameras, joint states, the action topic, takeovers when recorded)."""
    ts = _typestore()
    pending: deque = deque()
    streams = _Streams(
        bag=bag,
        robot=robot,
        command_order=command_order,
        topic_cam={t: c for c, t in cam_topics.items()},
        joint_states_topic=cfg.joint_states_topic,
        action_topic=action_topic,
        intervention_topic=cfg.intervention_topic,
        cells={cam: FrameCells(dt, tuple(cfg.image_size), cam, pool, pending) for cam in cfg.camera_names},
        js_t={n: [] for n in robot.joint_names},
        js_q={n: [] for n in robot.joint_names},
    )
    want = set(cam_topics.values()) | {cfg.joint_states_topic, action_topic}
    if cfg.intervention_topic in topics:
        want.add(cfg.intervention_topic)
    topic_ids = {t: i for i, t in enumerate(sorted(want))}
    for msg in reader.messages(want):
        streams.add(msg, topic_ids[msg.topic], ts)
    return streams


def _finished_frames(bag: Path, streams: _Streams, cfg: DatasetConfig, cam_topics: dict[str, str],
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


def _onto_header_clock(streams: _Streams) -> tuple[Callable[[np.ndarray], np.ndarray], np.ndarray, int]:
    """(log time -> header-clock offsets, command times on the header clock, the median offset); unstamped
    trajectories are moved onto the header clock in place."""
    # Commands carry no header: their time is the bag's log time. The header stamps may live on another clock
    # (sim time, which also drifts from the wall clock when the sim runs slower than real time): move command
    # times onto the header clock with the offset the joint states show around each command (about zero on a
    # real robot, where both are the same clock). A trajectory with a header stamp is already on it.
    to_header = functools.partial(resample.clock_offsets, np.asarray(streams.js_log, np.int64),
                                  np.asarray(streams.js_header, np.int64))
    cmd_h = np.asarray(streams.cmd_t, dtype=np.int64)
    trajectories = streams.trajectories
    if streams.cmd_t:
        cmd_offsets = to_header(cmd_h)
        cmd_h = cmd_h + cmd_offsets
        offset = int(np.median(cmd_offsets))
    else:
        unstamped = [i for i, tr in enumerate(trajectories) if not tr[3]]
        shifts = to_header(np.array([trajectories[i][0] for i in unstamped], dtype=np.int64)) if unstamped else []
        for i, shift in zip(unstamped, shifts, strict=True):
            start, times, pos, _ = trajectories[i]
            trajectories[i] = (start + int(shift), times + int(shift), pos, True)
        offset = int(np.median(shifts)) if len(shifts) else 0
    return to_header, cmd_h, offset


def _tick_grid(bag: Path, streams: _Streams, cmd_h: np.ndarray, dt: int, min_ticks: int) -> np.ndarray:
    """The control ticks (whole multiples of dt) from when every stream has started until the first one ends;
    raises EpisodeProblem when there are fewer than `min_ticks`."""
    names = streams.robot.joint_names
    cells = streams.cells.values()
    starts = [min(c.stamps) for c in cells] + [min(streams.js_t[n][0] for n in names)]
    stops = [max(c.stamps) for c in cells] + [min(max(streams.js_t[n]) for n in names)]
    if streams.cmd_t:
        starts.append(int(cmd_h.min()))
    else:
        starts.append(min(t[0] for t in streams.trajectories))
    first_tick = -(-max(starts) // dt) * dt
    ticks = resample.make_ticks(first_tick, min(stops), dt / 1e9)
    if len(ticks) < min_ticks:
        raise EpisodeProblem(
            f"{bag}: only {len(ticks)} control ticks where all streams overlap (need {min_ticks})"
        )
    return ticks


def _state_at(streams: _Streams, ticks: np.ndarray) -> np.ndarray:
    """[T, d] float64 joint positions interpolated at the ticks, in robot.yaml order."""
    state = np.empty((len(ticks), streams.robot.dof), dtype=np.float64)
    for k, n in enumerate(streams.robot.joint_names):
        t = np.asarray(streams.js_t[n], dtype=np.int64)
        q = np.asarray(streams.js_q[n], dtype=np.float64)
        keep = resample.sort_unique(t)
        state[:, k] = resample.interpolate(t[keep], q[keep, None], ticks)[:, 0]
    return state


def _action_at(streams: _Streams, cmd_h: np.ndarray, ticks: np.ndarray) -> np.ndarray:
    """[T, d] the command in force at each tick: the latest array command, else the trajectories evaluated."""
    if streams.cmd_t:
        q = np.stack(streams.cmd_q)
        keep = resample.sort_unique(cmd_h)
        idx = resample.latest_at_or_before(cmd_h[keep], ticks)
        return q[keep][np.maximum(idx, 0)]
    return _evaluate_trajectories(streams.trajectories, ticks)


def _images_at(bag: Path, cells: dict[str, FrameCells], frames_of: dict, ticks: np.ndarray, dt: int,
               stale_factor: float) -> tuple[dict[str, np.ndarray], dict[str, dict]]:
    """(camera -> [T, H, W, 3] the latest frame at or before each tick, camera -> frame stats); raises
    EpisodeProblem when a camera has no frame by the first tick."""
    images: dict[str, np.ndarray] = {}
    frame_report: dict[str, dict] = {}
    for cam, cell in cells.items():
        decoded = frames_of[cam]
        keys = np.array(sorted(decoded), dtype=np.int64)
        idx = np.searchsorted(keys, ticks // dt, side="right") - 1
        if np.any(idx < 0):
            raise EpisodeProblem(f"{bag}: camera {cam} has no frame at or before tick {int(ticks[0])}")
        frames = [decoded[int(keys[i])] for i in idx]
        images[cam] = np.stack([f[1] for f in frames])
        chosen_stamps = np.array([f[0] for f in frames], dtype=np.int64)
        if np.any(chosen_stamps > ticks):  # the invariant the whole pipeline rests on
            raise AssertionError(f"{bag}: camera {cam} picked a future frame")
        all_stamps = np.sort(np.asarray(cell.stamps, dtype=np.int64))
        chosen_idx = np.searchsorted(all_stamps, chosen_stamps, side="left")
        frame_report[cam] = resample.frame_stats(all_stamps, ticks, chosen_idx, stale_factor).as_dict()
    return images, frame_report


def _takeover_flags(changes: list[tuple[int, bool]], ticks: np.ndarray, to_header) -> np.ndarray:
    """[T] bool: whether a takeover held the arm at each tick (the latest corft/intervention state at or before the
    tick, its log time moved onto the header clock like the commands'; the bag starts with the latched state)."""
    flags = np.zeros(len(ticks), dtype=bool)
    if not changes:
        return flags
    times = np.array([t for t, _ in changes], dtype=np.int64)
    states = np.array([v for _, v in changes], dtype=bool)
    times = times + to_header(times)
    keep = resample.sort_unique(times)
    idx = resample.latest_at_or_before(times[keep], ticks)
    flags[idx >= 0] = states[keep][idx[idx >= 0]]
    return flags


def _trajectory(bag: Path, msg, log_ns: int, robot: RobotConfig) -> tuple[int, np.ndarray, np.ndarray, bool]:
    """(start, point times, positions, stamped): start is header.stamp, or the log time when that is 0."""
    try:
        idx = robot.index_of(list(msg.joint_names))
    except ValueError as exc:
        raise EpisodeProblem(f"{bag}: trajectory command: {exc}") from None
    if len(idx) != robot.dof:
        missing = [n for n in robot.joint_names if n not in msg.joint_names]
        raise EpisodeProblem(f"{bag}: trajectory command lacks joints {missing}")
    if not msg.points:
        raise EpisodeProblem(f"{bag}: trajectory command with no points at {log_ns} ns")
    stamped = int(msg.header.stamp.sec) > 0 or int(msg.header.stamp.nanosec) > 0
    start = _stamp(msg.header, log_ns)
    times = np.array(
        [int(p.time_from_start.sec) * 1_000_000_000 + int(p.time_from_start.nanosec) for p in msg.points], np.int64
    )
    pos = np.zeros((len(msg.points), robot.dof))
    for i, p in enumerate(msg.points):
        if len(p.positions) != robot.dof:
            raise EpisodeProblem(f"{bag}: trajectory point {i} has {len(p.positions)} positions, expected {robot.dof}")
        pos[i, idx] = p.positions
    return start, start + times, pos, stamped


def _evaluate_trajectories(trajs: list, ticks: np.ndarray) -> np.ndarray:
    """Each new trajectory replaces the previous one (ros2_control semantics); points interpolated."""
    trajs = sorted(trajs, key=lambda x: x[0])
    starts = np.array([t[0] for t in trajs], dtype=np.int64)
    which = np.maximum(np.searchsorted(starts, ticks, side="right") - 1, 0)
    out = np.empty((len(ticks), trajs[0][2].shape[1]))
    for i, tick in enumerate(ticks):
        _, times, pos, _ = trajs[which[i]]
        out[i] = resample.interpolate(times, pos, np.array([tick]))[0] if len(times) > 1 else pos[0]
    return out


def load_episode(
    bag: Path, robot: RobotConfig, cfg: DatasetConfig, log: Callable[[str], None] = print
) -> Episode:
    """One episode from the cache, or built from its bag (and cached). Raises EpisodeProblem."""
    bag = Path(bag)
    meta = training_metadata(bag)
    if cfg.require_instruction and not meta.get("instruction"):
        raise EpisodeProblem(f"{bag}: episode metadata has no instruction")
    if cfg.require_label and meta.get("success") is None:
        raise EpisodeProblem(
            f"{bag}: episode has no success label (label it with /corft/episode/label or in episode.yaml)"
        )
    cache_root = cfg.resolved_cache_dir()
    suffix = cfg.fingerprint(robot)
    memo = cache_root / f"hashes-{suffix}.json"  # per config: the hash covers the topics this config reads
    arrays = stats = None
    from_cache = False
    content = remembered_hash(bag, memo)
    if content is not None:
        folder = cache_root / f"{content}-{suffix}"
        arrays, stats = try_cache(folder, bag, cfg.camera_names, log)
        from_cache = arrays is not None
    if arrays is None:
        # Unknown at this path (or not cached): the build hashes the messages it reads; a bag copied from
        # elsewhere (same messages) then finds the entry built before and the fresh arrays are dropped.
        key_before = stat_key(bag)
        built, stats = build_episode(bag, robot, cfg, meta)
        content = stats["content_hash"]
        remember_hash(bag, memo, content, key_before)
        folder = cache_root / f"{content}-{suffix}"
        cached, cached_stats = try_cache(folder, bag, cfg.camera_names, log) if folder.is_dir() else (None, None)
        if cached is not None:
            arrays, stats, from_cache = cached, cached_stats, True
        else:
            save_cache(folder, built, stats)
            loaded, loaded_stats = try_cache(folder, bag, cfg.camera_names, lambda _m: None)
            if loaded is None:  # unwritable cache folder, or another process replacing it: train from memory
                arrays = built
            else:
                arrays, stats = loaded, loaded_stats
    key = folder.name
    return Episode(
        bag=bag,
        key=key,
        instruction=meta.get("instruction") or "",
        success=bool(meta.get("success")),
        images={c: arrays[f"image_{c}"] for c in cfg.camera_names},
        state=arrays["state"],
        action=arrays["action"],
        tick_ns=arrays["tick_ns"],
        stats=stats,
        from_cache=from_cache,
        intervention=np.asarray(arrays["intervention"], dtype=bool),
    )


@dataclass
class LoadReport:
    episodes: list[Episode]
    problems: list[str]
    seconds: float

    def lines(self) -> list[str]:
        out = []
        for ep in self.episodes:
            cams = ", ".join(
                f"{c}: {s['dropped']} dropped, {s['stale_ticks']} stale" for c, s in ep.stats["cameras"].items()
            )
            src = "cache" if ep.from_cache else "bag"
            label = "success" if ep.success else "failure"
            out.append(f"{episode_name(ep.bag)}: {len(ep)} ticks, {label}, from {src}; {cams}")
        out.extend(f"skipped {p}" for p in self.problems)
        return out


def load_episodes(
    bags: str | Path | Sequence[str | Path],
    robot: RobotConfig,
    cfg: DatasetConfig | None = None,
    strict: bool = False,
    log: Callable[[str], None] = print,
) -> LoadReport:
    """Every usable episode under `bags` (a folder of episode folders, one bag, or a list of bags).

    Unusable bags are skipped with a one-line error (logged and listed in `problems`); with `strict`
    the first one raises EpisodeProblem.
    """
    cfg = cfg or DatasetConfig()
    t0 = time.perf_counter()
    paths: list[Path] = []
    for item in [bags] if isinstance(bags, str | Path) else bags:
        paths.extend(find_bags(item))
    if not paths:
        raise EpisodeProblem(f"{bags}: no episode bags (.mcap/.db3) found")
    episodes: list[Episode] = []
    problems: list[str] = []
    for bag in paths:
        try:
            episodes.append(load_episode(bag, robot, cfg, log))
        except EpisodeReadError as exc:
            message = str(exc).splitlines()[0]
            if strict:
                raise EpisodeProblem(message) from None
            log(f"error: {message} (skipped)")
            problems.append(message)
    if not episodes:
        raise EpisodeProblem(f"{bags}: no usable episodes ({len(problems)} skipped)")
    return LoadReport(episodes, problems, time.perf_counter() - t0)


def dataset_summary(report: LoadReport) -> dict:
    eps = report.episodes
    return {
        "episodes": len(eps),
        "successes": sum(e.success for e in eps),
        "ticks": int(sum(len(e) for e in eps)),
        "skipped": len(report.problems),
        "from_cache": sum(e.from_cache for e in eps),
        "instructions": sorted({e.instruction for e in eps}),
        "seconds": round(report.seconds, 3),
    }
