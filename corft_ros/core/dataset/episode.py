"""One episode as the trainer sees it: the tick-aligned arrays of a bag (images, state, action, takeover flags) with
its instruction, success label and build stats, and EpisodeProblem, the error for an episode the trainer cannot use
(missing topics or label, other joints); both are shared by the bag reader, the tick alignment and the loader.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from corft_ros.core.episodes.errors import EpisodeReadError


@dataclass
class Episode:
    bag: Path
    key: str
    instruction: str
    success: bool
    images: dict[str, np.ndarray]  # cam -> [T, H, W, 3] uint8
    state: np.ndarray  # [T, d] float32, robot.yaml order
    action: np.ndarray  # [T, d] float32
    tick_ns: np.ndarray  # [T] int64
    stats: dict
    from_cache: bool = False
    intervention: np.ndarray | None = None  # [T] bool: an operator (or the sim's intervener) held the arm

    def __post_init__(self) -> None:
        if self.intervention is None:
            self.intervention = np.zeros(len(self.state), dtype=bool)

    def __len__(self) -> int:
        return int(self.state.shape[0])


class EpisodeProblem(EpisodeReadError):
    """An episode the trainer cannot use (missing topics or label, other joints); a kind of EpisodeReadError."""
