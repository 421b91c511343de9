"""`corft-ros bag export-lerobot`: recorded episodes (demos and logged rollouts) -> a LeRobotDataset v2.1.

Each frame is one tick of the trainer's dataset (`corft_ros.core.dataset.build.build_episode`, the one definition of
"the frame at tick t": the latest camera frame at or before the tick, joint states interpolated at it, the
command in force), at `fps` (default the robot's action rate). Frames keep the camera's own size unless
`image_size` is given. The dataset is written into `<output>.partial` and renamed when complete.
"""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from corft_ros.core.dataset.config import DatasetConfig
from corft_ros.core.episodes import cdr
from corft_ros.core.episodes.errors import EpisodeReadError
from corft_ros.core.episodes.layout import episode_name, find_bags
from corft_ros.core.episodes.reader import EpisodeBag, training_metadata
from corft_ros.core.lerobot import v21, video
from corft_ros.core.robot import RobotConfig


@dataclass
class ExportReport:
    output: Path
    episodes: int = 0
    frames: int = 0
    skipped: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def summary(self) -> str:
        rate = self.frames / self.seconds if self.seconds > 0 else 0.0
        skipped = f", {len(self.skipped)} skipped" if self.skipped else ""
        return (f"{self.episodes} episodes, {self.frames} frames -> {self.output} (LeRobotDataset "
                f"{v21.CODEBASE_VERSION}) in {self.seconds:.1f} s, {rate:.0f} frames/s{skipped}")


def _cameras_and_size(bag: Path, cfg: DatasetConfig) -> tuple[list[str], dict[str, tuple[int, int]]]:
    """Camera names recorded in `bag` (topics matching the dataset's image topic) and each one's frame size."""
    pattern = re.compile("^" + re.escape(cfg.image_topic).replace(re.escape("{name}"), "([^/]+)") + "$")
    with EpisodeBag(bag, canonical_names=True) as reader:
        cams = {m.group(1): t for t in reader.topics() if (m := pattern.match(t))}
        sizes: dict[str, tuple[int, int]] = {}
        for msg in reader.messages(set(cams.values())):
            cam = next(c for c, t in cams.items() if t == msg.topic)
            if cam not in sizes:
                view = cdr.parse_image(msg.data)
                sizes[cam] = (view.height, view.width)
            if len(sizes) == len(cams):
                break
    return sorted(cams), sizes


def export_dataset(
    episodes: str | Path,
    output: str | Path,
    robot: RobotConfig,
    *,
    fps: int | None = None,
    cameras: list[str] | None = None,
    image_size: tuple[int, int] | None = None,
    quality: str = "lossless",
    log: Callable[[str], None] = print,
) -> ExportReport:
    """Write every usable episode under `episodes` as a LeRobotDataset at `output` (which must not exist).
    Unusable episodes are skipped with one line each; raises EpisodeReadError/ValueError with one line."""
    import pyarrow.parquet as pq  # noqa: F401 (a missing pyarrow fails here, before anything is written)

    from corft_ros.core.dataset.build import build_episode

    t0 = time.monotonic()
    output = Path(output)
    rate = _checked_rate(output, quality, fps, robot)
    rate_i = int(round(rate))
    bags = find_bags(episodes)
    if not bags:
        raise EpisodeReadError(f"{episodes}: no bags (folders with .mcap or .db3 files)")
    cams, image_size = _cameras_and_image_size(bags[0], cameras, image_size)
    cfg = DatasetConfig(camera_names=cams, image_size=tuple(image_size), rate_hz=rate, require_label=False)

    partial = output.with_name(output.name + ".partial")
    if partial.exists():
        shutil.rmtree(partial)
    partial.mkdir(parents=True)
    report = ExportReport(output=output)
    dataset = _DatasetWriter(partial, robot, cams, image_size, rate_i, quality, report)
    for n, bag in enumerate(bags, 1):
        name = episode_name(bag)
        try:
            meta = training_metadata(bag)
            arrays, _ = build_episode(bag, robot, cfg, meta)
        except EpisodeReadError as exc:
            report.skipped.append(str(exc))
            log(f"skipped {exc}")
            continue
        T = dataset.write_episode(name, arrays, meta)
        log(f"episode {n}/{len(bags)}: {name}: {T} frames, {meta.get('success')}")
    if dataset.feats is None:
        shutil.rmtree(partial)
        raise EpisodeReadError(f"{episodes}: no usable episode ({len(report.skipped)} skipped)")
    dataset.write_meta()
    if output.exists():
        output.rmdir()
    partial.rename(output)
    report.seconds = time.monotonic() - t0
    return report


