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
from dataclasses import dataclass
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


def _build(bag: Path, reader: EpisodeBag, pool: ThreadPoolExecutor, robot: RobotConfig, cfg: DatasetConfig,
           command_order: np.ndarray) -> tuple[dict, dict]:
    names = robot.joint_names
    topics = reader.topics()
    cam_topics = {cam: cfg.image_topic.format(name=cam) for cam in cfg.camera_names}
    action_topic = next((t for t in cfg.action_topics if t in topics), None)
    missing = [t for t in cam_topics.values() if t not in topics]
    if cfg.joint_states_topic not in topics:
        missing.append(cfg.joint_states_topic)
    if action_topic is None:
        missing.append(" or ".join(cfg.action_topics))
    if missing:
        raise EpisodeProblem(f"{bag}: missing required topics: {', '.join(missing)}")

    dt = dt_ns(cfg, robot)
    ts = _typestore()
    pending: deque = deque()
    cells = {cam: FrameCells(dt, tuple(cfg.image_size), cam, pool, pending) for cam in cfg.camera_names}
    topic_cam = {t: c for c, t in cam_topics.items()}
    js_t: dict[str, list[int]] = {n: [] for n in names}
    js_q: dict[str, list[float]] = {n: [] for n in names}
    js_log: list[int] = []
    js_header: list[int] = []
    cmd_t: list[int] = []
    cmd_q: list[np.ndarray] = []
    trajectories: list[tuple[int, np.ndarray, np.ndarray, bool]] = []  # (start, times[P], positions[P, d], stamped)
    counts = {"messages": 0, "bytes": 0}
    want = set(cam_topics.values()) | {cfg.joint_states_topic, action_topic}
    takeover_log: list[tuple[int, bool]] = []  # (log time, state) of corft/intervention, when the bag has it
    if cfg.intervention_topic in topics:
        want.add(cfg.intervention_topic)
    # The cache key: every message the dataset is made of (topic, log time, CRC-32 of its bytes), so a
    # re-chunked, repaired or converted (sqlite3 <-> MCAP) bag with the same messages keeps its entry.
    digest = hashlib.sha256()
    topic_ids = {t: i for i, t in enumerate(sorted(want))}

    for msg in reader.messages(want):
        counts["messages"] += 1
        counts["bytes"] += len(msg.data)
        digest.update(struct.pack("<BqII", topic_ids[msg.topic], msg.log_time_ns, len(msg.data), zlib.crc32(msg.data)))
        try:
            if msg.topic in topic_cam:
                view = cdr.parse_image(msg.data)
                if view.stamp_ns <= 0:
                    view = dataclasses.replace(view, stamp_ns=msg.log_time_ns)
                cells[topic_cam[msg.topic]].add(view)
            elif msg.topic == cfg.joint_states_topic:
                js = ts.deserialize_cdr(msg.data, msg.msgtype)
                stamp = _stamp(js.header, msg.log_time_ns)
                js_log.append(msg.log_time_ns)
                js_header.append(stamp)
                for name, pos in zip(js.name, js.position, strict=False):
                    if name in js_t:
                        js_t[name].append(stamp)
                        js_q[name].append(float(pos))
            elif msg.topic == action_topic:
                cmd = ts.deserialize_cdr(msg.data, msg.msgtype)
                if msg.msgtype.endswith("Float64MultiArray"):
                    values = np.asarray(cmd.data, dtype=np.float64)
                    if values.shape != (robot.dof,):
                        raise EpisodeProblem(
                            f"{bag}: {action_topic} command has {values.size} values, expected {robot.dof}"
                        )
                    cmd_t.append(msg.log_time_ns)
                    cmd_q.append(values[command_order])
                else:
                    trajectories.append(_trajectory(bag, cmd, msg.log_time_ns, robot))
            elif msg.topic == cfg.intervention_topic:
                takeover_log.append((msg.log_time_ns, bool(ts.deserialize_cdr(msg.data, msg.msgtype).data)))
        except (cdr.CdrError, ValueError) as exc:
            if isinstance(exc, EpisodeProblem):
                raise
            raise EpisodeProblem(f"{bag}: bad {msg.topic} message at {msg.log_time_ns} ns ({exc})") from None
    try:
        frames_of = {cam: cell.finish() for cam, cell in cells.items()}
    except FrameError as exc:
        raise EpisodeProblem(f"{bag}: {exc}") from None

    empty = [cam_topics[c] for c, cell in cells.items() if not cell.stamps]
    if not js_log:
        empty.append(cfg.joint_states_topic)
    if not cmd_t and not trajectories:
        empty.append(action_topic)
    if empty:
        raise EpisodeProblem(f"{bag}: no messages on {', '.join(empty)}")
    missing_joints = [n for n in names if not js_t[n]]
    if missing_joints:
        raise EpisodeProblem(f"{bag}: {cfg.joint_states_topic} never reports joints {missing_joints}")

    # Commands carry no header: their time is the bag's log time. The header stamps may live on another clock
    # (sim time, which also drifts from the wall clock when the sim runs slower than real time): move command
    # times onto the header clock with the offset the joint states show around each command (about zero on a
    # real robot, where both are the same clock). A trajectory with a header stamp is already on it.
    to_header = functools.partial(resample.clock_offsets, np.asarray(js_log, np.int64),
                                  np.asarray(js_header, np.int64))
    cmd_h = np.asarray(cmd_t, dtype=np.int64)
    if cmd_t:
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

    starts = [min(c.stamps) for c in cells.values()] + [min(js_t[n][0] for n in names)]
    stops = [max(c.stamps) for c in cells.values()] + [min(max(js_t[n]) for n in names)]
    if cmd_t:
        starts.append(int(cmd_h.min()))
    else:
        starts.append(min(t[0] for t in trajectories))
    first_tick = -(-max(starts) // dt) * dt
    ticks = resample.make_ticks(first_tick, min(stops), dt / 1e9)
    if len(ticks) < cfg.min_ticks:
        raise EpisodeProblem(
            f"{bag}: only {len(ticks)} control ticks where all streams overlap (need {cfg.min_ticks})"
        )

    # state
    state = np.empty((len(ticks), robot.dof), dtype=np.float64)
    for k, n in enumerate(names):
        t = np.asarray(js_t[n], dtype=np.int64)
        q = np.asarray(js_q[n], dtype=np.float64)
        keep = resample.sort_unique(t)
        state[:, k] = resample.interpolate(t[keep], q[keep, None], ticks)[:, 0]

    # action
    if cmd_t:
        q = np.stack(cmd_q)
        keep = resample.sort_unique(cmd_h)
        idx = resample.latest_at_or_before(cmd_h[keep], ticks)
        action = q[keep][np.maximum(idx, 0)]
    else:
        action = _evaluate_trajectories(trajectories, ticks)

    # images
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
        frame_report[cam] = resample.frame_stats(all_stamps, ticks, chosen_idx, cfg.stale_factor).as_dict()

    if not np.all(np.isfinite(state)) or not np.all(np.isfinite(action)):
        raise EpisodeProblem(f"{bag}: NaN/Inf in joint states or commands")
    arrays = {
        "state": state.astype(np.float32),
        "action": action.astype(np.float32),
        "tick_ns": ticks,
        "intervention": _takeover_flags(takeover_log, ticks, to_header),
        **{f"image_{cam}": img for cam, img in images.items()},
    }
    stats = {
        "ticks": len(ticks),
        "duration_s": round((ticks[-1] - ticks[0]) / 1e9, 3),
        "action_topic": action_topic,
        "clock_offset_ns": offset,
        "messages": counts["messages"],
        "bytes": counts["bytes"],
        "cameras": frame_report,
        "content_hash": digest.hexdigest()[:32],
    }
    return arrays, stats


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
