"""Trial schedule of a benchmark: arms × regions × seeds, interleaved, paired, resumable. No ROS here.

- Paired: every arm sees the SAME seeds (so the same cube start positions) in every region, so arms are compared
  on identical starts.
- Interleaved: the run goes round by round; a round gives every arm one trial per region, so slow drift of the
  machine or the robot (temperature, load, wear) hits every arm equally. The arm order rotates with every
  (round, region) block (A B | B A | A B ...), so no arm is always first after a reset.
- Resumable: the schedule is a pure function of its inputs; `remaining(done)` drops the trials already
  recorded (matched by arm, region and seed), so an interrupted run continues where it stopped.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from corft_ros.core.trials.stats import Trial

OPERATOR_ARM = "operator"


@dataclass(frozen=True)
class TrialSpec:
    index: int  # position in the schedule (0-based)
    round: int
    arm: str
    region: str
    seed: int  # the sim's reset seed: the same (round, region) -> the same start for every arm

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.arm, self.region, self.seed)


def schedule(arms: Sequence[str], regions: Sequence[str], trials_per_region: int, first_seed: int = 0
             ) -> list[TrialSpec]:
    """The full, interleaved schedule: `trials_per_region` trials per arm and region."""
    arms, regions = list(arms), list(regions)
    if not arms:
        raise ValueError("no arm to benchmark")
    if len(set(arms)) != len(arms):
        raise ValueError(f"arm names must be unique, got {arms}")
    if not regions or len(set(regions)) != len(regions):
        raise ValueError(f"regions must be given once each, got {regions}")
    if trials_per_region < 1:
        raise ValueError(f"trials per arm and region must be >= 1, got {trials_per_region}")
    out: list[TrialSpec] = []
    block = 0
    for rnd in range(trials_per_region):
        for region in regions:
            shift = block % len(arms)
            for arm in arms[shift:] + arms[:shift]:
                out.append(TrialSpec(index=len(out), round=rnd, arm=arm, region=region, seed=first_seed + rnd))
            block += 1
    return out


def remaining(plan: Sequence[TrialSpec], done: Iterable[Trial]) -> list[TrialSpec]:
    """The trials of `plan` not yet in `done` (resume)."""
    keys = {(t.arm, t.region, int(t.seed)) for t in done}
    return [spec for spec in plan if spec.key not in keys]


def in_plan(plan: Sequence[TrialSpec], done: Iterable[Trial]) -> list[Trial]:
    """Recorded trials that belong to this plan (a resumed run ignores rows of another plan), in plan order."""
    order = {spec.key: spec.index for spec in plan}
    kept = {}
    for t in done:
        key = (t.arm, t.region, int(t.seed))
        if key in order:
            kept[key] = t
    return [kept[k] for k in sorted(kept, key=order.__getitem__)]


def arm_names(models: Sequence[str], modes: Sequence[str]) -> list[tuple[str, str, str]]:
    """(arm name, model path, executor mode) per model × mode. The name is the model folder's name, plus
    ':<mode>' when several modes are compared; folders with equal names are told apart by their parent."""
    if not models or not modes:
        raise ValueError("need at least one model and one mode")
    names = [Path(m).name or str(m) for m in models]
    if len(set(names)) != len(names):
        names = [str(Path(m)) for m in models]
    if len(set(names)) != len(names):
        raise ValueError(f"models given twice: {', '.join(models)}")
    out = []
    for name, model in zip(names, models, strict=True):
        for mode in modes:
            out.append((f"{name}:{mode}" if len(modes) > 1 else name, str(model), mode))
    if any(name == OPERATOR_ARM for name, _, _ in out):
        raise ValueError(f"'{OPERATOR_ARM}' is the scripted operator's arm name; rename the model folder")
    return out


# Per-trial loop and inference numbers, as read from /diagnostics; summarized per arm.
LOOP_KEYS = ("rate_hz", "period_error_p50_ms", "period_error_p99_ms", "period_error_max_ms", "underruns",
             "overruns", "chunk_switches", "max_switch_jump", "latency_p50_ms", "latency_p95_ms", "latency_max_ms",
             "inferences")


def loop_summary(records: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """Per-arm loop statistics from per-trial records (keys of LOOP_KEYS; missing or NaN values are skipped).

    Rates and medians (p50) are the median over trials; p95/p99 and maxima are the worst trial; underruns,
    overruns and chunk switches are totals and per-trial means."""

    def values(key: str) -> np.ndarray:
        arr = np.array([float(r[key]) for r in records if key in r and r[key] is not None], dtype=float)
        return arr[np.isfinite(arr)]

    out: dict[str, float] = {"trials_with_stats": float(len(records))}
    for key, how in (("rate_hz", "median"), ("period_error_p50_ms", "median"), ("period_error_p99_ms", "max"),
                     ("period_error_max_ms", "max"), ("max_switch_jump", "max"), ("latency_p50_ms", "median"),
                     ("latency_p95_ms", "max"), ("latency_max_ms", "max")):
        arr = values(key)
        name = {"max_switch_jump": "max_switch_jump_rad"}.get(key, key)
        if how == "max" and key not in ("period_error_max_ms", "latency_max_ms", "max_switch_jump"):
            name += "_worst_trial"
        out[name] = float(np.median(arr) if how == "median" else arr.max()) if arr.size else math.nan
    for key in ("underruns", "overruns", "chunk_switches", "inferences"):
        arr = values(key)
        out[f"{key}_total"] = float(arr.sum()) if arr.size else math.nan
        out[f"{key}_per_trial"] = float(arr.mean()) if arr.size else math.nan
    return out

