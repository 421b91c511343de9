"""The end-to-end experiment's report: the lockstep evaluation's arms, paired start by start, against the goals of
the flywheel (CO-RFT against IL and the strongest supervised use of the same data).

Pure functions over summary.json (the benchmark's) and the run records of the other stages; `corft-ros experiment`
(corft_ros/cli/experiment.py) runs the stages and writes what these return.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

from corft_ros.core.trials.goals import (
    CONTROLS,
    REPEAT,
    Goal,
    arm_rows,
    best_arm,
    failure_table,
    flywheel_goals,
    goals_table,
    paired_row,
    paired_table,
    results_table,
)


def write_experiment_report(work: Path, out: Path, log: dict, command: str, task: str) -> tuple[str | None, list[str]]:
    """experiment.md / experiment.json and the plots in `out` from the run in `work`; (best arm, summary lines)."""
    evaluation = work / "eval"
    summary = json.loads((evaluation / "summary.json").read_text())
    _copy_benchmark_outputs(evaluation, out)
    rows = arm_rows(summary)
    corft = [a for a in rows if a.startswith("corft")]
    candidate = log.get("candidate") if log.get("candidate") in rows else (corft[-1] if corft else None)
    chosen = best_arm({a: r for a, r in rows.items() if a != REPEAT})
    pairs = _compared_pairs(rows, candidate)
    tests = _paired_tests(summary, rows, pairs)
    goal_rows = flywheel_goals(summary, candidate)
    il_log = log.get("il") or {}
    curve = il_log.get("curve", [])
    plots = _experiment_plots(out, curve, log.get("rounds", {}), rows)
    lines = [
        *_report_head(log, command, task),
        *_results_section(summary, rows, pairs),
        *_goals_section(goal_rows, chosen, rows),
        *_curve_section(curve, il_log, log),
        *_rounds_section(log),
        "", *critic_section(log), *intervention_section(log),
        *_steps_section(log, plots, out),
    ]
    (out / "experiment.md").write_text("\n".join(lines) + "\n")
    (out / "experiment.json").write_text(json.dumps(
        {"arms": rows, "default_model": chosen, "candidate": candidate, "paired": tests,
         "reward": log.get("reward", {}), "intervention_rounds": log.get("intervention_rounds", {}),
         "diagnostics": {r: info.get("diagnostics") for r, info in (log.get("rounds") or {}).items()},
         "failures": summary.get("failures", {}), "goals": [vars(g) for g in goal_rows], "il_curve": curve,
         "rounds": log.get("rounds", {}), "log": log}, indent=2, default=float))
    printed = [*results_table(summary, list(rows)), "", *goals_table(goal_rows),
               *[f"{t['compare']} ({t['region']}): only A {t['only_a']}, only B {t['only_b']} of {t['pairs']}, "
                 f"McNemar p = {t['mcnemar_p']:.3g}" for t in tests if t["region"] == "all"],
               f"best measured arm: {chosen}"]
    return chosen, printed


def _copy_benchmark_outputs(evaluation: Path, out: Path) -> None:
    """Copy the benchmark's report, summary, trials and plots (those it wrote) from `evaluation` into `out`."""
    import shutil

    for name in ("report.md", "summary.json", "trials.csv", "success_rate.png", "cycle_time.png", "success_map.png",
                 "loop_latency.png"):
        if (evaluation / name).is_file():
            shutil.copy2(evaluation / name, out / name)


def _compared_pairs(rows: dict[str, dict[str, dict]], candidate: str | None) -> list[tuple[str, str]]:
    """The (A, B) arm pairs the report compares start by start (some may name arms this run lacks)."""
    # CO-RFT against IL and the supervised controls; its halves (the action expert alone against filtered BC, and
    # the critic's pick against a random one among the same proposals); the controls against IL (what supervision
    # alone does); IL against its own repeat (the evaluation's noise floor)
    others = ["il", *[c for c in CONTROLS if c in rows]]
    pairs = [(other, candidate) for other in others if candidate] + [("il", c) for c in CONTROLS if c in rows]
    if candidate:
        actor, random_pick, distill = (f"{candidate}_{x}" for x in ("actor", "random", "distill"))
        pairs += [(x, candidate) for x in (actor, random_pick, distill) if x in rows]
        pairs += [("il_fbc", x) for x in (actor, distill) if x in rows and "il_fbc" in rows]
    if "interventions" in rows:
        pairs += [(x, "interventions") for x in ("il", candidate) if x in rows]
    pairs += [("il", REPEAT)] if REPEAT in rows else []
    if "bundled" in rows:
        pairs += [("bundled", candidate or "il")]
    return pairs