def _checked_rate(output: Path, quality: str, fps: int | None, robot: RobotConfig) -> float:
    """The frame rate (`fps`, else the robot's action rate); raises ValueError for a non-empty `output`, an unknown
    video quality or a rate that is not a whole number."""
    if output.exists() and any(output.iterdir()):
        raise ValueError(f"{output} exists and is not empty: choose another --output or remove it")
    if quality not in video.QUALITIES:
        raise ValueError(f"--video must be one of {', '.join(video.QUALITIES)}, got {quality!r}")
    rate = float(fps) if fps else float(robot.action_rate_hz)
    if rate <= 0 or abs(rate - round(rate)) > 1e-9:
        raise ValueError(f"LeRobot needs a whole number of frames per second, not {rate:g}: pass --fps")
    return rate


def _cameras_and_image_size(bag: Path, cameras: list[str] | None,
                            image_size: tuple[int, int] | None) -> tuple[list[str], tuple[int, int]]:
    """The cameras to export (`cameras`, else those recorded in `bag`) and the frame size (`image_size`, else the
    cameras' one native size); raises EpisodeReadError/ValueError when there is none."""
    found, sizes = _cameras_and_size(bag, DatasetConfig())
    cams = list(cameras) if cameras else found
    if not cams:
        raise EpisodeReadError(f"{bag}: no camera topics ({DatasetConfig().image_topic})")
    if image_size is None:
        native = {sizes[c] for c in cams if c in sizes}
        if len(native) != 1:
            raise ValueError(f"cameras have different frame sizes {sorted(native)}: pass --image-size H W")
        image_size = native.pop()
    return cams, image_size


def _frame_columns(arrays: dict, index: int, first: int, task_index: int, rate: int) -> dict[str, np.ndarray]:
    """An episode's parquet columns: state, action, intervention, timestamps and indices (`first`: the dataset
    index of its first frame)."""
    T = int(arrays["state"].shape[0])
    frame = np.arange(T, dtype=np.int64)
    return {
        v21.STATE: arrays["state"],
        v21.ACTION: arrays["action"],
        v21.INTERVENTION: arrays["intervention"].astype(np.float32),
        "timestamp": (frame / rate).astype(np.float32),
        "frame_index": frame,
        "episode_index": np.full(T, index, np.int64),
        "index": first + frame,
        "task_index": np.full(T, task_index, np.int64),
    }


@dataclass
class _DatasetWriter:
    """Writes episodes into the dataset folder being built and collects the rows of its meta files."""

    partial: Path
    robot: RobotConfig
    cams: list[str]
    image_size: tuple[int, int]
    rate: int
    quality: str
    report: ExportReport
    feats: dict | None = None  # the features, from the first episode written
    tasks: dict[str, int] = field(default_factory=dict)
    episodes_rows: list[dict] = field(default_factory=list)
    stats_rows: list[dict] = field(default_factory=list)

    def write_episode(self, name: str, arrays: dict, meta: dict) -> int:
        """Encode one episode's videos, write its parquet file and its rows, count it in the report; its frames."""
        import pyarrow.parquet as pq

        index = self.report.episodes
        task = meta.get("instruction") or ""
        task_index = self.tasks.setdefault(task, len(self.tasks))
        T = int(arrays["state"].shape[0])
        columns = _frame_columns(arrays, index, self.report.frames, task_index, self.rate)
        info = {}
        for cam in self.cams:
            info = video.encode(arrays[f"image_{cam}"], self.partial / v21.video_path(index, v21.image_key(cam)),
                                self.rate, self.quality)
        if self.feats is None:
            self.feats = v21.features(self.robot.joint_names, {c: tuple(self.image_size) for c in self.cams}, info)
        file = self.partial / v21.data_path(index)
        file.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(v21.parquet_table(self.feats, columns), file)
        self.episodes_rows.append({
            "episode_index": index, "tasks": [task], "length": T,
            "success": meta.get("success"),
            "corft_ros": {"episode": name, "start_ns": int(arrays["tick_ns"][0]), "source": meta.get("source"),
                          "operator": meta.get("operator"), "robot": meta.get("robot")},
        })
        stats = {k: v21.feature_stats(columns[k]) for k in columns}
        stats.update({v21.image_key(c): v21.image_stats(arrays[f"image_{c}"]) for c in self.cams})
        self.stats_rows.append({"episode_index": index, "stats": stats})
        self.report.episodes += 1
        self.report.frames += T
        return T

    def write_meta(self) -> None:
        """The dataset's meta files: episodes, their stats, the tasks and info.json."""
        partial, report = self.partial, self.report
        v21.write_jsonl(partial / v21.EPISODES_PATH, self.episodes_rows)
        v21.write_jsonl(partial / v21.EPISODES_STATS_PATH, self.stats_rows)
        v21.write_jsonl(partial / v21.TASKS_PATH, [{"task_index": i, "task": t} for t, i in self.tasks.items()])
        v21.write_json(partial / v21.INFO_PATH, v21.info(self.robot.name, self.rate, self.feats, report.episodes,
                                                         report.frames, len(self.tasks)))
