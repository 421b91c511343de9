"""Running trials: the one loop both the benchmark node's autostart and `corft-ros benchmark` use, what a trial
comes back with, and the per-trial loop numbers from /diagnostics snapshots. No ROS here."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from corft_ros.core.trials.stats import Trial
from corft_ros.core.trials.trials import TrialSpec

EXECUTOR_STATUS = "executor"
POLICY_STATUS = "policy: inference"
COUNTERS = ("underruns", "overruns", "chunk_switches", "inferences")
CHUNKS = "benchmark: chunks seen"  # the snapshot's entry counting /corft/action_chunk messages


class BenchmarkError(RuntimeError):
    """A trial could not run (no service, no signal): one line saying what is missing."""


class QuitRequested(RuntimeError):
    """The operator asked to stop the run."""


@dataclass
class TrialOutcome:
    spec: TrialSpec
    trial: Trial | None  # None: the trial did not complete (error or quit): not counted
    loop: dict = field(default_factory=dict)
    error: str = ""
    quit: bool = False
    episode: str = ""


def _float(text: str) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        return math.nan


class StallWatch:
    """BenchmarkError when the node's clock (sim time) has not moved for `timeout_s` wall seconds."""

    def __init__(self, now: float, timeout_s: float, during: str) -> None:
        self.last, self.wall, self.timeout_s, self.during = now, time.monotonic(), timeout_s, during

    def check(self, now: float) -> None:
        if now != self.last:
            self.last, self.wall = now, time.monotonic()
        elif time.monotonic() - self.wall > self.timeout_s:
            raise BenchmarkError(f"the clock stopped{self.during}: no progress for {self.timeout_s:g} s (is the sim "
                                 "running? /clock)")


def loop_record(now: dict[str, dict[str, str]], base: dict[str, dict[str, str]]) -> dict[str, float]:
    """A trial's loop and inference numbers from diagnostics snapshots (node status name -> key -> value) at its
    end (`now`) and start (`base`): counters as the difference, percentiles over the nodes' windows (the last ~10 s
    of the loop, the last 500 inferences); inferences from the chunks the benchmark saw (CHUNKS)."""
    ex, pol = now.get(EXECUTOR_STATUS, {}), now.get(POLICY_STATUS, {})
    record: dict[str, float] = {}
    for key in ("rate_hz", "period_error_p50_ms", "period_error_p99_ms", "period_error_max_ms",
                "max_switch_jump"):
        if key in ex:
            record[key] = _float(ex[key])
    for key in ("latency_p50_ms", "latency_p95_ms", "latency_max_ms"):
        if key in pol:
            record[key] = _float(pol[key])
    for key in COUNTERS:
        source, before = (now.get(CHUNKS, {}), base.get(CHUNKS, {})) if key == "inferences" else \
            (ex, base.get(EXECUTOR_STATUS, {}))
        if key in source:
            end, start = _float(source[key]), _float(before.get(key, "0"))
            record[key] = end - start if end >= start else end  # a restarted node counts from zero
    return record


class StopRun(Exception):
    """Raised by a trial runner to end the run early: `note` goes into the report, `rc` is the exit code."""

    def __init__(self, note: str, rc: int = 1) -> None:
        super().__init__(note)
        self.note, self.rc = note, rc


def run_trials(todo: Sequence[TrialSpec], trials: list, notes: list[str], run_one: Callable[[TrialSpec], Any],
               counted: Callable[[TrialSpec, Any], None], say: Callable[[str], None], max_errors: int,
               plan_size: int) -> int:
    """The one trial loop of the benchmark (the node's autostart and `corft-ros benchmark`): run each planned
    trial, count it (appended to `trials`, then `counted(spec, outcome)` rewrites the report), or note why it does
    not count; stop when the operator quits, after `max_errors` trials in a row without a signal, or when
    `run_one` raises StopRun. An outcome has `.trial` (None: not counted), `.quit` and `.error`. Why a trial did
    not count goes into `notes` (the report's) as it happens. Returns the exit code: 0, 1 (errors), 130 (the
    operator quit) or StopRun's."""
    errors = 0
    width = max((len(spec.arm) for spec in todo), default=0)
    for spec in todo:
        try:
            outcome = run_one(spec)
        except StopRun as stop:
            notes.append(stop.note)
            say(f"run stopped: {stop.note}")
            return stop.rc
        label = f"trial {spec.index + 1}/{plan_size} {spec.arm:>{width}} {spec.region:>6} seed {spec.seed:<4}"
        if outcome.quit:
            notes.append(f"stopped by the operator after {len(trials)} of {plan_size} trials "
                         f"(trial {spec.index + 1} interrupted, not counted)")
            say(f"{label}: the operator quit; stopping")
            return 130
        if outcome.trial is None:
            errors += 1
            notes.append(f"trial {spec.index + 1} ({spec.arm}, {spec.region}, seed {spec.seed}) not counted: "
                         f"{outcome.error}")
            say(f"{label}: not counted: {outcome.error}")
            if errors >= max_errors:
                notes.append(f"run stopped: {errors} trials in a row without a signal from the sim/robot")
                say(f"error: {notes[-1]}")
                return 1
            continue
        errors = 0
        trials.append(outcome.trial)
        counted(spec, outcome)
        t = outcome.trial
        say(f"{label} start ({t.start_x:.3f}, {t.start_y:.3f}): {t.end_reason:<8} {t.duration_s:6.2f} s")
    return 0


def wait_trial_end(t0: float, timeout_s: float, now: Callable[[], float], watch: StallWatch, stop: threading.Event,
                   quit_: threading.Event, signals: Callable[[], tuple[float | None, bool | None]],
                   keys: Any = None) -> tuple[str, float]:
    """Polls (every 10 ms) until a trial that began at `t0` (clock `now`, node time) ends: the first success signal
    within `timeout_s`, the operator's label (`signals()` gives both, either None), a key (s = success,
    f = failure, q = quit; `keys` a TerminalKeys or None) or the time limit. Returns (end reason, duration);
    QuitRequested when `stop` or `quit_` is set or q is pressed, BenchmarkError (StallWatch) when the clock stalls."""
    while True:
        if stop.is_set():
            raise QuitRequested("stopped")
        if quit_.is_set():
            raise QuitRequested("the operator quit")
        success_at, label = signals()
        if success_at is not None and success_at - t0 <= timeout_s:
            return "success", max(0.0, success_at - t0)
        t = now()
        if label is not None:
            return ("success" if label else "failure_label"), t - t0
        if keys is not None:
            key = keys.get()
            if key == "s":
                return "success", t - t0
            if key == "f":
                return "failure_label", t - t0
            if key == "q":
                raise QuitRequested("the operator quit")
        if t - t0 >= timeout_s:
            # This poll may come a few ticks after the limit (a sim faster than real time): the limit is the length.
            return "timeout", timeout_s
        watch.check(t)
        time.sleep(0.01)


def wait_for(done: Callable[[], bool], stop: threading.Event, deadline: float, failure: str, poll: float) -> None:
    """Polls `done()` every `poll` s until it is true: QuitRequested when `stop` is set, BenchmarkError(`failure`)
    once time.monotonic() passes `deadline`."""
    while not done():
        if stop.is_set():
            raise QuitRequested("stopped")
        if time.monotonic() > deadline:
            raise BenchmarkError(failure)
        time.sleep(poll)
