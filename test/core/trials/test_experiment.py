"""The experiment report: the lockstep evaluation's arms paired start by start, against the flywheel's goals."""

from __future__ import annotations

import json
import math

from corft_ros.core.trials.goals import flywheel_goals, goals_table, paired_row, results_table
from corft_ros.core.trials.report import paired_comparisons
from corft_ros.core.trials.stats import Trial, summarize_all


def trials(arm: str, region: str, successes: int, n: int, cycle: float) -> list[Trial]:
    return [Trial(arm=arm, region=region, seed=i, success=i < successes, duration_s=cycle if i < successes else 20.0,
                  timeout_s=20.0, start_x=0.4, start_y=0.1, end_reason="success" if i < successes else "timeout")
            for i in range(n)]


def summary(rows: list[Trial]) -> dict:
    return {"arms": [s.as_dict() for s in summarize_all(rows)], "paired": paired_comparisons(rows)}


def test_flywheel_goals_on_paired_starts() -> None:
    # seeds 0..n-1: an arm with k successes solves the first k starts, so each pair's discordant starts are known
    rows = (trials("il", "seen", 60, 100, 9.0) + trials("il", "unseen", 50, 100, 9.5)
            + trials("il_bc", "seen", 62, 100, 9.0) + trials("il_bc", "unseen", 52, 100, 9.5)
            + trials("il_fbc", "seen", 70, 100, 8.5) + trials("il_fbc", "unseen", 60, 100, 9.0)
            + trials("corft_r2", "seen", 85, 100, 7.0) + trials("corft_r2", "unseen", 80, 100, 7.5)
            + trials("il_repeat", "seen", 60, 100, 9.0) + trials("il_repeat", "unseen", 51, 100, 9.5))
    s = summary(rows)
    failure_seen, failure_unseen, control, cycle, noise = flywheel_goals(s, "corft_r2")
    assert failure_seen.met and "15.0% vs IL 40.0%" in failure_seen.measured  # 15 <= 0.5 * 40
    assert failure_unseen.met and "20.0% vs IL 50.0%" in failure_unseen.measured  # 20 <= 0.5 * 50
    assert control.met and "(il_fbc)" in control.name and "only corft_r2 35, only il_fbc 0 of 200" in control.measured
    assert cycle.met and "-21.7%" in cycle.measured  # 7.0/7.5 over 60/50 both-solved vs 9.0/9.5
    assert noise.met is True and "0.5% (1 of 200 starts)" in noise.measured
    table = goals_table([failure_seen, noise])
    assert table[0].startswith("| goal | target |") and table[2].endswith("| yes |")

    weak = summary(trials("il", "seen", 60, 100, 9.0) + trials("il_bc", "seen", 62, 100, 9.0)
                   + trials("corft_r1", "seen", 64, 100, 8.9) + trials("il_repeat", "seen", 55, 100, 9.0))
    failure, control, cycle, noise = flywheel_goals(weak, "corft_r1")
    assert not failure.met and not control.met and "p = 1" not in control.measured
    assert not cycle.met and noise.met is False and "5.0%" in noise.measured


def test_paired_rows_read_in_either_order() -> None:
    s = summary(trials("il", "seen", 3, 10, 9.0) + trials("corft", "seen", 6, 10, 6.0))
    ab, ba = paired_row(s, "il", "corft", "seen"), paired_row(s, "corft", "il", "seen")
    assert (ab["only_a"], ab["only_b"]) == (0, 3) and (ba["only_a"], ba["only_b"]) == (3, 0)
    assert ab["success_diff"] == -ba["success_diff"] == 0.3
    assert math.isclose(ab["cycle_time_rel_change"], 6.0 / 9.0 - 1) and math.isclose(ba["cycle_time_rel_change"],
                                                                                    9.0 / 6.0 - 1)


def test_results_table_rows() -> None:
    s = summary(trials("il", "seen", 4, 10, 10.0) + trials("il", "unseen", 1, 4, 12.0))
    lines = results_table(s, ["il", "missing"])
    assert len(lines) == 2 + 3  # header + seen, unseen, all
    assert "| il | seen | 4/10 (40%) |" in lines[2] and "10.00 / 10.00" in lines[2]
    assert lines[4].startswith("| il | all | 5/14 (36%)")
    assert not math.isnan(float(lines[3].split("|")[-2]))  # episode length counts failures at the limit