def _paired_tests(summary: dict, rows: dict[str, dict[str, dict]], pairs: list[tuple[str, str]]) -> list[dict]:
    """experiment.json's paired tests: per pair of measured arms and region, the discordant starts and McNemar p."""
    tests = []
    for a, b in pairs:
        if a in rows and b in rows:
            for region in ("seen", "unseen", "all"):
                row = paired_row(summary, a, b, region)
                if row is not None:
                    tests.append({"compare": f"{b} vs {a}", "region": region, "pairs": row["pairs"],
                                  "only_a": row["only_a"], "only_b": row["only_b"], "mcnemar_p": row["mcnemar_p"],
                                  "success_diff": row["success_diff"],
                                  "cycle_time_rel_change": row["cycle_time_rel_change"]})
    return tests


def _report_head(log: dict, command: str, task: str) -> list[str]:
    """experiment.md's title, the run's times and how to reproduce it, and the task."""
    return [
        "# CO-RFT vs IL in sim: the end-to-end experiment",
        "",
        f"Run: {log.get('started', '')} → {log.get('finished') or datetime.now().isoformat(timespec='seconds')}, "
        "2 CPU cores, no GPU. "
        f"Reproduce: `{command}`.",
        "",
        f"Task: \"{task}\" — OGBench's single-cube scene (UR5e + Robotiq 2F-85, MuJoCo), two 64×64 cameras at "
        "10 Hz, actions at 20 Hz, the executor at 100 Hz, every node over DDS on the sim's clock.",
        "",
    ]


def _results_section(summary: dict, rows: dict[str, dict[str, dict]], pairs: list[tuple[str, str]]) -> list[str]:
    """The final evaluation: per arm and region, the arms paired start by start, and why the failures failed."""
    return [
        "## Result (final evaluation, fresh seeds, arms interleaved on the same start positions)",
        "",
        *results_table(summary, list(rows)),
        "",
        "Paired on the same starts (lockstep: the same model on the same start gives the same outcome, so an arm's "
        "wins and losses against another are the arms' doing; `il_repeat` is IL run again, the noise floor):",
        "",
        *paired_table(summary, [(a, b) for a, b in pairs if a in rows and b in rows]),
        "",
        summary.get("definition", ""),
        "",
        "Why the failures failed (the cube's path in each failed trial):",
        "",
        *failure_table(summary),
        "",
    ]


def _goals_section(goal_rows: list[Goal], chosen: str | None, rows: dict[str, dict[str, dict]]) -> list[str]:
    """The flywheel's goals against this run, and which arm became `models/default`."""
    return [
        "## Goals",
        "",
        *(goals_table(goal_rows) if goal_rows else ["No CO-RFT arm and no repeat arm in this run: no goal measured."]),
        "",
        f"`models/default` is the best measured arm: **{chosen}** (most seen successes, then unseen, then cycle "
        "time)" + (": the model bundled before this run, kept" if chosen == "bundled" else "") + ".",
        *(["", "`bundled` = `models/default` as it was before this run, evaluated beside the new arms on the same "
           "start positions (so the bundled model is replaced only by an arm that beats it here)."]
          if "bundled" in rows else []),
        "",
    ]


def _curve_section(curve: list[dict], il_log: dict, log: dict) -> list[str]:
    """IL's screen per checkpoint and the step chosen."""
    return [
        _curve_heading(curve, il_log.get("chosen_step"), il_log.get("patience", 2)),
        "",
        "| step | screen successes (seen, ROS-free, dev seeds) | cycle time (s) |",
        "|---|---|---|",
        *[f"| {r['step']} | {r['successes']}/{r['trials']} | "
          f"{'-' if r['cycle_time_mean_s'] is None else format(r['cycle_time_mean_s'], '.2f')} |" for r in curve],
        "",
        f"Chosen: step {(log.get('il') or {}).get('chosen_step')}. {curve_swing(curve)}",
        "",
    ]


