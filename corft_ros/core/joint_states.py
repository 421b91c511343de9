"""The latest position of every joint, from any number of `/joint_states` publishers.

On a real arm `/joint_states` is often split: the arm's driver (or joint_state_broadcaster) publishes the six arm
joints, the gripper's driver its finger, each at its own rate. A node that needs the whole robot keeps the latest
value per joint and its stamp, and treats a joint as missing once its value is older than an age limit — instead
of rejecting every message that does not name all joints.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class JointSnapshot:
    positions: np.ndarray  # in the cache's joint order
    newest: float  # stamp of the freshest joint used (s)
    oldest: float  # stamp of the stalest joint used (s)


class JointStateError(ValueError):
    """A /joint_states message that cannot be used; the message is the one-line reason."""


class JointStateCache:
    """Latest (position, stamp) per joint of `joint_names`; names the cache does not track are ignored.

    `update` takes one message's names/positions and its stamp (the header stamp, or the receive time when the
    header is zero). `snapshot(now)` gives every joint's position once each has a value no older than `max_age`
    (`max_age <= 0`: no age limit), otherwise None; `missing(now)` says which joints keep it from being complete.
    """

    def __init__(self, joint_names: Sequence[str], max_age: float = 0.0) -> None:
        self.joint_names = list(joint_names)
        self.max_age = float(max_age)
        self._index = {name: i for i, name in enumerate(self.joint_names)}
        self._positions = np.full(len(self.joint_names), np.nan)
        self._stamps = np.full(len(self.joint_names), -np.inf)
        self.messages = 0
        self.sources: set[tuple[str, ...]] = set()  # the distinct name sets seen (one per publisher, usually)

    def update(self, names: Sequence[str], positions: Sequence[float], stamp: float) -> int:
        """Store the tracked joints of one message; returns how many it updated. Raises JointStateError (nothing
        stored) for a message whose positions do not match its names or that holds NaN/Inf for a tracked joint."""
        names = list(names)
        if len(positions) != len(names):
            raise JointStateError(f"{len(names)} names but {len(positions)} positions")
        if not math.isfinite(stamp):
            raise JointStateError(f"stamp {stamp} is not finite")
        rows, values = [], []
        for name, position in zip(names, positions, strict=True):
            i = self._index.get(name)
            if i is None:
                continue
            position = float(position)
            if not math.isfinite(position):
                raise JointStateError(f"joint '{name}' position is {position}")
            rows.append(i)
            values.append(position)
        if rows:
            self._positions[rows] = values
            self._stamps[rows] = stamp
            self.messages += 1
            self.sources.add(tuple(sorted(names)))
        return len(rows)

    def missing(self, now: float | None = None) -> list[str]:
        """Joints with no value yet, or (given `now` and an age limit) a value older than max_age."""
        stale = ~np.isfinite(self._stamps)
        if now is not None and self.max_age > 0:
            stale |= (now - self._stamps) > self.max_age
        return [self.joint_names[i] for i in np.nonzero(stale)[0]]

    def snapshot(self, now: float | None = None) -> JointSnapshot | None:
        if self.missing(now):
            return None
        return JointSnapshot(self._positions.copy(), float(self._stamps.max()), float(self._stamps.min()))

    def clear(self) -> None:
        self._positions[:] = np.nan
        self._stamps[:] = -np.inf
