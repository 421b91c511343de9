"""One pass over an episode bag: every message of the wanted topics (cameras, joint states, the action topic,
takeovers when recorded) is counted, hashed into the cache key and filed under its stream — camera frames into their
tick cells (decoded later, only where a tick uses them), joint positions by name, array commands in robot.yaml order
and JointTrajectory commands as (start, point times, positions) — ready for the alignment onto the control ticks.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import struct
import zlib
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from corft_ros.core.dataset.config import DatasetConfig
from corft_ros.core.dataset.episode import EpisodeProblem
from corft_ros.core.dataset.frames import FrameCells
from corft_ros.core.episodes import cdr
from corft_ros.core.episodes.reader import EpisodeBag
from corft_ros.core.robot import RobotConfig


@functools.lru_cache(maxsize=1)
def typestore():
    """One typestore per process: rosbags compiles a deserializer per type on first use."""
    from rosbags.typesys import Stores, get_typestore

    return get_typestore(Stores.ROS2_KILTED)


def _stamp(header, log_ns: int) -> int:
    ns = int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)
    return ns if ns > 0 else log_ns


_Trajectory = tuple[int, np.ndarray, np.ndarray, bool]  # (start, times[P], positions[P, d], stamped)


@dataclass
class Streams:
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


def read_streams(bag: Path, reader: EpisodeBag, pool: ThreadPoolExecutor, robot: RobotConfig, cfg: DatasetConfig,
                  command_order: np.ndarray, topics: dict[str, str], cam_topics: dict[str, str], action_topic: str,
                  dt: int) -> Streams:
    """One pass over the bag's wanted topics (cameras, joint states, the action topic, takeovers when recorded)."""
    ts = typestore()
    pending: deque = deque()
    streams = Streams(
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