def test_the_report_names_the_best_arm_and_tests_the_difference(tmp_path) -> None:
    """experiment.md/json from a finished run: per arm and region the counts and cycle times, the paired McNemar
    tests of CO-RFT against IL and the controls, the failure taxonomy, and the best measured arm (never a weaker one
    because a plan said so; never the repeat arm)."""
    from corft_ros.core.trials.experiment import write_experiment_report
    from corft_ros.core.trials.goals import arm_rows, best_arm

    rows = (trials("il", "seen", 20, 50, 9.0) + trials("il", "unseen", 10, 50, 9.5)
            + trials("il_bc", "seen", 22, 50, 9.0) + trials("il_bc", "unseen", 11, 50, 9.5)
            + trials("corft_r2", "seen", 35, 50, 7.0) + trials("corft_r2", "unseen", 23, 50, 7.5)
            + trials("il_repeat", "seen", 20, 50, 9.0) + trials("il_repeat", "unseen", 10, 50, 9.5))
    (tmp_path / "eval").mkdir()
    s = summary(rows)
    s["failures"] = {"il": {"seen": {"never_lifted": 20, "dropped": 7, "off_target": 3}}}
    (tmp_path / "eval" / "summary.json").write_text(json.dumps(s))
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
    tests = {(t["compare"], t["region"]): t for t in data["paired"]}
    assert tests[("corft_r2 vs il", "seen")]["only_b"] == 15 and tests[("corft_r2 vs il", "seen")]["only_a"] == 0
    assert tests[("corft_r2 vs il", "seen")]["mcnemar_p"] < 0.001
    assert tests[("il_bc vs il", "all")]["only_b"] == 3  # what more supervised steps alone do
    assert tests[("il_repeat vs il", "all")]["only_a"] == tests[("il_repeat vs il", "all")]["only_b"] == 0
    md = (out / "experiment.md").read_text()
    assert "**corft_r2**" in md and "| 4000 | 9/20 | 8.50 |" in md and "| 1 | il | 50 | 21 | 9.10 | 100 (70) |" in md
    assert "| il | seen | 30 | 20 | 7 | 3 |" in md  # the failure taxonomy
    assert (out / "il_curve.png").is_file() and (out / "rounds.png").is_file()
    assert any("best measured arm: corft_r2" in line for line in lines)
    # a weaker CO-RFT is never the default
    worse = summary(trials("il", "seen", 20, 50, 9.0) + trials("corft_r1", "seen", 10, 50, 6.0))
    assert best_arm(arm_rows(worse)) == "il"


def test_each_finished_step_is_saved_at_once_so_a_killed_experiment_keeps_its_wall_times(tmp_path) -> None:
    from corft_ros.cli._experiment_steps import run_step

    log_file = tmp_path / "experiment.json"
    log = {"log_file": str(log_file)}
    run_step("1 help", ["--help"], log, capture=True)
    saved = json.loads(log_file.read_text())
    assert saved["steps"]["1 help"]["wall_s"] > 0
    assert saved["steps"]["1 help"]["command"] == "corft-ros --help"


def test_the_report_says_how_much_neighbouring_il_checkpoints_swing() -> None:
    from corft_ros.core.trials.experiment import curve_swing

    curve = [{"step": 2000 * (i + 1), "successes": n, "trials": 100} for i, n in enumerate((10, 40, 60, 52, 63, 61))]
    assert curve_swing(curve) == ("Neighbouring checkpoints after the first two screens differ by at most 11 points "
                                  "(median 8) on the same 100 screen starts.")
    assert curve_swing(curve[:3]) == ""


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
    from corft_ros.cli._experiment_steps import INCUMBENT
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


def _diag(auc3: float | None, failures: int = 3) -> dict:
    return {"episodes": 9, "successes": 6, "ticks": 900,
            "calibration": {k: {"ticks": 300, "spearman": 0.5, "bias": -0.1, "q_mean": 0.1, "return_mean": 0.2}
                            for k in ("all", "success", "failure")},
            "auc": {t: {"auc": auc3, "successes": 6, "failures": failures, "v_success": 0.3, "v_failure": -0.2}
                    for t in ("1s", "3s", "5s")}}


