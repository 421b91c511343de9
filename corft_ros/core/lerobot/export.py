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
    import pyarrow.parquet as pq

    from corft_ros.core.dataset.build import build_episode

    t0 = time.monotonic()
    output = Path(output)
    if output.exists() and any(output.iterdir()):
        raise ValueError(f"{output} exists and is not empty: choose another --output or remove it")
    if quality not in video.QUALITIES:
        raise ValueError(f"--video must be one of {', '.join(video.QUALITIES)}, got {quality!r}")
    rate = float(fps) if fps else float(robot.action_rate_hz)
    if rate <= 0 or abs(rate - round(rate)) > 1e-9:
        raise ValueError(f"LeRobot needs a whole number of frames per second, not {rate:g}: pass --fps")
    rate_i = int(round(rate))
    bags = find_bags(episodes)
    if not bags:
        raise EpisodeReadError(f"{episodes}: no bags (folders with .mcap or .db3 files)")

    found, sizes = _cameras_and_size(bags[0], DatasetConfig())
    cams = list(cameras) if cameras else found
    if not cams:
        raise EpisodeReadError(f"{bags[0]}: no camera topics ({DatasetConfig().image_topic})")
    if image_size is None:
        native = {sizes[c] for c in cams if c in sizes}
        if len(native) != 1:
            raise ValueError(f"cameras have different frame sizes {sorted(native)}: pass --image-size H W")
        image_size = native.pop()
    cfg = DatasetConfig(camera_names=cams, image_size=tuple(image_size), rate_hz=rate, require_label=False)

    partial = output.with_name(output.name + ".partial")
    if partial.exists():
        shutil.rmtree(partial)
    partial.mkdir(parents=True)
    report = ExportReport(output=output)
    feats: dict | None = None
    tasks: dict[str, int] = {}
    episodes_rows: list[dict] = []
    stats_rows: list[dict] = []
    for n, bag in enumerate(bags, 1):
        name = episode_name(bag)
        try:
            meta = training_metadata(bag)
            arrays, _ = build_episode(bag, robot, cfg, meta)
        except EpisodeReadError as exc:
            report.skipped.append(str(exc))
            log(f"skipped {exc}")
            continue
        index = report.episodes
        task = meta.get("instruction") or ""
        task_index = tasks.setdefault(task, len(tasks))
        T = int(arrays["state"].shape[0])
        frame = np.arange(T, dtype=np.int64)
        columns = {
            v21.STATE: arrays["state"],
            v21.ACTION: arrays["action"],
            v21.INTERVENTION: arrays["intervention"].astype(np.float32),
            "timestamp": (frame / rate_i).astype(np.float32),
            "frame_index": frame,
            "episode_index": np.full(T, index, np.int64),
            "index": report.frames + frame,
            "task_index": np.full(T, task_index, np.int64),
        }
        info = {}
        for cam in cams:
            info = video.encode(arrays[f"image_{cam}"], partial / v21.video_path(index, v21.image_key(cam)), rate_i,
                                quality)
        if feats is None:
            feats = v21.features(robot.joint_names, {c: tuple(image_size) for c in cams}, info)
        file = partial / v21.data_path(index)
        file.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(v21.parquet_table(feats, columns), file)
        episodes_rows.append({
            "episode_index": index, "tasks": [task], "length": T,
            "success": meta.get("success"),
            "corft_ros": {"episode": name, "start_ns": int(arrays["tick_ns"][0]), "source": meta.get("source"),
                          "operator": meta.get("operator"), "robot": meta.get("robot")},
        })
        stats = {k: v21.feature_stats(columns[k]) for k in columns}
        stats.update({v21.image_key(c): v21.image_stats(arrays[f"image_{c}"]) for c in cams})
        stats_rows.append({"episode_index": index, "stats": stats})
        report.episodes += 1
        report.frames += T
        log(f"episode {n}/{len(bags)}: {name}: {T} frames, {meta.get('success')}")
    if feats is None:
        shutil.rmtree(partial)
        raise EpisodeReadError(f"{episodes}: no usable episode ({len(report.skipped)} skipped)")
    v21.write_jsonl(partial / v21.EPISODES_PATH, episodes_rows)
    v21.write_jsonl(partial / v21.EPISODES_STATS_PATH, stats_rows)
    v21.write_jsonl(partial / v21.TASKS_PATH, [{"task_index": i, "task": t} for t, i in tasks.items()])
    v21.write_json(partial / v21.INFO_PATH, v21.info(robot.name, rate_i, feats, report.episodes, report.frames,
                                                    len(tasks)))
    if output.exists():
        output.rmdir()
    partial.rename(output)
    report.seconds = time.monotonic() - t0
    return report
