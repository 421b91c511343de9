"""Camera frames <-> mp4 through PyAV (the library LeRobot itself encodes with).

`lossless` (default): H.264 in RGB (libx264rgb, rgb24, qp 0): decoded frames equal the recorded ones bit for bit,
with LeRobot's torchcodec decoder too. `lerobot`: LeRobot's own default (AV1 via libsvtav1, yuv420p, crf 30): about
10x smaller, lossy (colour subsampling), for datasets that only ever feed LeRobot's training.
Both use a key frame every 2 frames (LeRobot's `g=2`), so random access stays cheap.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

QUALITIES = {
    "lossless": ("libx264rgb", "rgb24", {"qp": "0", "g": "2"}),
    "lerobot": ("libsvtav1", "yuv420p", {"crf": "30", "g": "2"}),
}


def encode(frames: np.ndarray, path: Path, fps: int, quality: str = "lossless") -> dict:
    """Write frames [T, H, W, 3] uint8 (RGB) to `path`; returns the video's info.json record."""
    import av

    codec, pix_fmt, options = QUALITIES[quality]
    frames = np.ascontiguousarray(frames, dtype=np.uint8)
    _, h, w, _ = frames.shape
    path.parent.mkdir(parents=True, exist_ok=True)
    logging.getLogger("libav").setLevel(logging.ERROR)
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=int(fps), options=dict(options))
        stream.pix_fmt, stream.width, stream.height = pix_fmt, w, h
        for frame in frames:
            out.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        out.mux(stream.encode())
    return video_info(codec, pix_fmt, fps)


def video_info(codec: str, pix_fmt: str, fps: int) -> dict:
    """The `info` keys LeRobot's get_video_info records (height/width added by the caller)."""
    name = {"libx264rgb": "h264", "libsvtav1": "av1"}.get(codec, codec)
    return {"video.codec": name, "video.pix_fmt": pix_fmt, "video.is_depth_map": False, "video.fps": int(fps),
            "video.channels": 3, "has_audio": False}


def decode(path: Path) -> np.ndarray:
    """Every frame of `path` as [T, H, W, 3] uint8 RGB."""
    import av

    with av.open(str(path)) as inp:
        frames = [f.to_ndarray(format="rgb24") for f in inp.decode(video=0)]
    if not frames:
        raise ValueError(f"{path}: no video frames")
    return np.stack(frames)