def _rounds_section(log: dict) -> list[str]:
    """Per collection round: who collected, the trials and successes, and the CO-RFT data it gave."""
    lines = [
        "## Rounds: the stack's own logs",
        "",
        "| round | collected with | trials | successes | cycle time (s) | CO-RFT data: episodes (successes) |",
        "|---|---|---|---|---|---|",
    ]
    for r, info in sorted(log.get("rounds", {}).items(), key=lambda kv: int(kv[0])):
        ds = info.get("dataset", {})
        cycle = info.get("cycle_time_mean_s")
        lines.append(f"| {r} | {info.get('collected_with')} | {info.get('trials')} | {info.get('successes')} | "
                     f"{'-' if cycle is None else format(float(cycle), '.2f')} | "
                     f"{ds.get('episodes', '-')} ({ds.get('successes', '-')}) |")
    return lines


def _steps_section(log: dict, plots: list[str], out: Path) -> list[str]:
    """The wall time of each step and in all, then the plots (this report's and the benchmark's copied ones)."""
    lines = ["", "## Steps (each a `corft-ros` command; wall time on this machine)", "", "| step | wall |",
             "|---|---|"]
    total = 0.0
    for step, info in log.get("steps", {}).items():
        total += info["wall_s"]
        lines.append(f"| {step} | {info['wall_s'] / 60:.1f} min |")
    return lines + [f"| total | {total / 60:.1f} min |", "", "Benchmark details: [report.md](report.md).", "",
                    *[f"![{p}]({p})" for p in plots],
                    *[f"![{p}]({p})" for p in ("success_rate.png", "cycle_time.png", "success_map.png")
                      if (out / p).is_file()]]


def diagnostics_row(label: str, diag: dict | None) -> str:
    """One markdown row of a critic's held-out diagnostics (core/rl/diagnostics.py)."""
    if not diag or not diag.get("ticks"):
        return f"| {label} | – | – | – | – | – | – |"

    def num(x: float | None) -> str:
        return "–" if x is None else f"{x:.2f}"

    c, a = diag.get("calibration", {}), diag.get("auc", {})
    aucs = " / ".join(f"{num((a.get(t) or {}).get('auc'))}" for t in ("1s", "3s", "5s"))
    return (f"| {label} | {diag['episodes']} ({diag['successes']}) | {aucs} | "
            f"{num((c.get('success') or {}).get('spearman'))} / {num((c.get('failure') or {}).get('spearman'))} | "
            f"{num((c.get('success') or {}).get('bias'))} / {num((c.get('failure') or {}).get('bias'))} | "
            f"{num((c.get('all') or {}).get('spearman'))} | "
            f"{(a.get('3s') or {}).get('successes', 0)}+ / {(a.get('3s') or {}).get('failures', 0)}- |")


def critic_section(log: dict) -> list[str]:
    """The critic's held-out diagnostics: the reward choice (round 1) and every round's CO-RFT critic."""
    reward = log.get("reward") or {}
    rounds = log.get("rounds") or {}
    if not reward and not any(info.get("diagnostics") for info in rounds.values()):
        return []
    head = ["| critic | held-out episodes (successes) | AUC of V(s_t) for success at 1 / 3 / 5 s | "
            "Spearman Q vs return: successes / failures | bias Q − return: successes / failures | Spearman, all | "
            "states at 3 s |", "|---|---|---|---|---|---|---|"]
    out = ["## The critic, on held-out episodes", "",
           "Episodes the critic never trained on (stratified by outcome): does V(s) see success coming (AUC, 0.5 = "
           "chance), and does Q order the returns that followed (Spearman) without bias?", ""]
    if reward:
        out += [f"Reward chosen by {reward.get('by', 'the held-out AUC')}: **{reward.get('chosen')}**.", "", *head]
        for name, info in (reward.get("candidates") or {}).items():
            sets = ", ".join(info.get("sets") or []) or "defaults"
            out.append(diagnostics_row(f"{name} ({sets})", info.get("diagnostics")))
        out.append("")
    if any(info.get("diagnostics") for info in rounds.values()):
        out += head
        for r, info in sorted(rounds.items(), key=lambda kv: int(kv[0])):
            out.append(diagnostics_row(f"CO-RFT round {r}", info.get("diagnostics")))
        out.append("")
    return out


