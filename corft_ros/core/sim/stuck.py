"""When does a policy need help? The sim's automatic intervener engages when the task stops progressing.

Progress is a potential that falls as the task gets done:
    φ = |pinch − cube| + |cube − goal|
(the gripper's pinch point from forward kinematics, the cube and goal from the sim's poses): reaching for the cube
lowers the first term, carrying it the second. The policy is **stuck** when φ has not fallen by `min_progress_m`
below its best value of the last `window_s` seconds of sim time, i.e. no new best for a whole window — the stuck
states in which every failure of our policies ends (docs/results: all failures are time-outs). A takeover then lasts
`takeover_s` (or until the scripted plan ends), and the detector waits `cooldown_s` after handing back before it may
engage again, so the policy gets its chance.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from corft_ros.core.robot import ConfigError


@dataclass(frozen=True)
class StuckConfig:
    window_s: float = 3.0
    min_progress_m: float = 0.01
    takeover_s: float = 3.0
    cooldown_s: float = 2.0

    def __post_init__(self) -> None:
        for name in ("window_s", "min_progress_m", "takeover_s"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ConfigError(f"stuck detector: {name} must be a positive number, got {value}")
        if not (math.isfinite(self.cooldown_s) and self.cooldown_s >= 0):
            raise ConfigError(f"stuck detector: cooldown_s must be >= 0, got {self.cooldown_s}")


def potential(pinch: np.ndarray, cube: np.ndarray, goal: np.ndarray) -> float:
    """φ = |pinch − cube| + |cube − goal| (m)."""
    pinch, cube, goal = (np.asarray(v, dtype=np.float64) for v in (pinch, cube, goal))
    return float(np.linalg.norm(pinch - cube) + np.linalg.norm(cube - goal))


class StuckDetector:
    """Feed it φ every tick (`update(t, phi)`, t in s of sim time); it says when to take over and when to hand back.
    States: watching → engaged (takeover) → cooling down → watching. `reset()` at every episode start."""

    def __init__(self, config: StuckConfig | None = None) -> None:
        self.config = config or StuckConfig()
        self.reset()

    def reset(self) -> None:
        self.best = math.inf
        self.best_at: float | None = None  # when φ last made a new best (by min_progress_m)
        self.engaged_at: float | None = None
        self.cooldown_until = -math.inf
        self.takeovers = 0

    @property
    def engaged(self) -> bool:
        return self.engaged_at is not None

    def update(self, t: float, phi: float) -> bool:
        """Whether the intervener should hold the arm after this tick."""
        cfg = self.config
        if self.best_at is None or phi < self.best - cfg.min_progress_m:
            self.best, self.best_at = phi, t
        if self.engaged_at is not None:
            if t - self.engaged_at >= cfg.takeover_s:
                self.release(t)
            return self.engaged
        if t >= self.cooldown_until and t - self.best_at >= cfg.window_s:
            self.engaged_at = t
            self.takeovers += 1
        return self.engaged

    def not_acting_yet(self, t: float) -> None:
        """The takeover's correction is still being planned: its takeover_s start when it acts."""
        if self.engaged_at is not None:
            self.engaged_at = t

    def release(self, t: float) -> None:
        """Hand back (the takeover's time is up, or its plan ended): the policy gets a fresh window."""
        self.engaged_at = None
        self.cooldown_until = t + self.config.cooldown_s
        self.best, self.best_at = math.inf, None
