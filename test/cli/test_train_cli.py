"""End to end on small real MCAP bags: `corft-ros train --stage all` runs both stages and exports a policy that
the runtimes and the policy node load; stage rl from a checkpoint; CLI errors; the trainer node over DDS."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.parameter import Parameter
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image, JointState
from trajectory_msgs.msg import JointTrajectory

from corft_ros.core.dataset import synthetic
from corft_ros.core.dataset.config import DatasetConfig
from corft_ros.core.dataset.load import load_episodes
from corft_ros.core.policy.backends import load_runtime
from corft_ros.core.robot import ConfigError, load_robot_config
from corft_ros.nodes.policy import PolicyNode
from corft_ros.nodes.trainer import TrainerNode

ROBOT = load_robot_config()
TINY = {"d_model": 32, "heads": 2, "ff_dim": 64, "encoder_layers": 1, "decoder_layers": 1, "cnn_channels": [8, 16],
        "chunk_size": 4}
INSTRUCTION = "move to the red square"


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("train_cli")
    synthetic.write_dataset(root / "eps", ROBOT, 4, image_hw=(24, 32), duration_s=1.0)
    return root


def corft(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    sets = [f"--set=policy.{k}={json.dumps(v)}" for k, v in TINY.items()]
    cmd = [sys.executable, "-m", "corft_ros.cli", "train", *args, *sets, "--set=threads=1", "--set=batch_size=8",
           "--set=corft.actor_warmup_steps=0",
           "--set=dataset.image_size=[32, 32]", "--no-progress"]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=240, cwd=cwd, env=env)


@pytest.fixture(scope="module")
def trained(work) -> Path:
    proc = corft("--bags", str(work / "eps"), "--stage", "all", "--steps", "3", "--output", str(work / "run"),
                 "--models-dir", str(work / "models"), "--name", "tiny", "--cache", str(work / "cache"), cwd=work)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().splitlines()[-1] == str(work / "models" / "tiny")
    return work


def test_train_all_runs_both_stages_and_exports(trained):
    summary = json.loads((trained / "run" / "train.json").read_text())
    assert summary["stages"]["il"]["steps"] == 3 and summary["stages"]["rl"]["steps"] == 3
    assert summary["dataset"]["episodes"] == 4 and summary["dataset"]["successes"] == 3
    for key in ("rl/td_loss", "rl/conservative_gap", "rl/q_data", "rl/critic_loss"):
        assert np.isfinite(summary["stages"]["rl"]["final"][key])
    assert "rl/actor_loss" not in summary["stages"]["rl"]["final"]  # extraction none (the default): IL's actor kept
    diag = summary["stages"]["rl"]["diagnostics"]  # one of the 3 successes held out; the lone failure is trained on
    assert diag["episodes"] == 1 and diag["successes"] == 1 and diag["ticks"] > 0
    assert diag["calibration"]["success"]["spearman"] is not None and diag["auc"]["1s"]["failures"] == 0
    ckpts = {p.name for p in (trained / "run" / "checkpoints").iterdir()}
    assert {"il_0000003.pt", "rl_0000003.pt", "latest.pt", "final.pt"} <= ckpts
    assert list((trained / "run" / "tensorboard").glob("events.out.tfevents.*"))
    model = trained / "models" / "tiny"
    assert {"actor.onnx", "critic.onnx", "weights.safetensors", "policy.yaml"} <= {p.name for p in model.iterdir()}


def test_exported_policy_loads_in_both_runtimes(trained):
    cfg = DatasetConfig(image_size=(32, 32), cache_dir=str(trained / "cache"))
    ep = load_episodes(trained / "eps", ROBOT, cfg, log=lambda m: None).episodes[0]
    images = {c: np.asarray(ep.images[c][5]) for c in ("front", "wrist")}
    onnx = load_runtime(trained / "models" / "tiny", "onnx", threads=1, allow_encoder=False)
    torch_rt = load_runtime(trained / "models" / "tiny", "torch", threads=1, allow_encoder=False)
    a = onnx.predict(images, ep.state[5], INSTRUCTION)
    b = torch_rt.predict(images, ep.state[5], INSTRUCTION)
    assert a.shape == (4, ROBOT.dof)
    np.testing.assert_allclose(a, b, atol=1e-4)


def test_policy_node_runs_the_exported_model(trained, ros):
    tag = "traincli"
    chunks = ros.subscribe(JointTrajectory, f"/{tag}/action_chunk")
    node = ros.add(PolicyNode(
        context=ros.context, cli_args=["--ros-args", "-r", f"__node:=policy_{tag}"],
        parameter_overrides=[Parameter(k, value=v) for k, v in {
            "model_path": str(trained / "models" / "tiny"), "rate_hz": 10.0, "threads": 1,
            "instruction": INSTRUCTION, "allow_encoder": False, "max_observation_age": 60.0,
            "camera_topic_format": f"/{tag}/camera/{{name}}/image_raw", "joint_states_topic": f"/{tag}/joint_states",
            "instruction_topic": f"/{tag}/instruction", "chunk_topic": f"/{tag}/action_chunk",
        }.items()],
    ))
    try:
        cams = {c: ros.publisher(Image, f"/{tag}/camera/{c}/image_raw", qos_profile_sensor_data)
                for c in ("front", "wrist")}
        joints = ros.publisher(JointState, f"/{tag}/joint_states")
        for pub in [*cams.values(), joints]:
            ros.wait_for_subscribers(pub)
        stamp = node.get_clock().now().to_msg()
        for pub in cams.values():
            msg = Image(height=24, width=32, encoding="rgb8", step=96,
                        data=np.full(24 * 32 * 3, 80, np.uint8).tobytes())
            msg.header.stamp = stamp
            pub.publish(msg)
        js = JointState(name=list(ROBOT.joint_names), position=[float(v) for v in ROBOT.home_array])
        js.header.stamp = stamp
        joints.publish(js)
        got = chunks.wait(lambda m: len(m) >= 1, timeout=20.0)[0]
        assert list(got.joint_names) == ROBOT.joint_names
        assert len(got.points) == 4
        assert all(np.isfinite(p.positions).all() for p in got.points)
    finally:
        ros.remove(node)


def test_stage_rl_from_a_checkpoint_and_cli_errors(trained):
    work = trained
    proc = corft("--bags", str(work / "eps"), "--stage", "rl", "--steps", "2", "--output", str(work / "rl_only"),
                 "--init", str(work / "run" / "checkpoints" / "il_0000003.pt"), "--no-export",
                 "--cache", str(work / "cache"), cwd=work)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((work / "rl_only" / "train.json").read_text())
    assert list(summary["stages"]) == ["rl"] and summary["stages"]["rl"]["steps"] == 2

    # the divergence guard: with rewards of 1e-6 no value can exceed 5e-3, far below a fresh critic's outputs
    proc = corft("--bags", str(work / "eps"), "--stage", "rl", "--steps", "2", "--output", str(work / "diverge"),
                 "--init", str(work / "run" / "checkpoints" / "il_0000003.pt"), "--no-export",
                 "--set=rewards.step_cost=1e-6", "--set=rewards.success_reward=1e-6",
                 "--set=rewards.failure_reward=-1e-6", "--cache", str(work / "cache"),
                 cwd=work)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1].startswith("error: step 0: Q diverged: mean |Q|")

    # stage rl with nothing to start from
    proc = corft("--bags", str(work / "eps"), "--stage", "rl", "--output", str(work / "nothing"), "--no-export",
                 cwd=work)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("error: stage 'rl' starts from an IL policy")

    # only bad bags: one line per bag, then a one-line failure
    bad = work / "bad"
    synthetic.write_episode(bad / "unlabelled", ROBOT, synthetic.SyntheticEpisode(success=None, duration_s=0.5))
    proc = corft("--bags", str(bad), "--output", str(work / "bad_run"), "--no-export", "--cache", str(work / "cache"),
                 cwd=work)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert any("unlabelled/bag: episode has no success label" in line for line in lines)
    assert lines[-1].startswith("error:") and "no usable episodes" in lines[-1]

    # --strict: the first bad bag stops the job
    synthetic.write_episode(bad / "good", ROBOT, synthetic.SyntheticEpisode(image_hw=(24, 32), duration_s=1.0))
    proc = corft("--bags", str(bad), "--output", str(work / "strict_run"), "--no-export", "--strict", "--steps", "1",
                 "--cache", str(work / "cache"), cwd=work)
    assert proc.returncode == 1 and "unlabelled" in proc.stderr.strip().splitlines()[-1]


def test_config_train_yaml_sets_only_trainer_parameters_and_arguments_reach_the_node():
    from corft_ros.cli.train import NODE_ONLY, load_params
    from corft_ros.core.graph import load_graph
    from corft_ros.core.node_params.trainer import default_parameters

    yaml_params = load_params("")  # only what differs from the declared defaults (test_node_params.py)
    assert set(yaml_params) <= set(default_parameters()) | set(NODE_ONLY)
    # launch arguments land in the node's parameters (launch_ros and `corft-ros launch` share this)
    node = load_graph("train", {"bags": "/data/eps", "steps": "7"}).node("trainer")
    assert node.executable == "trainer" and node.parameters["bags"] == "/data/eps" and node.parameters["steps"] == 7


def test_trainer_node_trains_from_parameters_and_reports_on_diagnostics(trained, ros, tmp_path):
    torch.set_num_threads(1)
    with pytest.raises(ConfigError, match="stage"):
        TrainerNode(context=ros.context, parameter_overrides=[Parameter("stage", value="bogus")])
    params = {
        "bags": str(trained / "eps"), "steps": 2, "shutdown_when_done": False, "export": False, "progress": False,
        "output": str(tmp_path / "node_run"), "dataset.cache_dir": str(trained / "cache"),
        "dataset.image_size": [32, 32], "batch_size": 8, "log_every": 1, "corft.actor_warmup_steps": 0,
        **{f"policy.{k}": v for k, v in TINY.items()},
    }
    diagnostics = ros.subscribe(DiagnosticArray, "/diagnostics")
    node = ros.add(TrainerNode(context=ros.context, cli_args=["--ros-args", "-r", "__node:=trainer_test"],
                               parameter_overrides=[Parameter(k, value=v) for k, v in params.items()]))
    try:
        assert node.finished.wait(120), "the training job did not end"
        assert node.state == "done", node.error

        def done(messages):
            return any(s.hardware_id == "trainer_test" and {kv.key: kv.value for kv in s.values}.get("state") == "done"
                       for m in messages for s in m.status)

        msgs = diagnostics.wait(done, timeout=10.0)
        mine = [s for m in msgs for s in m.status if s.hardware_id == "trainer_test"]
        final = [s for s in mine if {kv.key: kv.value for kv in s.values}.get("state") == "done"][-1]
        assert final.level == b"\x00"
        values = {kv.key: kv.value for kv in final.values}
        assert values["stage"] == "rl" and values["step"] == "2" and values["total"] == "2"
        assert "rl/td_loss" in values and "rl/q_data" in values
    finally:
        ros.remove(node)
    assert json.loads((tmp_path / "node_run" / "train.json").read_text())["stages"]["rl"]["steps"] == 2
