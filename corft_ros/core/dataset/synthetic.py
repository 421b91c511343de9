"""Synthetic demonstration bags: real rosbag2 folders (MCAP or sqlite3) with the same topics, types and
episode metadata as recorded episodes. Used by the tests and by `corft-ros measure dataset` when no
bags are given. The scene is simple but learnable: the front camera shows a target square (whose
position sets the goal pose) and a marker that moves with the arm; commands lead the joint states.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from corft_ros.core import topics
from corft_ros.core.dataset.config import FORWARD_COMMANDS
from corft_ros.core.robot import RobotConfig
from corft_ros.core.topics import canonical


@dataclass
class SyntheticEpisode:
    instruction: str = "move to the red square"
    success: bool | None = True
    target: tuple[float, float] = (0.3, -0.2)  # in [-1, 1]^2: where the square is; sets the goal pose
    duration_s: float = 2.0
    cameras: list[str] = field(default_factory=lambda: ["front", "wrist"])
    image_hw: tuple[int, int] = (48, 64)
    camera_fps: float = 30.0
    joint_state_hz: float = 100.0
    command_hz: float = 50.0
    command_topic: str = FORWARD_COMMANDS  # or TRAJECTORY_COMMANDS
    storage: str = "mcap"  # or "sqlite3"
    start_ns: int = 1_700_000_000_000_000_000
    drop_frames: tuple[int, ...] = ()  # frame indices (camera 0) not written: simulated drops
    skip_topics: tuple[str, ...] = ()
    joint_names: list[str] | None = None  # metadata joint names (default: the robot's)
    write_metadata: bool = True
    seed: int = 0
    # takeovers: (start, end) s from the episode's start; written as the executor's latched corft/intervention
    # (the state at the start, then every change)
    interventions: tuple[tuple[float, float], ...] = ()


def goal_pose(robot: RobotConfig, target: tuple[float, float]) -> np.ndarray:
    goal = robot.home_array.copy()
    goal[0] += 0.6 * target[0]
    goal[1] += 0.4 * target[1]
    goal[2] -= 0.3 * target[1]
    goal[-1] = min(robot.upper[-1], 0.7)
    return goal


def command_at(robot: RobotConfig, ep: SyntheticEpisode, t: np.ndarray) -> np.ndarray:
    """Scripted operator: smooth move from home to the goal over 70% of the episode, then hold."""
    s = np.clip(t / (0.7 * ep.duration_s), 0.0, 1.0)
    s = s * s * (3 - 2 * s)
    home, goal = robot.home_array, goal_pose(robot, ep.target)
    return home[None, :] + s[:, None] * (goal - home)[None, :]


def render(
    cam_index: int, hw: tuple[int, int], target: tuple[float, float], q: np.ndarray, home: np.ndarray
) -> np.ndarray:
    h, w = hw
    img = np.full((h, w, 3), 40 + 30 * cam_index, dtype=np.uint8)
    ty, tx = int((0.5 + 0.35 * target[1]) * h), int((0.5 + 0.35 * target[0]) * w)
    img[max(ty - 4, 0) : ty + 4, max(tx - 4, 0) : tx + 4] = (220, 30, 30)
    dy = np.clip(0.5 + 0.6 * (q[1] - home[1]), 0.05, 0.95)
    dx = np.clip(0.5 + 0.6 * (q[0] - home[0]), 0.05, 0.95)
    my, mx = int(dy * h), int(dx * w)
    img[max(my - 3, 0) : my + 3, max(mx - 3, 0) : mx + 3] = (30, 30, 220)
    img[:, : max(1, int(q[-1] * 10)), 1] = 200  # gripper bar
    return img


def episode_messages(robot: RobotConfig, ep: SyntheticEpisode) -> list[tuple[int, str, str, bytes]]:
    """The episode's messages as (log time ns, topic, type, CDR bytes), in log-time order, `skip_topics` left out."""
    from rosbags.typesys import Stores, get_typestore


    ts = get_typestore(Stores.ROS2_KILTED)
    T = ts.types
    Header, Time = T["std_msgs/msg/Header"], T["builtin_interfaces/msg/Time"]
    Image, JointState = T["sensor_msgs/msg/Image"], T["sensor_msgs/msg/JointState"]
    Float64MultiArray, MultiArrayLayout = T["std_msgs/msg/Float64MultiArray"], T["std_msgs/msg/MultiArrayLayout"]
    JointTrajectory, JointTrajectoryPoint = (
        T["trajectory_msgs/msg/JointTrajectory"],
        T["trajectory_msgs/msg/JointTrajectoryPoint"],
    )
    Duration = T["builtin_interfaces/msg/Duration"]
    rng = np.random.default_rng(ep.seed)

    def stamp(ns: int):
        return Time(sec=int(ns // 1_000_000_000), nanosec=int(ns % 1_000_000_000))

    events: list[tuple[int, str, str, object]] = []
    cam_topics = {c: canonical(topics.camera_image(c)) for c in ep.cameras}
    n_frames = int(ep.duration_s * ep.camera_fps) + 1
    lag = 0.05
    for ci, cam in enumerate(ep.cameras):
        for i in range(n_frames):
            if ci == 0 and i in ep.drop_frames:
                continue
            t = i / ep.camera_fps + (0.002 * ci)
            q = command_at(robot, ep, np.array([t - lag]))[0]
            img = render(ci, ep.image_hw, ep.target, q, robot.home_array)
            ns = ep.start_ns + int(t * 1e9)
            h, w = ep.image_hw
            msg = Image(
                header=Header(stamp=stamp(ns), frame_id=cam),
                height=h, width=w, encoding="rgb8", is_bigendian=0, step=w * 3,
                data=img.reshape(-1),
            )
            events.append((ns + 3_000_000, cam_topics[cam], "sensor_msgs/msg/Image", msg))  # logged 3 ms later
    n_js = int(ep.duration_s * ep.joint_state_hz) + 1
    for i in range(n_js):
        t = i / ep.joint_state_hz
        q = command_at(robot, ep, np.array([t - lag]))[0] + rng.normal(0, 1e-4, robot.dof)
        ns = ep.start_ns + int(t * 1e9)
        order = list(reversed(range(robot.dof)))  # deliberately not canonical order: readers map by name
        msg = JointState(
            header=Header(stamp=stamp(ns), frame_id=""),
            name=[robot.joint_names[k] for k in order],
            position=q[order].astype(np.float64),
            velocity=np.zeros(0), effort=np.zeros(0),
        )
        events.append((ns + 1_000_000, canonical(topics.JOINT_STATES), "sensor_msgs/msg/JointState", msg))
    n_cmd = int(ep.duration_s * ep.command_hz) + 1
    trajectory = ep.command_topic.endswith("joint_trajectory")
    for i in range(n_cmd):
        t = i / ep.command_hz
        q = command_at(robot, ep, np.array([t]))[0]
        ns = ep.start_ns + int(t * 1e9)
        if trajectory:
            msg = JointTrajectory(
                header=Header(stamp=stamp(0), frame_id=""),
                joint_names=list(robot.joint_names),
                points=[JointTrajectoryPoint(
                    positions=q.astype(np.float64), velocities=np.zeros(0), accelerations=np.zeros(0),
                    effort=np.zeros(0), time_from_start=Duration(sec=0, nanosec=int(1e9 / ep.command_hz)),
                )],
            )
            events.append((ns, ep.command_topic, "trajectory_msgs/msg/JointTrajectory", msg))
        else:
            msg = Float64MultiArray(layout=MultiArrayLayout(dim=[], data_offset=0), data=q.astype(np.float64))
            events.append((ns, ep.command_topic, "std_msgs/msg/Float64MultiArray", msg))
    if ep.interventions:
        Bool = T["std_msgs/msg/Bool"]
        changes = [(0.0, False)] + [c for a, b in ep.interventions for c in ((a, True), (b, False))]
        for t, value in changes:
            events.append((ep.start_ns + int(t * 1e9), canonical(topics.INTERVENTION), "std_msgs/msg/Bool",
                           Bool(data=value)))
    events.sort(key=lambda e: e[0])
    return [(ns, topic, msgtype, bytes(ts.serialize_cdr(msg, msgtype)))
            for ns, topic, msgtype, msg in events if topic not in ep.skip_topics]


def episode_metadata(robot: RobotConfig, ep: SyntheticEpisode, episode_id: str) -> dict:
    return {
        "episode_id": episode_id,
        "instruction": ep.instruction,
        "success": ep.success,
        "operator": "synthetic",
        "source": "scripted",
        "robot": robot.name,
        "joint_names": ep.joint_names or robot.joint_names,
        "start_ns": ep.start_ns,
        "stop_ns": ep.start_ns + int(ep.duration_s * 1e9),
        "status": "stopped",
    }


def write_episode(path: str | Path, robot: RobotConfig, ep: SyntheticEpisode) -> Path:
    """Write one episode folder at `path` (which must not exist) in the logger's layout:
    `<path>/episode.yaml` and the bag in `<path>/bag/`. Returns the episode folder."""
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore

    from corft_ros.core.episodes.writer import BAG_VERSION

    ts = get_typestore(Stores.ROS2_KILTED)
    episode_dir = Path(path)
    episode_dir.mkdir(parents=True)
    plugin = StoragePlugin.MCAP if ep.storage == "mcap" else StoragePlugin.SQLITE3
    messages = episode_messages(robot, ep)
    types = {topic: msgtype for _, topic, msgtype, _ in messages}
    # the version every supported rosbag2 reads (Humble: <= 8), as the episode logger writes
    with Writer(episode_dir / "bag", version=BAG_VERSION, storage_plugin=plugin) as writer:
        conns = {topic: writer.add_connection(topic, msgtype, typestore=ts) for topic, msgtype in types.items()}
        for ns, topic, _, data in messages:
            writer.write(conns[topic], ns, data)
    if ep.write_metadata:
        meta = episode_metadata(robot, ep, episode_dir.name)
        (episode_dir / "episode.yaml").write_text(yaml.safe_dump(meta, sort_keys=False))
    return episode_dir


def write_dataset(root: str | Path, robot: RobotConfig, n: int, seed: int = 0, **overrides) -> list[Path]:
    """`n` episodes with random targets; about one in four fails (stops short, labelled failure)."""
    rng = np.random.default_rng(seed)
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(n):
        success = bool(i % 4 != 3)
        ep = SyntheticEpisode(
            target=(float(rng.uniform(-1, 1)), float(rng.uniform(-1, 1))),
            success=success,
            duration_s=float(rng.uniform(1.5, 2.5)) if success else 2.5,
            seed=seed * 1000 + i,
            start_ns=1_700_000_000_000_000_000 + i * 10_000_000_000,
        )
        for key, value in overrides.items():
            setattr(ep, key, value)
        out.append(write_episode(root / f"episode_{i:03d}", robot, ep))
    return out