def curve_swing(curve: list[dict]) -> str:
    """How much neighbouring IL checkpoints' screens differ (the EMA and the learning-rate decay are there to keep
    them from swinging), past the first two screens (the rise)."""
    late = curve[2:]
    if len(late) < 2:
        return ""
    rates = [row["successes"] / row["trials"] for row in late]
    steps = [abs(b - a) for a, b in zip(rates, rates[1:], strict=False)]
    return (f"Neighbouring checkpoints after the first two screens differ by at most {100 * max(steps):.0f} points "
            f"(median {100 * sorted(steps)[len(steps) // 2]:.0f}) on the same {late[0]['trials']} screen starts.")


def intervention_section(log: dict) -> list[str]:
    """The flywheel with the sim's intervener: per round, what the collection needed (takeovers per trial falls
    when the policy gets better at not getting stuck)."""
    rounds = log.get("intervention_rounds") or {}
    if not rounds:
        return []
    out = ["## With the sim's intervener (`--interventions`)", "",
           "Each round collects with the scripted intervener taking over a stuck policy, then CO-RFT learns from "
           "the demos and those rounds (the operator's ticks imitated, the tick before each takeover penalised); "
           "the last round's model is the arm `interventions`, evaluated above without takeover.", "",
           "| round | collected with | trials | successes | autonomous successes | trials with a takeover | "
           "takeovers per trial |", "|---|---|---|---|---|---|---|"]
    for r, info in sorted(rounds.items(), key=lambda kv: int(kv[0])):
        per = info.get("takeovers_per_trial")
        out.append(f"| {r} | {info.get('collected_with')} | {info.get('trials')} | {info.get('successes')} | "
                   f"{info.get('autonomous_successes')} | {info.get('trials_with_takeover')} | "
                   f"{'-' if per is None else format(per, '.2f')} |")
    return [*out, ""]


def il_stopped_improving(curve: list[dict], patience: int) -> bool:
    """True when IL's last `patience` screens found no more successes than the best screen before them."""
    if patience < 1 or len(curve) <= patience:
        return False
    best_before = max(row["successes"] for row in curve[:-patience])
    return all(row["successes"] <= best_before for row in curve[-patience:])


def _curve_heading(curve: list[dict], chosen: int | None, patience: int = 2) -> str:
    """Says whether IL's screen stopped improving, or was still improving at the last checkpoint."""
    if il_stopped_improving(curve, patience):
        return (f"## IL: trained until its screen stopped improving (no new best in its last {patience} screens; "
                f"the best, step {chosen}, is the IL arm)")
    if curve and chosen == curve[-1]["step"] and len(curve) > 1:
        return ("## IL: its screen was still improving at the last checkpoint (IL may be under-trained: a larger "
                "`--il-steps` would show where it stops)")
    return (f"## IL: the run reached `--il-steps` before {patience} screens without a new best; the best, step "
            f"{chosen}, is the IL arm")


def _experiment_plots(out: Path, curve: list[dict], rounds: dict, rows: dict) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    made = []
    if curve:
        fig, ax = plt.subplots(figsize=(5, 3.2))
        ax.plot([r["step"] for r in curve], [100 * r["successes"] / r["trials"] for r in curve], "o-")
        ax.set_xlabel("IL gradient steps")
        ax.set_ylabel("screen success (%)")
        ax.set_ylim(0, 100)
        ax.set_title("IL until its screen stops improving")
        fig.tight_layout()
        fig.savefig(out / "il_curve.png", dpi=120)
        plt.close(fig)
        made.append("il_curve.png")
    if rounds:
        keys = sorted(rounds, key=int)
        fig, ax = plt.subplots(figsize=(5, 3.2))
        ax.plot([int(k) for k in keys], [100 * (rounds[k].get("successes") or 0) / max(1, rounds[k].get("trials") or 1)
                                        for k in keys], "o-")
        ax.set_xlabel("round (collected with the previous round's policy)")
        ax.set_ylabel("collection success (%)")
        ax.set_ylim(0, 100)
        fig.tight_layout()
        fig.savefig(out / "rounds.png", dpi=120)
        plt.close(fig)
        made.append("rounds.png")
    return made