def test_the_report_splits_corft_into_its_halves_and_shows_the_critic_diagnostics(tmp_path) -> None:
    from corft_ros.core.trials.experiment import write_experiment_report

    rows = (trials("il", "seen", 20, 50, 9.0) + trials("il_fbc", "seen", 24, 50, 8.8)
            + trials("corft_r2_actor", "seen", 27, 50, 8.5) + trials("corft_r2_random", "seen", 26, 50, 8.6)
            + trials("corft_r2", "seen", 33, 50, 7.5) + trials("corft_r2_distill", "seen", 30, 50, 8.0))
    (tmp_path / "eval").mkdir()
    (tmp_path / "eval" / "summary.json").write_text(json.dumps(summary(rows)))
    log = {"il": {"curve": []}, "candidate": "corft_r2",
           "reward": {"chosen": "steps_to_go", "by": "held-out AUC of V(s) at 3s for eventual success",
                      "candidates": {"gamma0.99": {"sets": [], "diagnostics": _diag(0.61), "auc": 0.61},
                                     "steps_to_go": {"sets": ["corft.gamma=1.0"], "diagnostics": _diag(0.74),
                                                     "auc": 0.74}}},
           "rounds": {"1": {"collected_with": "il", "diagnostics": _diag(0.7)},
                      "2": {"collected_with": "corft_r1", "diagnostics": None}}}
    out = tmp_path / "report"
    out.mkdir()
    write_experiment_report(tmp_path, out, log, "make experiment", "pick")
    data = json.loads((out / "experiment.json").read_text())
    assert data["candidate"] == "corft_r2" and data["reward"]["chosen"] == "steps_to_go"
    compares = {t["compare"] for t in data["paired"]}
    assert {"corft_r2 vs corft_r2_actor", "corft_r2 vs corft_r2_random", "corft_r2_actor vs il_fbc",
            "corft_r2 vs il_fbc", "corft_r2 vs il", "corft_r2 vs corft_r2_distill",
            "corft_r2_distill vs il_fbc"} <= compares
    md = (out / "experiment.md").read_text()
    assert "## The critic, on held-out episodes" in md and "**steps_to_go**" in md
    assert "| steps_to_go (corft.gamma=1.0) | 9 (6) | 0.74 / 0.74 / 0.74 |" in md
    assert "| gamma0.99 (defaults) | 9 (6) | 0.61 / 0.61 / 0.61 |" in md
    assert "| CO-RFT round 1 | 9 (6) | 0.70 / 0.70 / 0.70 |" in md and "| CO-RFT round 2 | – |" in md


def test_the_reward_is_chosen_once_by_the_held_out_auc(tmp_path, capsys) -> None:
    """Round 1 trains one critic per candidate reward; the highest held-out AUC at 3 s wins, a tie keeps the
    earlier candidate, an AUC that could not be measured never wins, and the choice is kept for later rounds."""
    import argparse

    from corft_ros.cli._experiment_steps import REWARDS, choose_reward

    runs = tmp_path / "runs"
    aucs = dict(zip(REWARDS, (0.7, 0.7, None), strict=True))
    for name, auc in aucs.items():
        (runs / f"reward_{name}").mkdir(parents=True)
        (runs / f"reward_{name}" / "train.json").write_text(json.dumps({"stages": {"rl": {"diagnostics": _diag(auc)}}}))
    log = {"log_file": str(tmp_path / "experiment.json")}
    args = argparse.Namespace(reward_steps=10)
    assert choose_reward(args, tmp_path, tmp_path / "il.pt", runs, [], log) == "gamma0.99"
    assert log["reward"]["candidates"]["steps_to_go"]["auc"] is None
    assert "reward: gamma0.99" in capsys.readouterr().out
    (runs / "reward_steps_to_go" / "train.json").write_text(json.dumps({"stages": {"rl": {"diagnostics":
                                                                                          _diag(0.9)}}}))
    assert choose_reward(args, tmp_path, tmp_path / "il.pt", runs, [], log) == "gamma0.99"  # chosen once
    del log["reward"]
    assert choose_reward(args, tmp_path, tmp_path / "il.pt", runs, [], log) == "steps_to_go"
    assert json.loads((tmp_path / "experiment.json").read_text())["reward"]["chosen"] == "steps_to_go"


def test_the_report_shows_the_intervention_rounds_and_pairs_their_arm(tmp_path) -> None:
    from corft_ros.core.trials.experiment import write_experiment_report

    rows = (trials("il", "seen", 20, 50, 9.0) + trials("corft_r2", "seen", 25, 50, 8.0)
            + trials("interventions", "seen", 40, 50, 8.5))
    (tmp_path / "eval").mkdir()
    (tmp_path / "eval" / "summary.json").write_text(json.dumps(summary(rows)))
    log = {"il": {"curve": []}, "candidate": "corft_r2",
           "intervention_rounds": {"1": {"collected_with": "il", "trials": 50, "successes": 45,
                                         "autonomous_successes": 20, "trials_with_takeover": 30,
                                         "takeovers_per_trial": 1.4},
                                   "2": {"collected_with": "interventions_r1", "trials": 50, "successes": 47,
                                         "autonomous_successes": 31, "trials_with_takeover": 18,
                                         "takeovers_per_trial": 0.62}}}
    out = tmp_path / "report"
    out.mkdir()
    write_experiment_report(tmp_path, out, log, "make experiment --interventions", "pick")
    md = (out / "experiment.md").read_text()
    assert "## With the sim's intervener" in md and "| 2 | interventions_r1 | 50 | 47 | 31 | 18 | 0.62 |" in md
    data = json.loads((out / "experiment.json").read_text())
    assert {"interventions vs il", "interventions vs corft_r2"} <= {t["compare"] for t in data["paired"]}
    assert data["intervention_rounds"]["1"]["takeovers_per_trial"] == 1.4
