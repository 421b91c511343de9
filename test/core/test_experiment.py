"""The experiment report: the benchmark summary read against the CO-RFT paper's numbers."""

from __future__ import annotations

import json
import math

from corft_ros.core.trials.experiment import goals, goals_table, results_table
from corft_ros.core.trials.stats import Trial, summarize_all


def trials(arm: str, region: str, successes: int, n: int, cycle: float) -> list[Trial]:
    return [Trial(arm=arm, region=region, seed=i, success=i < successes, duration_s=cycle if i < successes else 20.0,
                  timeout_s=20.0, start_x=0.4, start_y=0.1, end_reason="success" if i < successes else "timeout")
            for i in range(n)]


def summary(rows: list[Trial]) -> dict:
    return {"arms": [s.as_dict() for s in summarize_all(rows)]}


def test_goals_against_the_paper_numbers() -> None:
    s = summary(trials("il", "seen", 8, 20, 10.0) + trials("corft", "seen", 14, 20, 7.0)
                + trials("il", "unseen", 2, 10, 10.0) + trials("corft", "unseen", 5, 10, 7.5))
    gain, cycle, unseen = goals(s, "il", "corft", region="seen")
    assert gain.met and "+75.0%" in gain.measured and "40% → 70%" in gain.measured
    assert cycle.met and "-30.0%" in cycle.measured  # 10 s → 7 s is 30% less, the paper's is 22.3%
    assert unseen.met and "50.0% (5/10" in unseen.measured
    table = goals_table([gain, cycle, unseen])
    assert table[0].startswith("| goal |") and all(row.endswith("| yes |") for row in table[2:])

    short = summary(trials("il", "seen", 5, 10, 10.0) + trials("corft", "seen", 6, 10, 9.0)
                    + trials("corft", "unseen", 4, 10, 9.0))
    gain, cycle, unseen = goals(short, "il", "corft")
    assert not gain.met and "+20.0%" in gain.measured
    assert not cycle.met and "-10.0%" in cycle.measured
    assert not unseen.met  # 40% < 44.3%

    one = summary(trials("il", "seen", 13, 50, 9.0) + trials("corft", "seen", 1, 50, 4.0))
    gain, cycle = goals(one, "il", "corft")
    assert cycle.met is None and "over 13 → 4.00 s over 1 successes" in cycle.measured
    assert "too few to call" in cycle.measured and "| n/a |" in goals_table([cycle])[-1]


def test_goals_when_the_baseline_never_succeeds() -> None:
    s = summary(trials("il", "seen", 0, 10, 0.0) + trials("corft", "seen", 3, 10, 8.0))
    gain, cycle = goals(s, "il", "corft")
    assert gain.met is True and "never succeeded" in gain.measured
    assert cycle.met is None and "not measurable" in cycle.measured
    nothing = summary(trials("il", "seen", 0, 10, 0.0) + trials("corft", "seen", 0, 10, 0.0))
    gain, cycle = goals(nothing, "il", "corft")
    assert gain.met is None and cycle.met is None
    assert "| n/a |" in goals_table([gain])[-1]


def test_results_table_rows() -> None:
    s = summary(trials("il", "seen", 4, 10, 10.0) + trials("il", "unseen", 1, 4, 12.0))
    lines = results_table(s, ["il", "missing"])
    assert len(lines) == 2 + 3  # header + seen, unseen, all
    assert "| il | seen | 4/10 (40%) |" in lines[2] and "10.00 / 10.00" in lines[2]
    assert lines[4].startswith("| il | all | 5/14 (36%)")
    assert not math.isnan(float(lines[3].split("|")[-2]))  # episode length counts failures at the limit


