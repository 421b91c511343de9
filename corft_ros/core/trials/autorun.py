"""The benchmark node's own schedule (`autostart`): every trial of one arm over the regions and seeds, resumed from
the report folder's trials.csv when it has one, the report (report.md, trials.csv, summary.json, plots) rewritten
after every counted trial; it returns the run's exit code. ROS-free: the node hands in how to run one trial, how
to tell that it was stopped, and where its log lines go."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from corft_ros.core.trials.run import StopRun, run_trials
from corft_ros.core.trials.trials import TrialSpec, in_plan, remaining, schedule


def run_schedule(arm: str, regions: list[str], trials_per_region: int, first_seed: int, output_dir: str,
                 max_errors: int, command: str, run_trial: Callable[[TrialSpec], Any], stopped: Callable[[], bool],
                 info: Callable[[str], None], error: Callable[[str], None]) -> int:
    """The autostart run: every trial of the schedule, the report rewritten after each. Returns the exit code."""
    from corft_ros.core.trials.report import read_trials_csv, summary_lines, write_run_report

    out = Path(output_dir or Path("bench") / datetime.now().strftime("%Y%m%d-%H%M%S")).expanduser()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        error(f"benchmark: cannot create {out}: {exc}")
        return 2
    plan = schedule([arm], regions, trials_per_region, first_seed)
    done = in_plan(plan, read_trials_csv(out / "trials.csv")) if (out / "trials.csv").is_file() else []
    todo = remaining(plan, done)
    if done:
        info(f"benchmark: resuming {out}: {len(done)} of {len(plan)} trials done")
    trials, loops, notes = list(done), [], []

    def run_one(spec):
        if stopped():
            raise StopRun("the node was shut down", 130)
        return run_trial(spec)

    def counted(spec, outcome) -> None:
        loops.append({"arm": spec.arm, **outcome.loop})
        write_run_report(out, trials, loops, plan_size=len(plan), title=f"Benchmark: {arm}",
                         command=command, notes=notes)

    rc = run_trials(todo, trials, notes, run_one, counted, info, max_errors, len(plan))
    if stopped():  # SIGINT/SIGTERM: an ordinary stop (exit 0); the same report:= resumes it
        info(f"benchmark stopped after {len(trials)} of {len(plan)} trials; report:={out} resumes it")
        return 0
    summary = write_run_report(out, trials, loops, plan_size=len(plan), title=f"Benchmark: {arm}",
                               command=command, notes=notes)
    for line in summary_lines(summary):
        info(line)
    info(f"benchmark {'done' if rc == 0 else f'ended (exit code {rc})'}: report in {out / 'report.md'}")
    return rc
