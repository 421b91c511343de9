"""The end-to-end experiment's report: the benchmark summary read against the CO-RFT paper's real-robot numbers.

Pure functions over summary.json (the benchmark's) and the run records of the other stages; `corft-ros experiment`
(corft_ros/cli/experiment.py) runs the stages and writes what these return.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

# CO-RFT (arXiv 2508.02219), real robot, against supervised fine-tuning on the same demonstrations.
PAPER_SUCCESS_GAIN = 0.57  # relative increase of the success rate
PAPER_CYCLE_TIME_CUT = 0.223  # relative decrease of the cycle time
PAPER_UNSEEN_SUCCESS = 0.443  # success rate at unseen positions
MIN_CYCLE_SUCCESSES = 5  # fewer successful trials in an arm: its mean cycle time says nothing


@dataclass
class Goal:
    name: str
    paper: str
    measured: str
    met: bool | None  # None: not measurable (e.g. IL never succeeded, so no relative change)


def _arm(summary: dict, arm: str, region: str) -> dict | None:
    for row in summary.get("arms", []):
        if row.get("arm") == arm and row.get("region") == region:
            return row
    return None


def _pct(x: float | None, digits: int = 1) -> str:
    return "–" if x is None or not math.isfinite(x) else f"{100 * x:+.{digits}f}%"


def goals(summary: dict, baseline: str, candidate: str, region: str = "seen") -> list[Goal]:
    """The paper's three numbers against this run: success gain and cycle-time cut of `candidate` over `baseline`
    in `region` (the demonstrations' region), and the candidate's success rate on unseen starts."""
    out: list[Goal] = []
    base, cand = _arm(summary, baseline, region), _arm(summary, candidate, region)
    if base is not None and cand is not None:
        b, c = float(base["success_rate"]), float(cand["success_rate"])
        if b > 0:
            gain = (c - b) / b
            out.append(Goal(f"success rate, {candidate} vs {baseline} ({region})", f"{_pct(PAPER_SUCCESS_GAIN)}",
                            f"{_pct(gain)} ({100 * b:.0f}% → {100 * c:.0f}%)", gain >= PAPER_SUCCESS_GAIN))
        else:
            out.append(Goal(f"success rate, {candidate} vs {baseline} ({region})", f"{_pct(PAPER_SUCCESS_GAIN)}",
                            f"{baseline} never succeeded ({100 * c:.0f}% for {candidate}): no relative change",
                            None if c == 0 else True))
        bt, ct = float(base["cycle_time_mean_s"]), float(cand["cycle_time_mean_s"])
        nb, nc = int(base["successes"]), int(cand["successes"])
        if math.isfinite(bt) and math.isfinite(ct) and bt > 0:
            cut = (bt - ct) / bt
            few = min(nb, nc) < MIN_CYCLE_SUCCESSES
            out.append(Goal(f"cycle time, {candidate} vs {baseline} ({region})", f"-{100 * PAPER_CYCLE_TIME_CUT:.1f}%",
                            f"{_pct(-cut)} ({bt:.2f} s over {nb} → {ct:.2f} s over {nc} successes"
                            f"{f'; under {MIN_CYCLE_SUCCESSES} in an arm: too few to call' if few else ''})",
                            None if few else cut >= PAPER_CYCLE_TIME_CUT))
        else:
            out.append(Goal(f"cycle time, {candidate} vs {baseline} ({region})", f"-{100 * PAPER_CYCLE_TIME_CUT:.1f}%",
                            "not measurable: an arm had no successful trial", None))
    unseen = _arm(summary, candidate, "unseen")
    if unseen is not None:
        rate = float(unseen["success_rate"])
        lo, hi = unseen.get("success_ci95", (math.nan, math.nan))
        out.append(Goal(f"success at unseen positions, {candidate}", f"{100 * PAPER_UNSEEN_SUCCESS:.1f}%",
                        f"{100 * rate:.1f}% ({unseen['successes']}/{unseen['trials']}, 95% CI "
                        f"{100 * lo:.0f}–{100 * hi:.0f}%)", rate >= PAPER_UNSEEN_SUCCESS))
    return out


def results_table(summary: dict, arms: list[str]) -> list[str]:
    """Markdown rows: per arm and region, success with its Wilson interval, cycle time, episode length."""
    lines = ["| arm | region | success | 95% CI | cycle time mean / median (s) | episode length (s) |",
             "|---|---|---|---|---|---|"]
    for arm in arms:
        for region in ("seen", "unseen", "all"):
            row = _arm(summary, arm, region)
            if row is None:
                continue
            lo, hi = row["success_ci95"]
            mean, median = float(row["cycle_time_mean_s"]), float(row["cycle_time_median_s"])
            cycle = f"{mean:.2f} / {median:.2f}" if math.isfinite(mean) else "–"
            lines.append(f"| {arm} | {region} | {row['successes']}/{row['trials']} ({100 * row['success_rate']:.0f}%)"
                         f" | {100 * lo:.0f}–{100 * hi:.0f}% | {cycle} | {float(row['episode_length_mean_s']):.2f} |")
    return lines


def goals_table(rows: list[Goal]) -> list[str]:
    lines = ["| goal | paper (real robot) | this run (sim) | met |", "|---|---|---|---|"]
    for g in rows:
        met = "n/a" if g.met is None else ("yes" if g.met else "no")
        lines.append(f"| {g.name} | {g.paper} | {g.measured} | {met} |")
    return lines


# ------------------------------------------------------------------------------------------ the experiment report


def fisher_p(a_success: int, a_trials: int, b_success: int, b_trials: int) -> float:
    """Two-sided Fisher exact test p-value of two success counts."""
    from scipy.stats import fisher_exact

    table = [[a_success, a_trials - a_success], [b_success, b_trials - b_success]]
    return float(fisher_exact(table, alternative="two-sided")[1])


def arm_rows(summary: dict) -> dict[str, dict[str, dict]]:
    """arm → region → {successes, trials, success_rate, success_ci95, cycle_time_mean_s} (what experiment.json
    keeps per arm and region)."""
    out: dict[str, dict[str, dict]] = {}
    for row in summary.get("arms", []):
        cycle = row.get("cycle_time_mean_s")
        cycle = float(cycle) if cycle is not None and math.isfinite(float(cycle)) else None
        out.setdefault(row["arm"], {})[row["region"]] = {
            "successes": int(row["successes"]), "trials": int(row["trials"]),
            "success_rate": float(row["success_rate"]), "success_ci95": [float(x) for x in row["success_ci95"]],
            "cycle_time_mean_s": cycle,
        }
    return out


def best_arm(rows: dict[str, dict[str, dict]]) -> str | None:
    """The best measured arm: most seen successes, then most unseen successes, then the shorter cycle time."""
    def key(arm: str):
        seen, unseen = rows[arm].get("seen", {}), rows[arm].get("unseen", {})
        cycle = seen.get("cycle_time_mean_s")
        return (seen.get("successes", 0), unseen.get("successes", 0), -(cycle if cycle is not None else math.inf))
    return max(rows, key=key) if rows else None


def write_experiment_report(work: Path, out: Path, log: dict, command: str, task: str) -> tuple[str | None, list[str]]:
    """experiment.md / experiment.json and the plots in `out` from the run in `work`; (best arm, summary lines)."""
    import shutil

    evaluation = work / "eval"
    summary = json.loads((evaluation / "summary.json").read_text())
    for name in ("report.md", "summary.json", "trials.csv", "success_rate.png", "cycle_time.png", "success_map.png",
                 "loop_latency.png"):
        if (evaluation / name).is_file():
            shutil.copy2(evaluation / name, out / name)
    rows = arm_rows(summary)
    corft = [a for a in rows if a.startswith("corft")]
    candidate = corft[-1] if corft else None
    chosen = best_arm(rows)
    tests = []
    # CO-RFT against IL and the control arm; the control against IL too (what more supervised steps alone do)
    pairs = [(candidate, other) for other in ("il", "il_bc") if candidate] + [("il_bc", "il")]
    for first, other in pairs:
        for region in ("seen", "unseen"):
            if first in rows and other in rows and region in rows[other] and region in rows[first]:
                a, b = rows[first][region], rows[other][region]
                tests.append({"compare": f"{first} vs {other}", "region": region,
                              "p": fisher_p(a["successes"], a["trials"], b["successes"], b["trials"])})
    goal_rows = goals(summary, "il", candidate, "seen") if candidate else []
    il_log = log.get("il") or {}
    curve = il_log.get("curve", [])
    plots = _experiment_plots(out, curve, log.get("rounds", {}), rows)
    lines = [
        "# CO-RFT vs IL in sim: the end-to-end experiment",
        "",
        f"Run: {log.get('started', '')} → {log.get('finished') or datetime.now().isoformat(timespec='seconds')}, "
        "2 CPU cores, no GPU. "
        f"Reproduce: `{command}`.",
        "",
        f"Task: \"{task}\" — OGBench's single-cube scene (UR5e + Robotiq 2F-85, MuJoCo), two 64×64 cameras at "
        "10 Hz, actions at 20 Hz, the executor at 100 Hz, every node over DDS on the sim's clock.",
        "",
        "## Result (final evaluation, fresh seeds, arms interleaved on the same start positions)",
        "",
        *results_table(summary, list(rows)),
        "",
        "Fisher exact test (two-sided) of the success counts:",
        "",
        "| comparison | region | p |",
        "|---|---|---|",
        *[f"| {t['compare']} | {t['region']} | {t['p']:.3g} |" for t in tests],
        "",
        summary.get("definition", ""),
        "",
        "## Against the paper's real-robot numbers",
        "",
        *(goals_table(goal_rows) if goal_rows else
          ["No CO-RFT arm in this run (`--rounds 0`): the paper's goals are not measured here."]),
        "",
        f"`models/default` is the best measured arm: **{chosen}** (most seen successes, then unseen, then cycle "
        "time)" + (": the model bundled before this run, kept" if chosen == "bundled" else "") + ".",
        *(["", "`bundled` = `models/default` as it was before this run, evaluated beside the new arms on the same "
           "start positions (so the bundled model is replaced only by an arm that beats it here)."]
          if "bundled" in rows else []),
        "",
        _curve_heading(curve, il_log.get("chosen_step"), il_log.get("patience", 2)),
        "",
        "| step | screen successes (seen, ROS-free, dev seeds) | cycle time (s) |",
        "|---|---|---|",
        *[f"| {r['step']} | {r['successes']}/{r['trials']} | "
          f"{'-' if r['cycle_time_mean_s'] is None else format(r['cycle_time_mean_s'], '.2f')} |" for r in curve],
        "",
        f"Chosen: step {(log.get('il') or {}).get('chosen_step')}.",
        "",
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
    lines += ["", "## Steps (each a `corft-ros` command; wall time on this machine)", "", "| step | wall |",
              "|---|---|"]
    total = 0.0
    for step, info in log.get("steps", {}).items():
        total += info["wall_s"]
        lines.append(f"| {step} | {info['wall_s'] / 60:.1f} min |")
    lines += [f"| total | {total / 60:.1f} min |", "", "Benchmark details: [report.md](report.md).", "",
              *[f"![{p}]({p})" for p in plots],
              *[f"![{p}]({p})" for p in ("success_rate.png", "cycle_time.png", "success_map.png")
                if (out / p).is_file()]]
    (out / "experiment.md").write_text("\n".join(lines) + "\n")
    (out / "experiment.json").write_text(json.dumps(
        {"arms": rows, "default_model": chosen, "candidate": candidate, "fisher": tests,
         "goals": [vars(g) for g in goal_rows], "il_curve": curve, "rounds": log.get("rounds", {}), "log": log},
        indent=2, default=float))
    printed = [*results_table(summary, list(rows)), "", *goals_table(goal_rows),
               *[f"Fisher {t['compare']} ({t['region']}): p = {t['p']:.3g}" for t in tests],
               f"best measured arm: {chosen}"]
    return chosen, printed


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
