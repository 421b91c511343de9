"""The flywheel's goals and tables: per arm and region the results, the paired comparisons of two arms on the same
starts (McNemar, paired cycle time), the failure taxonomy, and the goals of issue 27 checked against them. Pure
functions over the benchmark's summary.json; core/trials/experiment.py writes the report from them."""

from __future__ import annotations

import math
from dataclasses import dataclass

MIN_CYCLE_SUCCESSES = 5  # fewer successful trials in an arm: its mean cycle time says nothing


@dataclass
class Goal:
    name: str
    target: str
    measured: str
    met: bool | None  # None: not measurable (e.g. too few starts both arms solved)


def _arm(summary: dict, arm: str, region: str) -> dict | None:
    for row in summary.get("arms", []):
        if row.get("arm") == arm and row.get("region") == region:
            return row
    return None


def _pct(x: float | None, digits: int = 1) -> str:
    return "–" if x is None or not math.isfinite(x) else f"{100 * x:+.{digits}f}%"


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
    lines = ["| goal | target | this run (sim, lockstep) | met |", "|---|---|---|---|"]
    for g in rows:
        met = "n/a" if g.met is None else ("yes" if g.met else "no")
        lines.append(f"| {g.name} | {g.target} | {g.measured} | {met} |")
    return lines


# ------------------------------------------------------------------------------------------ the flywheel's goals

FAILURE_RATE_RATIO = 0.5  # CO-RFT's failure rate at most half of IL's, per region
CYCLE_TIME_CUT = 0.15  # paired cycle time over starts both solved: CO-RFT at least 15% faster than IL
SUCCESS_NON_INFERIORITY = -0.05  # ... with the lower 95% bound of the paired success difference above -5 points
NOISE_FLOOR = 0.02  # same-model discordance in lockstep at most 2% of starts
ALPHA = 0.05
CONTROLS = ("il_bc", "il_fbc")  # the supervised controls: IL + BC on the demos, filtered BC on demos + successes
REPEAT = "il_repeat"


def paired_row(summary: dict, a: str, b: str, region: str = "all") -> dict | None:
    """The paired comparison of arms a and b in `region` from summary.json (either order: the row is returned with
    a as A), or None."""
    for row in summary.get("paired", []):
        if row["region"] != region:
            continue
        if (row["arm_a"], row["arm_b"]) == (a, b):
            return row
        if (row["arm_a"], row["arm_b"]) == (b, a):
            lo, hi = row["success_diff_ci95"]
            clo, chi = row["cycle_time_diff_ci95_s"]
            rel = row["cycle_time_rel_change"]
            return {**row, "arm_a": a, "arm_b": b, "only_a": row["only_b"], "only_b": row["only_a"],
                    "success_diff": -row["success_diff"], "success_diff_ci95": [-hi, -lo],
                    "cycle_time_diff_mean_s": -row["cycle_time_diff_mean_s"], "cycle_time_diff_ci95_s": [-chi, -clo],
                    "cycle_time_rel_change": (1.0 / (1.0 + rel) - 1.0) if math.isfinite(rel) and rel > -1 else rel}
    return None


def flywheel_goals(summary: dict, candidate: str | None) -> list[Goal]:
    """The CO-RFT issue's goals on a lockstep evaluation: failure rate vs IL, the strongest supervised control beaten
    (McNemar, pooled), the paired cycle time, and the evaluation's own noise floor (IL vs its repeat)."""
    out: list[Goal] = []
    rows = arm_rows(summary)
    if candidate and candidate in rows and "il" in rows:
        for region in ("seen", "unseen"):
            il, rl = rows["il"].get(region), rows[candidate].get(region)
            if il and rl:
                f_il, f_rl = 1 - il["success_rate"], 1 - rl["success_rate"]
                out.append(Goal(f"failure rate {candidate} ≤ {FAILURE_RATE_RATIO:g} × IL ({region})",
                                f"≤ {100 * FAILURE_RATE_RATIO * f_il:.1f}%",
                                f"{100 * f_rl:.1f}% vs IL {100 * f_il:.1f}%", f_rl <= FAILURE_RATE_RATIO * f_il))
        controls = [c for c in CONTROLS if c in rows]
        if controls:
            strongest = max(controls, key=lambda c: sum(r["successes"] for r in rows[c].values()
                                                        if r is not rows[c].get("all")))
            row = paired_row(summary, strongest, candidate)
            if row:
                met = row["only_b"] > row["only_a"] and row["mcnemar_p"] < ALPHA
                out.append(Goal(f"{candidate} beats the strongest supervised control ({strongest}), pooled",
                                f"McNemar p < {ALPHA:g}",
                                f"only {candidate} {row['only_b']}, only {strongest} {row['only_a']} of "
                                f"{row['pairs']}; p = {row['mcnemar_p']:.3g}", met))
        row = paired_row(summary, "il", candidate)
        if row:
            rel, lo = row["cycle_time_rel_change"], row["success_diff_ci95"][0]
            few = row["both_solved"] < MIN_CYCLE_SUCCESSES
            out.append(Goal(f"paired cycle time {candidate} vs IL (starts both solved), success not lower",
                            f"≤ -{100 * CYCLE_TIME_CUT:.0f}%, success bound > {100 * SUCCESS_NON_INFERIORITY:.0f} pts",
                            f"{_pct(rel)} over {row['both_solved']} starts; success {100 * row['success_diff']:+.1f} "
                            f"pts (95% CI from {100 * lo:+.1f})",
                            None if few else (math.isfinite(rel) and rel <= -CYCLE_TIME_CUT
                                              and lo > SUCCESS_NON_INFERIORITY)))
    row = paired_row(summary, "il", REPEAT)
    if row:
        out.append(Goal("same-model discordance (IL vs its repeat, lockstep)", f"≤ {100 * NOISE_FLOOR:g}%",
                        f"{100 * row['discordance']:.1f}% ({row['only_a'] + row['only_b']} of {row['pairs']} starts)",
                        row["discordance"] <= NOISE_FLOOR))
    return out


def paired_table(summary: dict, pairs: list[tuple[str, str]]) -> list[str]:
    lines = ["| A | B | region | starts | both | only A | only B | neither | McNemar p | B - A success (95% CI) | "
             "B - A cycle time, both solved |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for a, b in pairs:
        for region in ("seen", "unseen", "all"):
            row = paired_row(summary, a, b, region)
            if row is None:
                continue
            lo, hi = row["success_diff_ci95"]
            lines.append(f"| {a} | {b} | {region} | {row['pairs']} | {row['both']} | {row['only_a']} | "
                         f"{row['only_b']} | {row['neither']} | {row['mcnemar_p']:.3g} | "
                         f"{100 * row['success_diff']:+.1f} ({100 * lo:+.1f} to {100 * hi:+.1f}) pts | "
                         f"{_pct(row['cycle_time_rel_change'])} (n={row['both_solved']}) |")
    return lines


def failure_table(summary: dict) -> list[str]:
    """Why the failed trials failed (lockstep: from the cube's path), per arm and region."""
    failures = summary.get("failures") or {}
    kinds = ("never_lifted", "dropped", "off_target")
    lines = ["| arm | region | failures | never lifted | dropped | carried off target |", "|---|---|---|---|---|---|"]
    for arm, regions in failures.items():
        for region, counts in regions.items():
            lines.append(f"| {arm} | {region} | {sum(counts.values())} | "
                         + " | ".join(str(counts.get(k, 0)) for k in kinds) + " |")
    return lines


# ------------------------------------------------------------------------------------------ the experiment report


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
