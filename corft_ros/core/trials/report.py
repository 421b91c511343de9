"""Benchmark report: trials.csv, summary.json, report.md and PNG plots in one folder."""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from dataclasses import asdict, fields
from pathlib import Path

import numpy as np

from corft_ros.core.trials.stats import ArmSummary, Trial, paired, relative_change, summarize_all

CYCLE_TIME_DEFINITION = (
    "Cycle time = time from the start of a trial (after reset, when the episode starts) to the first success "
    "signal, over successful trials only (mean, median, p90, std), reported beside the success rate and its "
    "Wilson 95% interval. Episode length counts failed trials at the time limit."
)


def write_trials_csv(path: Path, trials: Sequence[Trial]) -> None:
    names = [f.name for f in fields(Trial)]
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=names)
        writer.writeheader()
        for trial in trials:
            writer.writerow(asdict(trial))


def read_trials_csv(path: Path) -> list[Trial]:
    out = []
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            out.append(Trial(arm=row["arm"], region=row["region"], seed=int(row["seed"]),
                             success=row["success"] == "True", duration_s=float(row["duration_s"]),
                             timeout_s=float(row["timeout_s"]), start_x=float(row["start_x"]),
                             start_y=float(row["start_y"]), end_reason=row["end_reason"],
                             takeovers=int(row.get("takeovers") or 0)))
    return out


def _fmt(x: float, digits: int = 2) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def comparisons(summaries: Sequence[ArmSummary], baseline: str, candidate: str) -> dict[str, dict]:
    """Relative change of candidate vs baseline per region: success rate and mean cycle time."""
    by_key = {(s.arm, s.region): s for s in summaries}
    out = {}
    for (arm, region), base in by_key.items():
        if arm != baseline or (candidate, region) not in by_key:
            continue
        cand = by_key[(candidate, region)]
        out[region] = {
            "success_rate_relative_change": relative_change(cand.success_rate, base.success_rate),
            "cycle_time_relative_change": relative_change(cand.cycle_time_mean_s, base.cycle_time_mean_s),
        }
    return out


PLOTS = ("success_rate.png", "cycle_time.png", "success_map.png", "loop_latency.png")  # in report order
SUCCESS_RATE_PNG, CYCLE_TIME_PNG, SUCCESS_MAP_PNG, LOOP_LATENCY_PNG = PLOTS


def write_report(out_dir: Path, trials: Sequence[Trial], *, title: str, command: str,
                 loop: dict[str, dict] | None = None, latency_samples: dict[str, Sequence[float]] | None = None,
                 period_error_samples: dict[str, Sequence[float]] | None = None,
                 compare: tuple[str, str] | None = None, notes: Sequence[str] = (), plots: bool = True) -> dict:
    """Write every report file; returns the summary dict (also summary.json). `plots=False` keeps the PNGs of the
    last call (drawing them costs ~0.7 s, a tenth of a trial at sim speed)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    summaries = summarize_all(trials)
    write_trials_csv(out_dir / "trials.csv", trials)
    summary = {
        "title": title,
        "command": command,
        "definition": CYCLE_TIME_DEFINITION,
        "trials": len(trials),
        "arms": [s.as_dict() for s in summaries],
        "loop": loop or {},
        "comparison": ({"baseline": compare[0], "candidate": compare[1], **comparisons(summaries, *compare)}
                       if compare else {}),
        "paired": paired_comparisons(trials),
        "notes": list(notes),
    }
    if plots:
        drawn = _plots(out_dir, trials, summaries, latency_samples or {}, period_error_samples or {})
    else:
        drawn = [name for name in PLOTS if (out_dir / name).is_file()]
    summary["plots"] = drawn
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=float))
    (out_dir / "report.md").write_text(_markdown(summary, summaries, drawn))
    return summary


LOOP_DEFINITIONS = (
    "From the executor's and the policy's /diagnostics, on the node clock (sim time in the sim). `rate_hz`: control "
    "ticks per second; `period_error`: |interval between ticks - the control period| (with the sim faster than real "
    "time this includes the waits of its pacing, not only the loop's own lateness); `underruns`: ticks with no action, "
    "held instead; `max_switch_jump`: the largest |change| of any joint, gripper included (rad), between consecutive "
    "blended targets where the source chunk changed, measured before the safety filter clamps the command to the "
    "velocity limits (a gripper closing at a switch reads up to its 0.8 rad range); `latency`: the policy's inference "
    "time.")


def paired_comparisons(trials: Sequence[Trial]) -> list[dict]:
    """Every pair of arms on the starts both ran (same region and seed), per region and pooled: paired counts, the
    exact McNemar p-value, the paired success difference and the paired cycle-time difference over starts both
    solved (stats.paired). The first arm of the run is each pair's A."""
    arms = list(dict.fromkeys(t.arm for t in trials))
    regions = list(dict.fromkeys(t.region for t in trials))
    out = []
    for i, a in enumerate(arms):
        for b in arms[i + 1:]:
            for region in [*regions, "all"]:
                comparison = paired(trials, a, b, region)
                if comparison.pairs:
                    out.append(comparison.as_dict())
    return out


