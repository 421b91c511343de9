"""Benchmark statistics: Wilson intervals against known values, cycle time over successes only."""

import math

import pytest

from corft_ros.core.trials.stats import Trial, relative_change, summarize, summarize_all, wilson_interval


@pytest.mark.parametrize(
    ("k", "n", "low", "high"),
    [
        (0, 10, 0.0, 0.2775),  # upper = z^2 / (n + z^2)
        (5, 10, 0.2366, 0.7634),
        (10, 10, 0.7225, 1.0),
        (1, 2, 0.0945, 0.9055),
        (40, 50, 0.6696, 0.8876),
    ],
)
def test_wilson_interval_matches_known_values(k, n, low, high):
    lo, hi = wilson_interval(k, n)
    assert lo == pytest.approx(low, abs=1e-4)
    assert hi == pytest.approx(high, abs=1e-4)


def test_wilson_interval_edge_cases():
    assert wilson_interval(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError):
        wilson_interval(3, 2)


def test_cycle_time_counts_successes_only_and_episode_length_counts_failures_at_the_limit():
    trials = [
        Trial("il", "seen", 0, True, 4.0, 20.0, end_reason="success"),
        Trial("il", "seen", 1, True, 6.0, 20.0, end_reason="success"),
        Trial("il", "seen", 2, False, 20.0, 20.0, end_reason="timeout"),
        Trial("il", "unseen", 3, False, 7.0, 20.0, end_reason="failure_label"),
        Trial("corft", "seen", 0, True, 3.0, 20.0, end_reason="success"),
    ]
    s = summarize(trials, "il", "seen")
    assert (s.trials, s.successes, s.timeouts) == (3, 2, 1)
    assert s.success_rate == pytest.approx(2 / 3)
    assert s.cycle_time_mean_s == pytest.approx(5.0)
    assert s.cycle_time_median_s == pytest.approx(5.0)
    assert s.cycle_time_std_s == pytest.approx(math.sqrt(2.0))
    assert s.episode_length_mean_s == pytest.approx((4 + 6 + 20) / 3)
    unseen = summarize(trials, "il", "unseen")
    assert unseen.successes == 0 and math.isnan(unseen.cycle_time_mean_s)
    assert unseen.episode_length_mean_s == pytest.approx(20.0)  # a failure counts at the limit
    everything = summarize_all(trials)
    assert {(x.arm, x.region) for x in everything} >= {("il", "all"), ("corft", "seen")}
    assert relative_change(3.0, 4.0) == pytest.approx(-0.25)
    assert math.isnan(relative_change(1.0, 0.0))


def test_report_files_have_consistent_counts(tmp_path):
    import json

    from corft_ros.core.trials.report import read_trials_csv, write_report

    rng = __import__("numpy").random.default_rng(0)
    trials = []
    for i in range(12):
        for arm in ("il", "corft"):
            ok = bool(rng.uniform() < (0.5 if arm == "il" else 0.8))
            trials.append(Trial(arm, "seen" if i % 3 else "unseen", i, ok, rng.uniform(3, 8) if ok else 20.0, 20.0,
                                start_x=rng.uniform(0.3, 0.5), start_y=rng.uniform(0, 0.25),
                                end_reason="success" if ok else "timeout"))
    summary = write_report(tmp_path, trials, title="t", command="corft-ros benchmark", compare=("il", "corft"),
                           latency_samples={"il": rng.uniform(0.005, 0.01, 50)},
                           period_error_samples={"il": rng.normal(0, 1e-4, 50)},
                           loop={"il": {"period_error_p99_ms": 0.4}})
    for name in ("report.md", "trials.csv", "summary.json", "success_rate.png", "cycle_time.png",
                 "success_map.png", "loop_latency.png"):
        assert (tmp_path / name).stat().st_size > 0, name
    assert read_trials_csv(tmp_path / "trials.csv") == trials
    on_disk = json.loads((tmp_path / "summary.json").read_text())
    assert on_disk["trials"] == summary["trials"] == len(trials)
    for arm in ("il", "corft"):
        total = next(a for a in on_disk["arms"] if a["arm"] == arm and a["region"] == "all")
        assert total["trials"] == 12
        assert total["successes"] == sum(t.success for t in trials if t.arm == arm)
    assert "seen" in on_disk["comparison"] and "Wilson" in (tmp_path / "report.md").read_text()


