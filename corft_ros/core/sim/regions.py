"""Cube start positions: a 'seen' region used for demos and a held-out 'unseen' region inside it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from corft_ros.core.robot import ConfigError

REGIONS = ("seen", "unseen")


@dataclass(frozen=True)
class Box2D:
    x: tuple[float, float]
    y: tuple[float, float]

    def contains(self, xy: np.ndarray) -> bool:
        return bool(self.x[0] <= xy[0] <= self.x[1] and self.y[0] <= xy[1] <= self.y[1])

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        return np.array([rng.uniform(*self.x), rng.uniform(*self.y)])


@dataclass(frozen=True)
class StartRegions:
    """`area` is where cubes start; `held_out` (inside `area`) is never used for demos: the unseen region."""

    area: Box2D
    held_out: Box2D

    def __post_init__(self) -> None:
        for box, label in ((self.area, "area"), (self.held_out, "held_out")):
            if not (box.x[0] < box.x[1] and box.y[0] < box.y[1]):
                raise ConfigError(f"start region '{label}' is empty: x={box.x}, y={box.y}")
        inside = (
            self.area.x[0] <= self.held_out.x[0] < self.held_out.x[1] <= self.area.x[1]
            and self.area.y[0] <= self.held_out.y[0] < self.held_out.y[1] <= self.area.y[1]
        )
        if not inside:
            raise ConfigError("held_out start region must lie inside the start area")

    def sample(self, region: str, rng: np.random.Generator) -> np.ndarray:
        if region == "unseen":
            return self.held_out.sample(rng)
        if region == "seen":
            for _ in range(10_000):
                xy = self.area.sample(rng)
                if not self.held_out.contains(xy):
                    return xy
            raise RuntimeError("could not sample the seen region (held-out box covers the area?)")
        raise ConfigError(f"unknown region '{region}' (expected one of: {', '.join(REGIONS)})")

    def region_of(self, xy: np.ndarray) -> str:
        return "unseen" if self.held_out.contains(xy) else "seen"