def _markdown(summary: dict, summaries: Sequence[ArmSummary], plots: list[str]) -> str:
    lines = [f"# {summary['title']}", "", f"Command: `{summary['command']}`", "", summary["definition"], ""]
    lines += ["| arm | region | trials | success | 95% CI | timeouts | cycle time mean / median / p90 (s) | "
              "std (s) | episode length (s) |", "|---|---|---|---|---|---|---|---|---|"]
    for s in summaries:
        lo, hi = s.success_ci95
        lines.append(
            f"| {s.arm} | {s.region} | {s.trials} | {s.successes}/{s.trials} ({_fmt(100 * s.success_rate, 0)}%) | "
            f"{_fmt(100 * lo, 0)}–{_fmt(100 * hi, 0)}% | {s.timeouts} | {_fmt(s.cycle_time_mean_s)} / "
            f"{_fmt(s.cycle_time_median_s)} / {_fmt(s.cycle_time_p90_s)} | {_fmt(s.cycle_time_std_s)} | "
            f"{_fmt(s.episode_length_mean_s)} |"
        )
    if any(s.takeovers for s in summaries):
        lines += ["", "## Takeovers", "",
                  "Autonomous success: a success in which nobody took the arm; assisted: a success after a takeover.",
                  "", "| arm | region | trials | autonomous success | assisted success | trials with a takeover | "
                  "takeovers per trial |", "|---|---|---|---|---|---|---|"]
        for s in summaries:
            lines.append(f"| {s.arm} | {s.region} | {s.trials} | {s.autonomous_successes}/{s.trials} | "
                         f"{s.successes - s.autonomous_successes}/{s.trials} | {s.trials_with_takeover} | "
                         f"{_fmt(s.takeovers / s.trials if s.trials else float('nan'))} |")
    if summary["comparison"]:
        c = summary["comparison"]
        lines += ["", f"## {c['candidate']} vs {c['baseline']}", "", "| region | success rate change | "
                  "cycle time change |", "|---|---|---|"]
        for region, change in c.items():
            if isinstance(change, dict):
                lines.append(f"| {region} | {_fmt(100 * change['success_rate_relative_change'], 1)}% | "
                             f"{_fmt(100 * change['cycle_time_relative_change'], 1)}% |")
    if summary.get("paired"):
        lines += ["", "## Paired: the same starts", "",
                  "Per pair of arms (A, B), over the starts both ran: both / only A / only B / neither solved, the "
                  "exact McNemar p-value of the discordant starts, the success difference B - A with its 95% "
                  "interval, and B - A in cycle time over the starts both solved (mean, 95% interval, relative).", "",
                  "| A | B | region | starts | both | only A | only B | neither | McNemar p | B - A success | "
                  "B - A cycle time (s) | relative |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for c in summary["paired"]:
            lo, hi = c["success_diff_ci95"]
            clo, chi = c["cycle_time_diff_ci95_s"]
            lines.append(
                f"| {c['arm_a']} | {c['arm_b']} | {c['region']} | {c['pairs']} | {c['both']} | {c['only_a']} | "
                f"{c['only_b']} | {c['neither']} | {c['mcnemar_p']:.3g} | {_fmt(100 * c['success_diff'], 1)} "
                f"({_fmt(100 * lo, 1)} to {_fmt(100 * hi, 1)}) pts | {_fmt(c['cycle_time_diff_mean_s'])} "
                f"({_fmt(clo)} to {_fmt(chi)}), n={c['both_solved']} | {_fmt(100 * c['cycle_time_rel_change'], 1)}% |")
    if summary["loop"]:
        lines += ["", "## Control loop and inference", "", LOOP_DEFINITIONS, "", "| arm | metric | value |",
                  "|---|---|---|"]
        for arm, values in summary["loop"].items():
            for key, value in values.items():
                lines.append(f"| {arm} | {key} | {value if isinstance(value, str) else _fmt(float(value), 3)} |")
    if summary["notes"]:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in summary["notes"]]
    lines += [""] + [f"![{p}]({p})" for p in plots]
    return "\n".join(lines) + "\n"