def test_a_report_without_plots_keeps_the_last_ones_and_updates_the_tables(tmp_path):
    """During a run the tables are rewritten after every trial and the plots only every few (a redraw costs
    ~0.7 s): the report still shows the last drawn plots, and the counts are current."""
    import json

    from corft_ros.core.trials.report import read_trials_csv, write_report

    trials = [Trial("il", "seen", i, i % 2 == 0, 5.0 if i % 2 == 0 else 20.0, 20.0, start_x=0.4, start_y=0.1,
                    end_reason="success" if i % 2 == 0 else "timeout") for i in range(6)]
    write_report(tmp_path, trials[:4], title="t", command="c")
    drawn = {p.name: p.stat().st_mtime_ns for p in tmp_path.glob("*.png")}
    assert {"success_rate.png", "cycle_time.png", "success_map.png"} <= set(drawn)
    summary = write_report(tmp_path, trials, title="t", command="c", plots=False)
    assert {p.name: p.stat().st_mtime_ns for p in tmp_path.glob("*.png")} == drawn  # not redrawn
    assert set(summary["plots"]) == set(drawn) and "success_rate.png" in (tmp_path / "report.md").read_text()
    assert read_trials_csv(tmp_path / "trials.csv") == trials
    assert json.loads((tmp_path / "summary.json").read_text())["trials"] == 6


def test_mcnemar_exact_matches_the_binomial_test():
    from scipy.stats import binomtest

    from corft_ros.core.trials.stats import mcnemar_exact_p

    for only_a, only_b in [(3, 10), (10, 3), (5, 5), (0, 7), (20, 35), (1, 0)]:
        assert mcnemar_exact_p(only_a, only_b) == pytest.approx(binomtest(min(only_a, only_b), only_a + only_b,
                                                                          0.5).pvalue, rel=1e-12)
    assert mcnemar_exact_p(0, 0) == 1.0


def test_paired_matches_starts_and_counts_discordant_ones():
    from corft_ros.core.trials.stats import paired

    def t(arm, region, seed, success, d=5.0):
        return Trial(arm, region, seed, success, d if success else 20.0, 20.0)

    trials = [t("il", "seen", 0, True, 6.0), t("rl", "seen", 0, True, 4.5),   # both, rl 1.5 s faster
              t("il", "seen", 1, True, 8.0), t("rl", "seen", 1, False),       # only il
              t("il", "seen", 2, False), t("rl", "seen", 2, True, 7.0),       # only rl
              t("il", "seen", 3, False), t("rl", "seen", 3, True, 9.0),       # only rl
              t("il", "unseen", 0, False), t("rl", "unseen", 0, False),       # neither
              t("il", "seen", 9, True)]                                       # no partner: left out
    c = paired(trials, "il", "rl")
    assert (c.pairs, c.both, c.only_a, c.only_b, c.neither) == (5, 1, 1, 2, 1)
    assert c.success_diff == pytest.approx(1 / 5) and c.discordance == pytest.approx(3 / 5)
    assert c.mcnemar_p == pytest.approx(1.0)
    assert c.both_solved == 1 and c.cycle_time_diff_mean_s == pytest.approx(-1.5)
    assert c.cycle_time_rel_change == pytest.approx(4.5 / 6.0 - 1)
    assert paired(trials, "il", "rl", "unseen").pairs == 1


def test_takeovers_split_autonomous_from_assisted_success_and_survive_the_csv(tmp_path):
    from corft_ros.core.trials.report import read_trials_csv, write_report

    xy = {"start_x": 0.4, "start_y": 0.1}
    trials = [Trial("interventions", "seen", 0, True, 6.0, 20.0, end_reason="success", **xy),
              Trial("interventions", "seen", 1, True, 9.0, 20.0, end_reason="success", takeovers=2, **xy),
              Trial("interventions", "seen", 2, False, 20.0, 20.0, end_reason="timeout", takeovers=1, **xy),
              Trial("il", "seen", 0, True, 7.0, 20.0, end_reason="success", **xy)]
    s = summarize(trials, "interventions", "seen")
    assert (s.successes, s.autonomous_successes, s.trials_with_takeover, s.takeovers) == (2, 1, 2, 3)
    write_report(tmp_path, trials, title="t", command="c", plots=False)
    assert read_trials_csv(tmp_path / "trials.csv") == trials
    md = (tmp_path / "report.md").read_text()
    assert "## Takeovers" in md and "| interventions | seen | 3 | 1/3 | 1/3 | 2 | 1.00 |" in md
    (tmp_path / "old.csv").write_text("arm,region,seed,success,duration_s,timeout_s,start_x,start_y,end_reason\n"
                                      "il,seen,0,True,7.0,20.0,nan,nan,success\n")
    assert read_trials_csv(tmp_path / "old.csv")[0].takeovers == 0  # a report from before takeovers reads on
    quiet = tmp_path / "quiet"
    write_report(quiet, trials[3:], title="t", command="c", plots=False)
    assert "## Takeovers" not in (quiet / "report.md").read_text()
