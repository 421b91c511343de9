"""Statistics of benchmark trials.

Cycle time, as HIL-SERL computes it: the time from the start of a trial to success, over SUCCESSFUL trials
only, reported beside the success rate (with a Wilson 95% interval). Episode length also counts failures, at
the time limit, so a policy cannot look fast by failing quickly.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

import numpy as np

Z_95 = 1.959963984540054


def wilson_interval(successes: int, trials: int, z: float = Z_95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion; (0, 1) when there are no trials."""
    if trials < 0 or not 0 <= successes <= trials:
        raise ValueError(f"need 0 <= successes <= trials, got {successes}/{trials}")
    if trials == 0:
        return 0.0, 1.0
    p = successes / trials
    z2 = z * z
    denom = 1.0 + z2 / trials
    center = (p + z2 / (2 * trials)) / denom
    half = z * math.sqrt(p * (1 - p) / trials + z2 / (4 * trials * trials)) / denom
    return max(0.0, center - half), min(1.0, center + half)


@dataclass(frozen=True)
class Trial:
    arm: str  # the thing compared: policy (+ executor mode), or "operator"
    region: str  # seen | unseen
    seed: int
    success: bool
    duration_s: float  # start of trial to success, or to the end (timeout / operator stop)
    timeout_s: float
    start_x: float = float("nan")
    start_y: float = float("nan")
    end_reason: str = ""  # success | timeout | failure_label | quit | error


@dataclass(frozen=True)
class ArmSummary:
    arm: str
    region: str
    trials: int
    successes: int
    success_rate: float
    success_ci95: tuple[float, float]
    timeouts: int
    cycle_time_mean_s: float
    cycle_time_median_s: float
    cycle_time_p90_s: float
    cycle_time_std_s: float
    episode_length_mean_s: float  # failures counted at the time limit

    def as_dict(self) -> dict:
        return asdict(self)


def summarize(trials: Sequence[Trial], arm: str, region: str) -> ArmSummary:
    chosen = [t for t in trials if t.arm == arm and (region == "all" or t.region == region)]
    n = len(chosen)
    wins = [t for t in chosen if t.success]
    cycle = np.array([t.duration_s for t in wins], dtype=float)
    lengths = np.array([t.duration_s if t.success else max(t.duration_s, t.timeout_s) for t in chosen], dtype=float)

    def stat(fn, values: np.ndarray) -> float:
        return float(fn(values)) if values.size else float("nan")

    return ArmSummary(
        arm=arm,
        region=region,
        trials=n,
        successes=len(wins),
        success_rate=len(wins) / n if n else float("nan"),
        success_ci95=wilson_interval(len(wins), n),
        timeouts=sum(1 for t in chosen if t.end_reason == "timeout"),
        cycle_time_mean_s=stat(np.mean, cycle),
        cycle_time_median_s=stat(np.median, cycle),
        cycle_time_p90_s=stat(lambda v: np.percentile(v, 90), cycle),
        cycle_time_std_s=stat(lambda v: np.std(v, ddof=1) if v.size > 1 else 0.0, cycle),
        episode_length_mean_s=stat(np.mean, lengths),
    )


def summarize_all(trials: Sequence[Trial]) -> list[ArmSummary]:
    arms = list(dict.fromkeys(t.arm for t in trials))
    regions = list(dict.fromkeys(t.region for t in trials))
    return [summarize(trials, arm, region) for arm in arms for region in [*regions, "all"]]


def percentiles(values: Iterable[float], qs: Sequence[float] = (50, 95, 99)) -> dict[str, float]:
    arr = np.asarray(list(values), dtype=float)
    out = {f"p{q:g}": float(np.percentile(arr, q)) if arr.size else float("nan") for q in qs}
    out["max"] = float(arr.max()) if arr.size else float("nan")
    return out


def relative_change(new: float, old: float) -> float:
    """(new - old) / old; NaN when old is 0 or either is NaN."""
    if not (math.isfinite(new) and math.isfinite(old)) or old == 0:
        return float("nan")
    return (new - old) / old