def test_the_report_names_the_best_arm_and_tests_the_difference(tmp_path) -> None:
    """experiment.md/json from a finished run: per arm and region the counts and cycle times, Fisher's p for CO-RFT
    against IL and the control arm, and the best measured arm (never a weaker one because a plan said so)."""
    import json

    from corft_ros.core.trials.experiment import best_arm, fisher_p, write_experiment_report

    rows = (trials("il", "seen", 20, 50, 9.0) + trials("il", "unseen", 10, 50, 9.5)
            + trials("il_bc", "seen", 22, 50, 9.0) + trials("il_bc", "unseen", 11, 50, 9.5)
            + trials("corft_r2", "seen", 35, 50, 7.0) + trials("corft_r2", "unseen", 23, 50, 7.5))
    (tmp_path / "eval").mkdir()
    (tmp_path / "eval" / "summary.json").write_text(json.dumps(summary(rows)))
    log = {"il": {"curve": [{"step": 2000, "successes": 4, "trials": 20, "cycle_time_mean_s": 9.0},
                            {"step": 4000, "successes": 9, "trials": 20, "cycle_time_mean_s": 8.5}],
                  "chosen_step": 4000},
           "rounds": {"1": {"collected_with": "il", "trials": 50, "successes": 21, "cycle_time_mean_s": 9.1,
                            "dataset": {"episodes": 100, "successes": 70}}},
           "steps": {"1 record demos": {"command": "corft-ros record", "wall_s": 240.0}}}
    out = tmp_path / "report"
    out.mkdir()
    chosen, lines = write_experiment_report(tmp_path, out, log, "make experiment", "pick up the cube")
    assert chosen == "corft_r2"
    data = json.loads((out / "experiment.json").read_text())
    assert data["arms"]["corft_r2"]["seen"]["successes"] == 35 and data["arms"]["il"]["unseen"]["trials"] == 50
    assert data["arms"]["il"]["seen"]["cycle_time_mean_s"] == 9.0 and data["default_model"] == "corft_r2"
    p = {(t["compare"], t["region"]): t["p"] for t in data["fisher"]}
    assert p[("corft_r2 vs il", "seen")] == fisher_p(35, 50, 20, 50) < 0.01
    assert p[("il_bc vs il", "seen")] == fisher_p(22, 50, 20, 50)  # what more supervised steps alone do
    md = (out / "experiment.md").read_text()
    assert "**corft_r2**" in md and "| 4000 | 9/20 | 8.50 |" in md and "| 1 | il | 50 | 21 | 9.10 | 100 (70) |" in md
    assert (out / "il_curve.png").is_file() and (out / "rounds.png").is_file()
    assert any("best measured arm: corft_r2" in line for line in lines)
    # a weaker CO-RFT is never the default
    worse = summary(trials("il", "seen", 20, 50, 9.0) + trials("corft_r1", "seen", 10, 50, 6.0))
    from corft_ros.core.trials.experiment import arm_rows

    assert best_arm(arm_rows(worse)) == "il"


def test_each_finished_step_is_saved_at_once_so_a_killed_experiment_keeps_its_wall_times(tmp_path) -> None:
    from corft_ros.cli.experiment import _run

    log_file = tmp_path / "experiment.json"
    log = {"log_file": str(log_file)}
    _run("1 help", ["--help"], log, capture=True)
    saved = json.loads(log_file.read_text())
    assert saved["steps"]["1 help"]["wall_s"] > 0
    assert saved["steps"]["1 help"]["command"] == "corft-ros --help"


def test_il_trains_until_its_screen_stops_improving_and_the_report_says_which() -> None:
    from corft_ros.core.trials.experiment import _curve_heading, il_stopped_improving

    def curve(*successes: int) -> list[dict]:
        return [{"step": 2000 * (i + 1), "successes": n} for i, n in enumerate(successes)]

    assert not il_stopped_improving(curve(1, 4, 6, 7), 2)  # still rising
    assert not il_stopped_improving(curve(1, 4, 3), 2)  # one screen without a new best is not yet a plateau
    assert il_stopped_improving(curve(1, 4, 3, 4), 2)  # a tie is no improvement
    assert not il_stopped_improving(curve(1, 4, 3, 5), 2)
    assert il_stopped_improving(curve(1, 4, 3), 1) and not il_stopped_improving(curve(4), 1)
    assert "still improving" in _curve_heading(curve(1, 4, 6, 7), 8000)
    assert "stopped improving" in _curve_heading(curve(1, 4, 3, 4), 4000, 2)
    assert "reached `--il-steps`" in _curve_heading(curve(1, 4, 3), 4000, 2)


def test_the_model_bundled_before_the_run_is_an_arm_and_stays_when_it_measures_best(tmp_path) -> None:
    """`make experiment` evaluates models/default as it was ('bundled') beside the new arms on the same start
    positions: when it beats them it stays, so a weaker arm never replaces it."""
    from corft_ros.cli.experiment import INCUMBENT
    from corft_ros.core.trials.experiment import write_experiment_report

    rows = (trials("il", "seen", 15, 50, 9.0) + trials("il", "unseen", 17, 50, 9.5)
            + trials("corft_r2", "seen", 14, 50, 8.0) + trials("corft_r2", "unseen", 18, 50, 8.5)
            + trials(INCUMBENT, "seen", 31, 50, 9.4) + trials(INCUMBENT, "unseen", 38, 50, 10.0))
    (tmp_path / "eval").mkdir()
    (tmp_path / "eval" / "summary.json").write_text(json.dumps(summary(rows)))
    out = tmp_path / "report"
    out.mkdir()
    chosen, _ = write_experiment_report(tmp_path, out, {"il": {"curve": []}}, "make experiment", "pick")
    assert chosen == INCUMBENT
    md = (out / "experiment.md").read_text()
    assert f"**{INCUMBENT}**" in md and "bundled before this run, kept" in md
    assert json.loads((out / "experiment.json").read_text())["candidate"] == "corft_r2"
