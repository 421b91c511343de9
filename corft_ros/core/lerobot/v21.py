"""LeRobotDataset format v2.1 (lerobot 0.3.x), written and read without lerobot: layout, info.json, features,
the parquet schema the `datasets` library writes, and the per-episode statistics LeRobot keeps.

Layout (from lerobot/datasets/utils.py, v2.1):
    meta/info.json, meta/episodes.jsonl, meta/episodes_stats.jsonl, meta/tasks.jsonl
    data/chunk-{c:03d}/episode_{i:06d}.parquet
    videos/chunk-{c:03d}/{video_key}/episode_{i:06d}.mp4          (c = i // 1000)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from corft_ros.core.policy.lerobot_backend.protocol import ACTION, IMAGE_PREFIX, STATE

__all__ = ["ACTION", "IMAGE_PREFIX", "STATE"]  # LeRobot's feature names, re-exported beside the format's own

CODEBASE_VERSION = "v2.1"
CHUNK_SIZE = 1000
INFO_PATH = "meta/info.json"
EPISODES_PATH = "meta/episodes.jsonl"
EPISODES_STATS_PATH = "meta/episodes_stats.jsonl"
TASKS_PATH = "meta/tasks.jsonl"
DATA_PATH = "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet"
VIDEO_PATH = "videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4"
# Per frame: whether an operator (or the sim's intervener) held the arm: 1.0 / 0.0, LeRobot's HIL-SERL column
INTERVENTION = "complementary_info.is_intervention"
# Every frame's bookkeeping columns, as LeRobot's DEFAULT_FEATURES.
INDEX_FEATURES = {
    "timestamp": {"dtype": "float32", "shape": [1], "names": None},
    "frame_index": {"dtype": "int64", "shape": [1], "names": None},
    "episode_index": {"dtype": "int64", "shape": [1], "names": None},
    "index": {"dtype": "int64", "shape": [1], "names": None},
    "task_index": {"dtype": "int64", "shape": [1], "names": None},
}


class DatasetFormatError(ValueError):
    """A folder that is not a LeRobotDataset this code reads; the message says what is wrong."""


def image_key(camera: str) -> str:
    return f"{IMAGE_PREFIX}{camera}"


def data_path(episode_index: int) -> str:
    return DATA_PATH.format(episode_chunk=episode_index // CHUNK_SIZE, episode_index=episode_index)


def video_path(episode_index: int, key: str) -> str:
    return VIDEO_PATH.format(episode_chunk=episode_index // CHUNK_SIZE, video_key=key, episode_index=episode_index)


def features(joint_names: list[str], cameras: dict[str, tuple[int, int]], video_info: dict[str, Any]) -> dict:
    """info.json `features`: state and action by joint name, the per-frame takeover flag, one video per camera
    (height, width, 3)."""
    d = len(joint_names)
    out: dict[str, dict] = {
        STATE: {"dtype": "float32", "shape": [d], "names": list(joint_names)},
        ACTION: {"dtype": "float32", "shape": [d], "names": list(joint_names)},
        INTERVENTION: {"dtype": "float32", "shape": [1], "names": ["is_intervention"]},
    }
    for cam, (h, w) in cameras.items():
        out[image_key(cam)] = {
            "dtype": "video",
            "shape": [h, w, 3],
            "names": ["height", "width", "channels"],
            "info": {"video.height": h, "video.width": w, **video_info},
        }
    out.update({k: dict(v) for k, v in INDEX_FEATURES.items()})
    return out


def info(robot_type: str, fps: int, feats: dict, episodes: int, frames: int, tasks: int) -> dict:
    videos = sum(1 for f in feats.values() if f["dtype"] == "video")
    return {
        "codebase_version": CODEBASE_VERSION,
        "robot_type": robot_type,
        "total_episodes": episodes,
        "total_frames": frames,
        "total_tasks": tasks,
        "total_videos": videos * episodes,
        "total_chunks": -(-episodes // CHUNK_SIZE),
        "chunks_size": CHUNK_SIZE,
        "fps": int(fps),
        "splits": {"train": f"0:{episodes}"},
        "data_path": DATA_PATH,
        "video_path": VIDEO_PATH if videos else None,
        "features": feats,
    }


def _hf_feature(ft: dict) -> dict:
    """The `datasets` library's feature record of one non-video feature (Value or fixed-length Sequence)."""
    value = {"dtype": ft["dtype"], "_type": "Value"}
    if list(ft["shape"]) == [1]:
        return value
    if len(ft["shape"]) == 1:
        return {"feature": value, "length": int(ft["shape"][0]), "_type": "Sequence"}
    raise DatasetFormatError(f"feature shape {ft['shape']} is not supported (1-D only)")


