"""Camera frames of a bag at the dataset's ticks: only the newest frame per tick cell is decoded (in a thread pool,
overlapping the reading), converted as the policy node converts and area-resized to the model's input."""

from __future__ import annotations

from collections import deque
from concurrent.futures import Future

import numpy as np

from corft_ros.core.episodes import cdr
from corft_ros.core.images import ImageError, resize, to_rgb8


class FrameError(ValueError):
    """A frame cannot be decoded; the message names the camera."""


class FrameCells:
    """Keeps, per tick cell c = ceil(stamp/dt), only the newest frame of that cell. When the stream moves past
    a cell, its frame is handed to a thread pool for decoding and resizing (OpenCV releases the GIL), so
    raw frames never pile up and decoding overlaps reading."""

    def __init__(self, dt_ns: int, size_hw: tuple[int, int], name: str, pool, pending: deque) -> None:
        self.dt = dt_ns
        self.size = size_hw
        self.name = name
        self.stamps: list[int] = []
        self.cells: dict[int, tuple[int, Future]] = {}
        self._open: tuple[int, int, cdr.ImageView] | None = None  # (cell, stamp, view)
        self._pool = pool
        self._pending = pending

    def add(self, view: cdr.ImageView) -> None:
        stamp = view.stamp_ns
        self.stamps.append(stamp)
        cell = -(-stamp // self.dt)
        if self._open is not None:
            ocell, ostamp, _ = self._open
            if cell == ocell:
                if stamp >= ostamp:
                    self._open = (cell, stamp, view)
                return
            self._close()
        done = self.cells.get(cell)
        if done is not None and done[0] >= stamp:
            return  # an out-of-order older frame for a cell already settled
        self._open = (cell, stamp, view)

    def _close(self) -> None:
        if self._open is None:
            return
        cell, stamp, view = self._open
        self._open = None
        future = self._pool.submit(_decode, view, self.size)
        self.cells[cell] = (stamp, future)
        self._pending.append(future)
        while len(self._pending) > 16:  # bound the raw frames held by queued decodes
            self._pending.popleft().result()

    def finish(self) -> dict[int, tuple[int, np.ndarray]]:
        self._close()
        out = {}
        for cell, (stamp, future) in self.cells.items():
            try:
                out[cell] = (stamp, future.result())
            except (ImageError, ValueError) as exc:
                raise FrameError(f"camera {self.name}: {exc}") from None
        return out


def _decode(view: cdr.ImageView, size_hw: tuple[int, int]) -> np.ndarray:
    """The policy node's conversion (corft_ros.core.images.to_rgb8) and an area resize equal to its
    `resize` within 1 intensity level (see area_resize)."""
    rgb = to_rgb8(view.data, view.width, view.height, view.encoding, view.step, view.is_bigendian)
    return np.ascontiguousarray(area_resize(rgb, size_hw[0], size_hw[1]))


def area_resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Area-averaging downscale, done per axis when one axis shrinks by a whole factor (OpenCV's INTER_AREA
    has a fast path for whole factors; area weights are separable, so the result equals the one-step
    resize up to the rounding of the intermediate image: at most 1 level). 640x480 -> 64x64: ~2.5x faster."""
    h, w = image.shape[:2]
    if height < h and width < w:
        import cv2

        if w % width == 0:
            image = cv2.resize(image, (width, h), interpolation=cv2.INTER_AREA)
        elif h % height == 0:
            image = cv2.resize(image, (w, height), interpolation=cv2.INTER_AREA)
    return resize(image, height, width)
