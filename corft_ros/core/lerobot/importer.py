"""`corft-ros bag import-lerobot`: a LeRobotDataset v2.1 -> episodes as our logger writes them.

Each dataset frame k becomes, at t = start + k/fps, one `sensor_msgs/Image` (rgb8) per camera, one
`sensor_msgs/JointState` (observation.state by joint name) and one `std_msgs/Float64MultiArray` on the forward
controller's command topic (action, robot.yaml order), written through `EpisodeWriter` with episode metadata
(instruction = the task, the success label). The trainer reads them exactly as recorded episodes: at the same
rate its ticks fall on the frames, so its dataset equals the exported one. `start` and the folder name are what an
export from corft_ros recorded (so a round trip gives the same episodes back), else a whole second and a new name.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from corft_ros.core import topics
from corft_ros.core.dataset.config import FORWARD_COMMANDS
from corft_ros.core.episodes.layout import new_episode_dir
from corft_ros.core.episodes.metadata import EpisodeMetadata
from corft_ros.core.lerobot import v21, video
from corft_ros.core.robot import RobotConfig
from corft_ros.core.topics import canonical

DEFAULT_START_NS = 1_700_000_000 * 1_000_000_000  # for datasets from elsewhere: a whole second, so on any tick grid
LABELS = ("keep", "success", "failure")


@dataclass
class ImportReport:
    output: Path
    episodes: list[Path] = field(default_factory=list)
    frames: int = 0
    seconds: float = 0.0

    def summary(self) -> str:
        return f"{len(self.episodes)} episodes, {self.frames} frames -> {self.output} in {self.seconds:.1f} s"


def _columns(root: Path, index: int) -> dict[str, np.ndarray]:
    import pyarrow.parquet as pq

    table = pq.read_table(root / v21.data_path(index))
    out = {}
    for name in table.column_names:
        col = table.column(name).combine_chunks()
        if hasattr(col, "flatten") and hasattr(col.type, "list_size"):
            out[name] = col.flatten().to_numpy(zero_copy_only=False).reshape(len(col), col.type.list_size)
        else:
            out[name] = col.to_numpy(zero_copy_only=False)
    return out


def _by_name(values: np.ndarray, names: list[str] | None, robot: RobotConfig, what: str) -> np.ndarray:
    """[T, d] in robot.yaml order (mapped by the feature's joint names when it has them)."""
    if names:
        missing = [n for n in robot.joint_names if n not in names]
        if missing:
            raise v21.DatasetFormatError(f"{what} lacks joints {missing} of the robot (it has {names})")
        return values[:, [names.index(n) for n in robot.joint_names]]
    if values.shape[1] != robot.dof:
        raise v21.DatasetFormatError(f"{what} has {values.shape[1]} values and no joint names; the robot has "
                                     f"{robot.dof}")
    return values


def import_dataset(
    dataset: str | Path,
    output: str | Path,
    robot: RobotConfig,
    *,
    label: str = "keep",
    unlabelled: bool | None = True,
    log: Callable[[str], None] = print,
) -> ImportReport:
    """Write every episode of `dataset` as an episode folder under `output`. `label`: keep the dataset's
    per-episode `success` (episodes without one get `unlabelled`), or mark all 'success'/'failure'."""
    from corft_ros.core.episodes.typestore import typestore

    t0 = time.monotonic()
    root = Path(dataset)
    if label not in LABELS:
        raise ValueError(f"--label must be one of {', '.join(LABELS)}, got {label!r}")
    meta, episodes, tasks = v21.read_meta(root)
    feats = meta["features"]
    fps = int(meta["fps"])
    dt = int(round(1e9 / fps))
    cams = _video_cameras(root, feats)
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)

    bag = _EpisodeBagWriter(typestore(), robot, cams, dt)
    report = ImportReport(output=out)
    for n, ep in enumerate(episodes, 1):
        index = int(ep["episode_index"])
        cols = _columns(root, index)
        state, action, held, frames = _episode_arrays(root, index, cols, feats, cams, robot)
        origin = ep.get("corft_ros") or {}
        start = int(origin.get("start_ns") or DEFAULT_START_NS)
        task_index = int(np.asarray(cols["task_index"])[0]) if "task_index" in cols else 0
        task = tasks.get(task_index, (ep.get("tasks") or [""])[0])
        success = {"success": True, "failure": False}.get(label, ep.get("success", unlabelled))
        metadata = EpisodeMetadata(
            episode_id="", instruction=task, success=success, operator=str(origin.get("operator") or "lerobot"),
            source=str(origin.get("source") or "lerobot"), robot=robot.name, joint_names=list(robot.joint_names),
            extra={"lerobot": {"dataset": str(root), "episode_index": index}},
        )
        folder = _episode_folder(out, str(origin.get("episode") or ""), task, index, start)
        metadata.episode_id = folder.name
        bag.write(folder, metadata, start, state, action, held, frames)
        report.episodes.append(folder)
        report.frames += len(state)
        log(f"episode {n}/{len(episodes)}: {folder.name}: {len(state)} frames, "
            f"{ {True: 'success', False: 'failure'}.get(success, 'unlabelled') }")
    report.seconds = time.monotonic() - t0
    return report