def _plots(out_dir: Path, trials: Sequence[Trial], summaries: Sequence[ArmSummary],
           latency: dict[str, Sequence[float]], period_error: dict[str, Sequence[float]]) -> list[str]:
    """Draw the run's plots into `out_dir`; the names of those written."""
    import matplotlib

    matplotlib.use("Agg")

    written = []
    arms = list(dict.fromkeys(t.arm for t in trials))
    regions = [r for r in dict.fromkeys(t.region for t in trials)]
    if not arms:
        return written

    _success_rate_plot(out_dir, arms, regions, summaries)
    written.append(SUCCESS_RATE_PNG)
    _cycle_time_plot(out_dir, arms, trials)
    written.append(CYCLE_TIME_PNG)
    if _success_map_plot(out_dir, arms, trials):
        written.append(SUCCESS_MAP_PNG)
    if latency or period_error:
        _loop_latency_plot(out_dir, latency, period_error)
        written.append(LOOP_LATENCY_PNG)
    return written


def _success_rate_plot(out_dir: Path, arms: list[str], regions: list[str], summaries: Sequence[ArmSummary]) -> None:
    """SUCCESS_RATE_PNG: each arm's success rate per region, with its Wilson 95% interval."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(1.6 + 1.4 * len(arms) * max(1, len(regions)), 3.6))
    width = 0.8 / max(1, len(regions))
    by_key = {(s.arm, s.region): s for s in summaries}
    for j, region in enumerate(regions):
        xs, ys, err = [], [], [[], []]
        for i, arm in enumerate(arms):
            s = by_key.get((arm, region))
            if s is None or s.trials == 0:
                continue
            xs.append(i + (j - (len(regions) - 1) / 2) * width)
            ys.append(s.success_rate)
            err[0].append(max(0.0, s.success_rate - s.success_ci95[0]))
            err[1].append(max(0.0, s.success_ci95[1] - s.success_rate))
        ax.bar(xs, ys, width=width, yerr=err, capsize=4, label=region)
    ax.set_xticks(range(len(arms)), arms)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("success rate (Wilson 95% CI)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out_dir / SUCCESS_RATE_PNG, dpi=110)
    plt.close(fig)


def _cycle_time_plot(out_dir: Path, arms: list[str], trials: Sequence[Trial]) -> None:
    """CYCLE_TIME_PNG: per arm, the cycle times of its successful trials (box plot and points)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(1.6 + 1.4 * len(arms), 3.6))
    data = [[t.duration_s for t in trials if t.arm == arm and t.success] for arm in arms]
    ax.boxplot([d if d else [float("nan")] for d in data], showmeans=True)
    ax.set_xticks(range(1, len(arms) + 1), arms)
    for i, d in enumerate(data, start=1):
        ax.scatter(np.full(len(d), i) + np.random.default_rng(i).uniform(-0.12, 0.12, len(d)), d, s=8, alpha=0.5)
    ax.set_ylabel("cycle time of successful trials (s)")
    fig.tight_layout()
    fig.savefig(out_dir / CYCLE_TIME_PNG, dpi=110)
    plt.close(fig)


def _success_map_plot(out_dir: Path, arms: list[str], trials: Sequence[Trial]) -> bool:
    """SUCCESS_MAP_PNG: per arm, the cube's start positions marked success or failure; False (nothing drawn) when no
    trial has a start position."""
    import matplotlib.pyplot as plt

    positioned = [t for t in trials if math.isfinite(t.start_x) and math.isfinite(t.start_y)]
    if not positioned:
        return False
    fig, axes = plt.subplots(1, len(arms), figsize=(3.2 * len(arms), 3.4), squeeze=False)
    for ax, arm in zip(axes[0], arms, strict=True):
        mine = [t for t in positioned if t.arm == arm]
        for ok, color, label in ((True, "tab:green", "success"), (False, "tab:red", "failure")):
            pts = [(t.start_y, t.start_x) for t in mine if t.success == ok]
            if pts:
                ys, xs = zip(*pts, strict=True)
                ax.scatter(ys, xs, c=color, s=18, label=label,
                           marker="o" if ok else "x")
        ax.set_title(arm)
        ax.set_xlabel("cube start y (m)")
        ax.set_ylabel("cube start x (m)")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out_dir / SUCCESS_MAP_PNG, dpi=110)
    plt.close(fig)
    return True


