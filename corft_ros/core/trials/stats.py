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
    takeovers: int = 0  # times an operator (or the sim's intervener) took the arm during the trial


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
    autonomous_successes: int = 0  # successes without any takeover (= successes when nobody intervened)
    trials_with_takeover: int = 0
    takeovers: int = 0

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
        autonomous_successes=sum(1 for t in wins if t.takeovers == 0),
        trials_with_takeover=sum(1 for t in chosen if t.takeovers > 0),
        takeovers=sum(t.takeovers for t in chosen),
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


def mcnemar_exact_p(only_a: int, only_b: int) -> float:
    """Two-sided exact McNemar test: the binomial test of the discordant pairs against 1/2. 1.0 without any."""
    n = only_a + only_b
    if n == 0:
        return 1.0
    k = min(only_a, only_b)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2.0**n
    return min(1.0, 2.0 * tail)


@dataclass(frozen=True)
class PairedComparison:
    """Two arms on the same starts (arm, region, seed matched): who solved which, and how fast where both did."""

    arm_a: str
    arm_b: str
    region: str  # seen | unseen | all
    pairs: int
    both: int
    only_a: int
    only_b: int
    neither: int
    mcnemar_p: float
    success_diff: float  # rate(b) - rate(a) over the pairs
    success_diff_ci95: tuple[float, float]  # Wald interval of the paired difference
    both_solved: int
    cycle_time_diff_mean_s: float  # b - a over starts both solved
    cycle_time_diff_ci95_s: tuple[float, float]
    cycle_time_rel_change: float  # mean(b) / mean(a) - 1 over starts both solved

    @property
    def discordance(self) -> float:
        return (self.only_a + self.only_b) / self.pairs if self.pairs else float("nan")

    def as_dict(self) -> dict:
        return {**asdict(self), "discordance": self.discordance}


def paired(trials: Sequence[Trial], arm_a: str, arm_b: str, region: str = "all") -> PairedComparison:
    """Pair the trials of two arms by (region, seed): the same start positions. Unmatched trials are left out."""
    def by_start(arm: str) -> dict[tuple[str, int], Trial]:
        return {(t.region, t.seed): t for t in trials if t.arm == arm and (region == "all" or t.region == region)}

    a, b = by_start(arm_a), by_start(arm_b)
    keys = sorted(set(a) & set(b))
    both = sum(1 for k in keys if a[k].success and b[k].success)
    only_a = sum(1 for k in keys if a[k].success and not b[k].success)
    only_b = sum(1 for k in keys if b[k].success and not a[k].success)
    n = len(keys)
    diff = (only_b - only_a) / n if n else float("nan")
    if n:
        var = ((only_a + only_b) / n - diff * diff) / n  # Wald variance of a paired difference of proportions
        half = Z_95 * math.sqrt(max(var, 0.0))
        diff_ci = (diff - half, diff + half)
    else:
        diff_ci = (float("nan"), float("nan"))
    solved = [k for k in keys if a[k].success and b[k].success]
    deltas = np.array([b[k].duration_s - a[k].duration_s for k in solved], dtype=float)
    if deltas.size >= 2:
        half = Z_95 * float(np.std(deltas, ddof=1)) / math.sqrt(deltas.size)
        ct_ci = (float(deltas.mean()) - half, float(deltas.mean()) + half)
    else:
        ct_ci = (float("nan"), float("nan"))
    mean_a = float(np.mean([a[k].duration_s for k in solved])) if solved else float("nan")
    mean_b = float(np.mean([b[k].duration_s for k in solved])) if solved else float("nan")
    return PairedComparison(
        arm_a=arm_a, arm_b=arm_b, region=region, pairs=n, both=both, only_a=only_a, only_b=only_b,
        neither=n - both - only_a - only_b, mcnemar_p=mcnemar_exact_p(only_a, only_b), success_diff=diff,
        success_diff_ci95=diff_ci, both_solved=len(solved),
        cycle_time_diff_mean_s=float(deltas.mean()) if deltas.size else float("nan"), cycle_time_diff_ci95_s=ct_ci,
        cycle_time_rel_change=relative_change(mean_b, mean_a))