def parquet_table(feats: dict, columns: dict[str, np.ndarray]):
    """One episode's pyarrow table, with the schema metadata `datasets` writes (so `load_dataset` restores the
    features). `columns`: every non-video feature -> [T] or [T, n] array."""
    import pyarrow as pa

    fields, arrays, hf = [], [], {}
    for key, ft in feats.items():
        if ft["dtype"] == "video":
            continue
        values = np.asarray(columns[key], dtype=ft["dtype"])
        scalar = pa.from_numpy_dtype(values.dtype)
        if values.ndim == 1:
            arr, typ = pa.array(values, type=scalar), scalar
        else:
            typ = pa.list_(scalar, values.shape[1])
            arr = pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1), type=scalar), values.shape[1])
        fields.append(pa.field(key, typ))
        arrays.append(arr)
        hf[key] = _hf_feature(ft)
    meta = {b"huggingface": json.dumps({"info": {"features": hf}}).encode()}
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields, metadata=meta))


def feature_stats(values: np.ndarray) -> dict[str, list]:
    """min/max/mean/std/count over frames, as LeRobot's compute_episode_stats (1-D features)."""
    v = np.asarray(values, dtype=np.float64)
    if v.ndim == 1:
        v = v[:, None]
    return {"min": v.min(0).tolist(), "max": v.max(0).tolist(), "mean": v.mean(0).tolist(),
            "std": v.std(0).tolist(), "count": [int(v.shape[0])]}


def sample_frames(frames: np.ndarray) -> np.ndarray:
    """The frames LeRobot's compute_stats samples: ~T^0.75 of them (100..10000, all when fewer), evenly spaced,
    each strided down to ~150 px when larger than 300 px (its sample_indices / auto_downsample_height_width)."""
    n = len(frames)
    k = min(n, max(100, min(int(n ** 0.75), 10000)))
    picked = frames[np.round(np.linspace(0, n - 1, k)).astype(int)]
    h, w = picked.shape[1:3]
    if max(h, w) >= 300:
        f = int(w / 150) if w > h else int(h / 150)
        picked = picked[:, ::f, ::f]
    return picked


def image_stats(frames: np.ndarray) -> dict[str, list]:
    """Per-channel stats in [0, 1], shaped (3, 1, 1) as LeRobot keeps them for images (over its sample of frames)."""
    x = sample_frames(frames).reshape(-1, 3).astype(np.float64) / 255.0

    def per_channel(v: np.ndarray) -> list:
        return [[[float(c)]] for c in v]

    return {"min": per_channel(x.min(0)), "max": per_channel(x.max(0)), "mean": per_channel(x.mean(0)),
            "std": per_channel(x.std(0)), "count": [int(frames.shape[0])]}


def write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=4, ensure_ascii=False) + "\n")


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def read_meta(root: Path) -> tuple[dict, list[dict], dict[int, str]]:
    """(info, episodes, tasks) of a v2.1 dataset; DatasetFormatError naming what is missing or not v2.1."""
    root = Path(root)
    file = root / INFO_PATH
    if not file.is_file():
        raise DatasetFormatError(f"{root}: no {INFO_PATH} (not a LeRobotDataset folder)")
    meta = json.loads(file.read_text())
    version = str(meta.get("codebase_version", ""))
    if version != CODEBASE_VERSION:
        raise DatasetFormatError(f"{root}: dataset format {version or '?'}; only {CODEBASE_VERSION} is read "
                                 f"(lerobot 0.3.x); convert it with lerobot's own scripts first")
    for rel in (EPISODES_PATH, TASKS_PATH):
        if not (root / rel).is_file():
            raise DatasetFormatError(f"{root}: no {rel}")
    episodes = sorted(read_jsonl(root / EPISODES_PATH), key=lambda e: e["episode_index"])
    tasks = {int(t["task_index"]): str(t["task"]) for t in read_jsonl(root / TASKS_PATH)}
    return meta, episodes, tasks