def _loop_latency_plot(out_dir: Path, latency: dict[str, Sequence[float]],
                       period_error: dict[str, Sequence[float]]) -> None:
    """LOOP_LATENCY_PNG: per arm, histograms of the control period error and of the inference latency."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(8, 3.4))
    for arm, samples in period_error.items():
        if len(samples):
            axes[0].hist(np.asarray(samples) * 1e3, bins=40, alpha=0.5, label=arm)
    axes[0].set_xlabel("control period error (ms)")
    for arm, samples in latency.items():
        if len(samples):
            axes[1].hist(np.asarray(samples) * 1e3, bins=40, alpha=0.5, label=arm)
    axes[1].set_xlabel("inference latency (ms)")
    for ax in axes:
        ax.set_ylabel("count")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out_dir / LOOP_LATENCY_PNG, dpi=110)
    plt.close(fig)


def write_run_report(out_dir: Path, trials: Sequence[Trial], trial_loops: Sequence[dict], *, plan_size: int,
                     title: str, command: str, notes: Sequence[str] = (),
                     latency_samples: dict[str, Sequence[float]] | None = None,
                     period_error_samples: dict[str, Sequence[float]] | None = None,
                     compare: tuple[str, str] | None = None, extra: dict | None = None, plots: bool = True) -> dict:
    """write_report for a benchmark run: per-arm loop statistics from per-trial /diagnostics records
    (`trial_loops`: dicts with 'arm' and trials.LOOP_KEYS), plus the plan size, per-trial loop records and
    `extra` in summary.json. Called after every trial, so an interrupted run leaves a complete report."""
    from corft_ros.core.trials.trials import LOOP_KEYS, loop_summary

    arms = list(dict.fromkeys([t.arm for t in trials] + [r.get("arm", "") for r in trial_loops]))
    loop = {}
    for arm in arms:
        records = [r for r in trial_loops if r.get("arm") == arm]
        if any(key in r for r in records for key in LOOP_KEYS):
            loop[arm] = loop_summary(records)
    pending = plan_size - len(trials)
    notes = list(notes) + ([f"{pending} of {plan_size} planned trials not (yet) run"] if pending > 0 else [])
    summary = write_report(out_dir, trials, title=title, command=command, loop=loop,
                           latency_samples=latency_samples, period_error_samples=period_error_samples,
                           compare=compare, notes=notes, plots=plots)
    summary.update({"plan_trials": plan_size, "completed_trials": len(trials), "trial_loop": list(trial_loops),
                    **(extra or {})})
    (Path(out_dir) / "summary.json").write_text(json.dumps(summary, indent=2, default=float))
    return summary


def summary_lines(summary: dict) -> list[str]:
    """A few lines per arm: success rate with its Wilson 95% interval, cycle time, loop and inference numbers."""
    lines = []
    loop = summary.get("loop", {})
    width = max([len(a["arm"]) for a in summary.get("arms", [])] + [8])
    for arm in summary.get("arms", []):
        if arm["region"] != "all" and len({a["region"] for a in summary["arms"] if a["arm"] == arm["arm"]}) <= 2:
            continue  # one region: its row equals 'all'
        lo, hi = arm["success_ci95"]
        ct = arm["cycle_time_mean_s"]
        line = (f"{arm['arm']:>{width}} {arm['region']:>6}: success {arm['successes']}/{arm['trials']} "
                f"= {100 * arm['success_rate']:.0f}% (95% CI {100 * lo:.0f}-{100 * hi:.0f}%), cycle time "
                + (f"{ct:.2f} s mean / {arm['cycle_time_median_s']:.2f} s median" if math.isfinite(ct) else "-")
                + f", timeouts {arm['timeouts']}")
        lines.append(line)
    comparison = summary.get("comparison") or {}
    for region, change in comparison.items():
        if isinstance(change, dict):
            sr, ct = change["success_rate_relative_change"], change["cycle_time_relative_change"]
            lines.append(f"{comparison['candidate']} vs {comparison['baseline']} ({region}): success rate "
                         + (f"{100 * sr:+.1f}%" if math.isfinite(sr) else "-") + ", mean cycle time "
                         + (f"{100 * ct:+.1f}%" if math.isfinite(ct) else "-"))
    for arm, values in loop.items():
        parts = []
        if math.isfinite(values.get("rate_hz", math.nan)):
            parts.append(f"loop {values['rate_hz']:.1f} Hz, period error p50 {values['period_error_p50_ms']:.2f} ms"
                         f" / p99 {values['period_error_p99_ms_worst_trial']:.2f} ms, underruns "
                         f"{values['underruns_total']:.0f}, max |dq| at switches {values['max_switch_jump_rad']:.3f}"
                         " rad")
        if math.isfinite(values.get("latency_p50_ms", math.nan)):
            parts.append(f"inference p50 {values['latency_p50_ms']:.2f} ms / p95 "
                         f"{values['latency_p95_ms_worst_trial']:.2f} ms / max {values['latency_max_ms']:.2f} ms")
        if parts:
            lines.append(f"{arm:>{width}}: " + "; ".join(parts))
    return lines
