"""The benchmark: schedule (interleaved, paired, resumable), bad input, and a short real run (sim + tiny untrained
model over DDS) whose report files agree with each other and with the plan."""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

import pytest
import yaml
from ros_harness import wait_until

from corft_ros.cli import main
from corft_ros.core.paths import config_path
from corft_ros.core.trials.stats import Trial
from corft_ros.core.trials.trials import arm_names, in_plan, loop_summary, remaining, schedule


def test_schedule_interleaves_arms_rotates_order_and_pairs_seeds():
    plan = schedule(["a", "b", "op"], ["seen", "unseen"], 4, first_seed=10)
    assert len(plan) == 3 * 2 * 4
    assert [s.index for s in plan] == list(range(len(plan)))
    # every arm gets exactly the same (region, seed) starts: paired comparisons
    starts = {arm: sorted((s.region, s.seed) for s in plan if s.arm == arm) for arm in ("a", "b", "op")}
    assert starts["a"] == starts["b"] == starts["op"]
    assert sorted({s.seed for s in plan}) == [10, 11, 12, 13]
    # interleaved: each consecutive block of 3 holds every arm once, same region and seed
    blocks = [plan[i:i + 3] for i in range(0, len(plan), 3)]
    for block in blocks:
        assert sorted(s.arm for s in block) == ["a", "b", "op"]
        assert len({(s.region, s.seed) for s in block}) == 1
    # the order rotates from block to block, so each arm goes first equally often
    firsts = Counter(block[0].arm for block in blocks)
    assert set(firsts) == {"a", "b", "op"} and max(firsts.values()) - min(firsts.values()) <= 1
    assert [b[0].arm for b in blocks[:3]] == ["a", "b", "op"]
    # rounds: all regions of round r come before round r + 1
    assert [s.round for s in plan] == sorted(s.round for s in plan)


def test_schedule_resumes_where_it_stopped_and_rejects_bad_input():
    plan = schedule(["a", "b"], ["seen"], 3)
    done = [Trial(s.arm, s.region, s.seed, True, 1.0, 5.0, end_reason="success") for s in plan[:4]]
    stray = Trial("zzz", "seen", 0, True, 1.0, 5.0)
    assert remaining(plan, done + [stray]) == plan[4:]
    assert in_plan(plan, [stray, *reversed(done)]) == done  # plan order, foreign rows dropped
    with pytest.raises(ValueError, match="unique"):
        schedule(["a", "a"], ["seen"], 1)
    with pytest.raises(ValueError, match=">= 1"):
        schedule(["a"], ["seen"], 0)
    assert arm_names(["models/il", "models/corft"], ["open_loop"]) == [
        ("il", "models/il", "open_loop"), ("corft", "models/corft", "open_loop")]
    assert [n for n, _, _ in arm_names(["x/m", "y/m"], ["open_loop", "latest"])] == [
        "x/m:open_loop", "x/m:latest", "y/m:open_loop", "y/m:latest"]


def test_loop_summary_medians_worst_cases_and_totals():
    records = [
        {"rate_hz": 99.0, "period_error_p50_ms": 0.1, "period_error_p99_ms": 0.5, "underruns": 2.0,
         "max_switch_jump": 0.01, "latency_p50_ms": 1.0, "latency_p95_ms": 2.0, "latency_max_ms": 3.0},
        {"rate_hz": 101.0, "period_error_p50_ms": 0.3, "period_error_p99_ms": 0.9, "underruns": 0.0,
         "max_switch_jump": 0.03, "latency_p50_ms": 1.2, "latency_p95_ms": 2.5, "latency_max_ms": float("nan")},
    ]
    s = loop_summary(records)
    assert s["rate_hz"] == pytest.approx(100.0)
    assert s["period_error_p99_ms_worst_trial"] == pytest.approx(0.9)
    assert s["underruns_total"] == 2.0 and s["underruns_per_trial"] == 1.0
    assert s["max_switch_jump_rad"] == pytest.approx(0.03)
    assert s["latency_max_ms"] == pytest.approx(3.0)  # NaN skipped


