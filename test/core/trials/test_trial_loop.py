"""The one trial loop (core/trials/trials.run_trials) that the benchmark node's autostart and `corft-ros bench
trials` share: counting, notes, and the three ways a run stops."""

from __future__ import annotations

import math
from types import SimpleNamespace

from corft_ros.core.trials.run import StopRun, run_trials
from corft_ros.core.trials.stats import Trial
from corft_ros.core.trials.trials import schedule


def outcome(spec, result: str):
    if result in ("quit", "error"):
        return SimpleNamespace(trial=None, quit=result == "quit", error="no signal from the sim")
    trial = Trial(arm=spec.arm, region=spec.region, seed=spec.seed, success=result == "success", duration_s=5.0,
                  timeout_s=20.0, start_x=0.4, start_y=0.1, end_reason=result)
    return SimpleNamespace(trial=trial, quit=False, error="")


def run(results: list[str], max_errors: int = 2, stop_at: int | None = None):
    plan = schedule(["il"], ["seen"], len(results), 0)
    trials, notes, said, counted = [], [], [], []

    def run_one(spec):
        if stop_at is not None and spec.index == stop_at:
            raise StopRun("the node was shut down", 130)
        return outcome(spec, results[spec.index])

    rc = run_trials(plan, trials, notes, run_one, lambda spec, o: counted.append((spec.index, list(notes))),
                    said.append, max_errors, len(plan))
    return rc, trials, notes, said, counted


def test_every_trial_counts_and_the_report_is_rewritten_after_each():
    rc, trials, notes, said, counted = run(["success", "timeout", "success"])
    assert rc == 0 and [t.end_reason for t in trials] == ["success", "timeout", "success"] and notes == []
    assert [i for i, _ in counted] == [0, 1, 2] and len(said) == 3 and "trial 3/3" in said[-1]


def test_a_trial_without_a_signal_is_noted_not_counted_and_too_many_in_a_row_stop_the_run():
    rc, trials, notes, said, counted = run(["error", "success", "error", "error", "success"], max_errors=2)
    assert rc == 1 and len(trials) == 1
    assert notes[0].startswith("trial 1 (il, seen, seed 0) not counted: no signal")
    assert counted[0] == (1, notes[:1])  # the report written after trial 2 already says why trial 1 is missing
    assert notes[-1] == "run stopped: 2 trials in a row without a signal from the sim/robot"
    assert said[-1].startswith("error: run stopped")


def test_the_operator_quitting_or_a_stop_request_ends_the_run_with_its_code():
    rc, trials, notes, _, _ = run(["success", "quit", "success"])
    assert rc == 130 and len(trials) == 1 and "stopped by the operator after 1 of 3 trials" in notes[-1]
    rc, trials, notes, _, _ = run(["success", "success", "success"], stop_at=1)
    assert rc == 130 and len(trials) == 1 and notes == ["the node was shut down"]


def test_loop_record_counts_the_trial_and_reads_the_windows():
    from corft_ros.core.trials.run import CHUNKS, EXECUTOR_STATUS, POLICY_STATUS, loop_record

    base = {EXECUTOR_STATUS: {"underruns": "3", "overruns": "1", "chunk_switches": "10"}, CHUNKS: {"inferences": "7"}}
    now = {EXECUTOR_STATUS: {"underruns": "5", "overruns": "0", "chunk_switches": "30", "rate_hz": "100.0",
                             "period_error_p99_ms": "0.8"},
           POLICY_STATUS: {"latency_p50_ms": "12.5", "latency_max_ms": "bad"}, CHUNKS: {"inferences": "32"}}
    record = loop_record(now, base)
    assert record["underruns"] == 2 and record["chunk_switches"] == 20 and record["inferences"] == 25
    assert record["overruns"] == 0  # a restarted executor counts from zero: its count, not a negative difference
    assert record["rate_hz"] == 100.0 and record["latency_p50_ms"] == 12.5
    assert math.isnan(record["latency_max_ms"])  # an unreadable value is nan, never a made-up number
    assert loop_record({}, {}) == {}
