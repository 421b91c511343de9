"""The end-to-end experiment's report: the benchmark summary read against the CO-RFT paper's real-robot numbers.

Pure functions over summary.json (the benchmark's) and the run records of the other stages; `corft-ros experiment`
(corft_ros/cli/experiment.py) runs the stages and writes what these return.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

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