def test_bad_model_path_and_foreign_joints_are_one_line_errors(tmp_path, capsys):
    assert main(["benchmark", "--models", str(tmp_path / "nope"), "--output", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "no model at" in err and "nope" in err
    assert not (tmp_path / "o").exists()  # nothing started

    robot = yaml.safe_load(config_path("robot").read_text())
    robot["robot"]["joints"][0]["name"] = "base_yaw_joint"
    (tmp_path / "other_robot.yaml").write_text(yaml.safe_dump(robot))
    assert main(["export", "--init", "--name", "other", "--models-dir", str(tmp_path), "--robot-config",
                 str(tmp_path / "other_robot.yaml"), "--set", "d_model=32", "--set", "encoder_layers=1",
                 "--set", "decoder_layers=1"]) == 0
    capsys.readouterr()
    assert main(["benchmark", "--models", str(tmp_path / "other"), "--output", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "does not fit robot" in err and "base_yaw_joint" in err

    assert main(["benchmark", "--operator", "--regions", "moon"]) == 2
    assert "unknown region 'moon'" in capsys.readouterr().err


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    models = tmp_path_factory.mktemp("models")
    assert main(["export", "--init", "--name", "tiny", "--models-dir", str(models), "--set", "d_model=32",
                 "--set", "encoder_layers=1", "--set", "decoder_layers=1"]) == 0
    return models / "tiny"


def test_short_benchmark_run_writes_consistent_report_files(tiny_model, tmp_path, capsys):
    out = tmp_path / "bench"
    rc = main(["benchmark", "--models", str(tiny_model), "--trials", "2", "--timeout", "2.5",
               "--realtime", "false", "--output", str(out)])
    printed = capsys.readouterr().out
    assert rc == 0, printed
    for name in ("report.md", "trials.csv", "summary.json", "success_rate.png", "cycle_time.png",
                 "success_map.png", "loop_latency.png"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    rows = list(csv.DictReader((out / "trials.csv").read_text().splitlines()))
    summary = json.loads((out / "summary.json").read_text())
    plan = schedule(["tiny"], ["seen"], 2)
    assert len(rows) == summary["trials"] == summary["plan_trials"] == summary["completed_trials"] == len(plan)
    by_region = {a["region"]: a for a in summary["arms"] if a["arm"] == "tiny"}
    assert by_region["all"]["trials"] == by_region["seen"]["trials"] == len(rows)
    assert by_region["all"]["successes"] == sum(r["success"] == "True" for r in rows)
    assert by_region["all"]["timeouts"] == sum(r["end_reason"] == "timeout" for r in rows)
    assert [(r["arm"], r["region"], int(r["seed"])) for r in rows] == [s.key for s in plan]
    for r in rows:  # the sim's start positions and sim-time durations were recorded
        assert 0.3 < float(r["start_x"]) < 0.55 and 0.0 <= float(r["start_y"]) <= 0.26
        assert r["end_reason"] in ("success", "timeout")
        assert 0 < float(r["duration_s"]) <= 2.5 + 0.05
    assert rows[0]["start_x"] != rows[1]["start_x"]  # seeds 0 and 1: different starts
    assert len(summary["trial_loop"]) == len(rows)
    loop = summary["loop"]["tiny"]
    assert loop["rate_hz"] > 0 and loop["inferences_total"] > 0  # from the executor's and the policy's /diagnostics
    report = (out / "report.md").read_text()
    assert "Cycle time =" in report and "| tiny | all | 2 |" in report
    # one logged episode per trial, labelled and stopped
    episodes = sorted(p for p in (out / "episodes").iterdir() if p.is_dir())
    assert len(episodes) == len(rows)
    assert "success" in printed and "report:" in printed and str(out / "report.md") in printed

    # a finished run resumes to nothing: no new trials, same files
    assert main(["benchmark", "--models", str(tiny_model), "--trials", "2", "--timeout", "2.5",
                 "--realtime", "false", "--output", str(out)]) == 0
    assert "all 2 planned trials are done" in capsys.readouterr().out
    assert len(list(csv.DictReader((out / "trials.csv").read_text().splitlines()))) == len(rows)


def test_real_arm_trial_ends_on_the_operators_label_and_a_silent_sim_is_one_line(ros, tmp_path):
    import threading
    import time

    from rclpy.parameter import Parameter
    from std_srvs.srv import SetBool, Trigger

    from corft_ros.core.episodes import load_episode_metadata
    from corft_ros.nodes.benchmark import BenchmarkNode
    from corft_ros.nodes.episode_logger import EpisodeLoggerNode

    logger = ros.add(EpisodeLoggerNode(context=ros.context, parameter_overrides=[
        Parameter("output_dir", value=str(tmp_path)), Parameter("topics", value=[""]),
        Parameter("optional_topics", value=[""])]))
    common = [Parameter("autostart", value=False), Parameter("service_timeout_s", value=2.0),
              Parameter("settle_s", value=0.0)]
    bench = ros.add(BenchmarkNode(context=ros.context, parameter_overrides=[
        *common, Parameter("sim", value=False), Parameter("timeout_s", value=30.0)]))
    spec = schedule(["il"], ["seen"], 1)[0]
    result = {}
    worker = threading.Thread(target=lambda: result.update(outcome=bench.run_trial(spec)))
    worker.start()
    deadline = time.monotonic() + 15
    while not ros.call(Trigger, "/benchmark/next", Trigger.Request()).success:  # "the object is in place"
        assert time.monotonic() < deadline, "the benchmark never asked for a reset"
        time.sleep(0.1)
    while not ros.call(SetBool, "/benchmark/label", SetBool.Request(data=True)).success:  # the operator's label
        assert time.monotonic() < deadline, "the trial never started"
        time.sleep(0.1)
    worker.join(timeout=15)
    outcome = result["outcome"]
    assert outcome.error == "" and outcome.trial is not None
    assert outcome.trial.success and outcome.trial.end_reason == "success" and outcome.trial.duration_s < 30
    meta = load_episode_metadata(outcome.episode)
    assert meta["success"] is True and meta["status"] == "stopped"
    # the operator quits at the next reset: nothing counted, the run is told to stop
    worker = threading.Thread(target=lambda: result.update(outcome=bench.run_trial(spec)))
    worker.start()
    time.sleep(0.5)
    assert ros.call(Trigger, "/benchmark/quit", Trigger.Request()).success
    worker.join(timeout=15)
    assert result["outcome"].quit and result["outcome"].trial is None
    ros.remove(bench)
    ros.remove(logger)

    silent = ros.add(BenchmarkNode(context=ros.context, parameter_overrides=[*common, Parameter("sim", value=True)]))
    outcome = silent.run_trial(spec)  # no sim at all: one line naming what is missing, nothing counted
    assert outcome.trial is None and not outcome.quit
    assert "not available" in outcome.error and "\n" not in outcome.error
    ros.remove(silent)


def test_bad_benchmark_parameters_refuse_to_start(ros):
    from rclpy.parameter import Parameter

    from corft_ros.core.robot import ConfigError
    from corft_ros.nodes.benchmark import BenchmarkNode

    for name, value in (("trials", 0), ("regions", ["moon"]), ("timeout_s", 0.0), ("max_errors", 0)):
        with pytest.raises(ConfigError, match=name):
            BenchmarkNode(context=ros.context, parameter_overrides=[Parameter(name, value=value),
                                                                    Parameter("autostart", value=False)])


def test_a_trial_counts_the_takeovers_during_it(ros, tmp_path):
    """The benchmark node counts the executor's takeovers (latched corft/intervention) while a trial runs: the
    trial reports them, so the report can tell autonomous from assisted success."""
    import threading
    import time

    from rclpy.parameter import Parameter
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    from std_msgs.msg import Bool
    from std_srvs.srv import SetBool, Trigger

    from corft_ros.nodes.benchmark import BenchmarkNode
    from corft_ros.nodes.episode_logger import EpisodeLoggerNode

    latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    state = ros.publisher(Bool, "/corft/intervention", latched)
    state.publish(Bool(data=False))
    logger = ros.add(EpisodeLoggerNode(context=ros.context, parameter_overrides=[
        Parameter("output_dir", value=str(tmp_path)), Parameter("topics", value=[""]),
        Parameter("optional_topics", value=[""])]))
    bench = ros.add(BenchmarkNode(context=ros.context, parameter_overrides=[
        Parameter("autostart", value=False), Parameter("service_timeout_s", value=2.0),
        Parameter("settle_s", value=0.0), Parameter("sim", value=False), Parameter("timeout_s", value=30.0)]))
    try:
        result = {}
        worker = threading.Thread(target=lambda: result.update(outcome=bench.run_trial(schedule(["x"], ["seen"],
                                                                                                1)[0])))
        worker.start()
        deadline = time.monotonic() + 15
        while not ros.call(Trigger, "/benchmark/next", Trigger.Request()).success:
            assert time.monotonic() < deadline, "the benchmark never asked for a reset"
            time.sleep(0.1)
        wait_until(lambda: bench._armed, what="the trial to start")
        for value in (True, False, True, False):
            state.publish(Bool(data=value))
            wait_until(lambda v=value: bench._intervening is v, what=f"intervention {value}")
        assert ros.call(SetBool, "/benchmark/label", SetBool.Request(data=True)).success
        worker.join(timeout=15)
        assert result["outcome"].trial.takeovers == 2 and result["outcome"].trial.success
    finally:
        ros.remove(bench)
        ros.remove(logger)