def _video_cameras(root: Path, feats: dict) -> list[str]:
    """The dataset's cameras (its image features); raises DatasetFormatError when state or action is missing or an
    image feature is not a video."""
    cams = [k[len(v21.IMAGE_PREFIX):] for k, f in feats.items()
            if k.startswith(v21.IMAGE_PREFIX) and f["dtype"] in ("video", "image")]
    for key in (v21.STATE, v21.ACTION):
        if key not in feats:
            raise v21.DatasetFormatError(f"{root}: no {key} feature")
    if any(feats[v21.image_key(c)]["dtype"] != "video" for c in cams):
        raise v21.DatasetFormatError(f"{root}: image features stored as PNG are not read yet (videos only)")
    return cams


def _episode_arrays(root: Path, index: int, cols: dict[str, np.ndarray], feats: dict, cams: list[str],
                    robot: RobotConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """(state [T, d], action [T, d] in robot.yaml order, takeover flags [T] or [0], camera -> decoded frames) of one
    episode; raises DatasetFormatError when a video is shorter than the episode."""
    state = _by_name(np.asarray(cols[v21.STATE]), feats[v21.STATE].get("names"), robot, v21.STATE)
    action = _by_name(np.asarray(cols[v21.ACTION]), feats[v21.ACTION].get("names"), robot, v21.ACTION)
    held = (np.asarray(cols[v21.INTERVENTION]).reshape(-1) > 0.5 if v21.INTERVENTION in cols
            else np.zeros(0, dtype=bool))
    frames = {c: video.decode(root / v21.video_path(index, v21.image_key(c))) for c in cams}
    length = len(state)
    short = [c for c, f in frames.items() if len(f) < length]
    if short:
        raise v21.DatasetFormatError(f"{root}: episode {index}: video of {short} has fewer frames than {length}")
    return state, action, held, frames


def _episode_folder(out: Path, name: str, task: str, index: int, start: int) -> Path:
    """The folder an episode is written to: the name an export from corft_ros recorded when it is free, else a new
    one from the task and the episode index."""
    return (out / name if name and "/" not in name and not (out / name).exists()
            else new_episode_dir(out, f"{task or 'episode'}-{index:06d}", start / 1e9))


class _EpisodeBagWriter:
    """Writes an imported episode as the logger records one: per frame the camera images, the joint states, the
    forward command and (where it changes) the takeover state."""

    def __init__(self, ts: Any, robot: RobotConfig, cams: list[str], dt: int) -> None:
        self.ts = ts
        self.types = ts.types
        self.robot = robot
        self.cams = cams
        self.dt = dt
        self.intervention_topic = canonical(topics.INTERVENTION)
        self.js_topic = canonical(topics.JOINT_STATES)
        self.cam_topic = {c: canonical(topics.camera_image(c)) for c in cams}

    def write(self, folder: Path, metadata: EpisodeMetadata, start: int, state: np.ndarray, action: np.ndarray,
              held: np.ndarray, frames: dict[str, np.ndarray]) -> None:
        """Record the episode into `folder` on a clock starting at `start`; raises OSError if the writer failed."""
        from corft_ros.core.episodes.writer import EpisodeWriter

        now = [start]
        writer = EpisodeWriter(folder, metadata, clock_ns=lambda now=now: now[0], min_free_bytes=0)
        writer.start()
        for c in self.cams:
            writer.add_topic(self.cam_topic[c], "sensor_msgs/msg/Image")
        writer.add_topic(self.js_topic, "sensor_msgs/msg/JointState")
        writer.add_topic(FORWARD_COMMANDS, "std_msgs/msg/Float64MultiArray")
        if held.any():  # the executor's latched state, written where it changes (as the logger records it)
            writer.add_topic(self.intervention_topic, "std_msgs/msg/Bool")
        for k in range(len(state)):
            t = start + k * self.dt
            now[0] = t
            self._write_frame(writer, k, t, state, action, held, frames)
        final = writer.stop()
        if final.status != "stopped" or final.dropped_total:
            raise OSError(f"{folder}: writing the episode failed ({final.status} {final.error})")

    def _write_frame(self, writer: Any, k: int, t: int, state: np.ndarray, action: np.ndarray, held: np.ndarray,
                     frames: dict[str, np.ndarray]) -> None:
        """Write frame k's messages, stamped `t`."""
        ts, T_ = self.ts, self.types
        Header, Time = T_["std_msgs/msg/Header"], T_["builtin_interfaces/msg/Time"]
        Image, JointState = T_["sensor_msgs/msg/Image"], T_["sensor_msgs/msg/JointState"]
        Multi, Layout = T_["std_msgs/msg/Float64MultiArray"], T_["std_msgs/msg/MultiArrayLayout"]
        Bool = T_["std_msgs/msg/Bool"]
        header = Header(stamp=Time(sec=t // 1_000_000_000, nanosec=t % 1_000_000_000), frame_id="")
        for c in self.cams:
            img = frames[c][k]
            h, w = img.shape[:2]
            msg = Image(header=Header(stamp=header.stamp, frame_id=c), height=h, width=w, encoding="rgb8",
                        is_bigendian=0, step=w * 3, data=img.reshape(-1))
            _write(writer, self.cam_topic[c], ts.serialize_cdr(msg, "sensor_msgs/msg/Image"), t)
        js = JointState(header=header, name=list(self.robot.joint_names), position=state[k].astype(np.float64),
                        velocity=np.zeros(0), effort=np.zeros(0))
        _write(writer, self.js_topic, ts.serialize_cdr(js, "sensor_msgs/msg/JointState"), t)
        cmd = Multi(layout=Layout(dim=[], data_offset=0), data=action[k].astype(np.float64))
        _write(writer, FORWARD_COMMANDS, ts.serialize_cdr(cmd, "std_msgs/msg/Float64MultiArray"), t)
        if held.any() and (k == 0 or held[k] != held[k - 1]):
            _write(writer, self.intervention_topic, ts.serialize_cdr(Bool(data=bool(held[k])), "std_msgs/msg/Bool"),
                   t)


def _write(writer, topic: str, data, t_ns: int) -> None:
    """Hand one message to the writer, waiting while its queue is full (an import must not drop anything)."""
    payload = bytes(data)
    while writer.stats().queue_messages > 5000:
        time.sleep(0.005)
    if not writer.write(topic, payload, t_ns):
        raise OSError(f"the episode writer refused a {topic} message ({writer.stats().error or 'not recording'})")
