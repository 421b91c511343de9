"""A LeRobot ACT policy deployed through the stack over real DDS: policy node (backend lerobot, the policy served
from LeRobot's own venv) -> executor -> sim_arm. Its chunks equal what LeRobot's own `predict_action_chunk` returns
for the observation the chunk is stamped with."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from rclpy.parameter import Parameter
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Float64MultiArray
from trajectory_msgs.msg import JointTrajectory

from corft_ros.core import topics
from corft_ros.core.dataset.synthetic import write_dataset
from corft_ros.core.images import to_rgb8
from corft_ros.core.lerobot.export import export_dataset
from corft_ros.core.policy.lerobot_backend.client import default_python
from corft_ros.core.robot import ConfigError, load_robot_config
from corft_ros.nodes.executor import ExecutorNode
from corft_ros.nodes.policy import PolicyNode
from corft_ros.nodes.sim_arm import SimArmNode

ROBOT = load_robot_config()
ROOT = Path(__file__).resolve().parents[2]
LEROBOT = default_python()
pytestmark = pytest.mark.skipif(not LEROBOT.is_file(), reason="no LeRobot venv (make lerobot-env)")
CAMERAS = ("front", "wrist")


@pytest.fixture(scope="module")
def act_policy(tmp_path_factory) -> Path:
    """A randomly initialised small ACT, its features and normalization stats from a dataset we exported, saved with
    LeRobot's save_pretrained: what a LeRobot user brings."""
    root = tmp_path_factory.mktemp("act")
    write_dataset(root / "episodes", ROBOT, 2, image_hw=(64, 64))
    export_dataset(root / "episodes", root / "dataset", ROBOT, log=lambda _m: None)
    run = subprocess.run([str(LEROBOT), str(ROOT / "test" / "lerobot_env.py"), "make-act", str(root / "dataset"),
                          str(root / "policy")], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    return root / "policy"


def stamp_ns(stamp) -> int:
    return stamp.sec * 1_000_000_000 + stamp.nanosec


def latest(log, at_ns: int, n: int = 2) -> list:
    """The newest `n` messages stamped at or before `at_ns` (the ones the policy can have used)."""
    before = [m for m in list(log.messages) if stamp_ns(m.header.stamp) <= at_ns]
    return sorted(before, key=lambda m: stamp_ns(m.header.stamp))[-n:]


def observation(images: dict[str, Image], joints: JointState) -> dict[str, np.ndarray]:
    """The batch the lerobot backend sends: state [1, d] float32 in robot.yaml order, images [1, 3, H, W] in [0, 1]."""
    q = np.array([joints.position[list(joints.name).index(n)] for n in ROBOT.joint_names], np.float64)
    out = {"observation.state": q.astype(np.float32)[None]}
    for cam, msg in images.items():
        rgb = to_rgb8(bytes(msg.data), msg.width, msg.height, msg.encoding, msg.step, bool(msg.is_bigendian))
        out[f"observation.images.{cam}"] = rgb.transpose(2, 0, 1)[None].astype(np.float32) / np.float32(255.0)
    return out


def test_an_act_policy_drives_the_sim_arm_with_lerobots_own_chunks(ros, act_policy, tmp_path):
    frames = {c: ros.subscribe(Image, "/" + topics.camera_image(c), qos_profile_sensor_data) for c in CAMERAS}
    joints = ros.subscribe(JointState, "/" + topics.JOINT_STATES, 1000)
    chunks = ros.subscribe(JointTrajectory, "/" + topics.ACTION_CHUNK, 100)
    commands = ros.subscribe(Float64MultiArray, "/forward_position_controller/commands", 1000)
    sim = ros.add(SimArmNode(context=ros.context, parameter_overrides=[
        Parameter("seed", value=5), Parameter("camera_rate_hz", value=10.0)]))
    executor = ros.add(ExecutorNode(context=ros.context, parameter_overrides=[
        Parameter("use_sim_time", value=True), Parameter("staleness_timeout", value=1.0)]))
    policy = ros.add(PolicyNode(context=ros.context, parameter_overrides=[
        Parameter("backend", value="lerobot"), Parameter("model_path", value=str(act_policy)),
        Parameter("rate_hz", value=5.0), Parameter("use_sim_time", value=True),
        Parameter("instruction", value="put the cube on the target")]))
    try:
        assert policy.runtime.config.policy_type == "act" and policy.chunk_size == 10
        msgs = chunks.wait(lambda m: len(m) >= 4, timeout=120)
        first = stamp_ns(msgs[0].header.stamp)
        commands.wait(lambda m: len(m) >= 5, timeout=60)  # the executor turns the chunks into controller commands
        assert policy.counters["nonfinite_outputs"] == 0
    finally:
        for node in (policy, executor, sim):
            ros.executor.remove_node(node)
        time.sleep(0.2)
        for node in (policy, executor, sim):
            ros.remove(node)
    assert first > 0
    # Each chunk is stamped with its newest input; the policy used the newest frame of each camera and joint state
    # it had received by then. Candidates: the two newest of each stamped at or before the chunk.
    batch: dict[str, list[np.ndarray]] = {}
    owners: list[int] = []
    for i, msg in enumerate(msgs[:4]):
        at = stamp_ns(msg.header.stamp)
        for f in latest(frames["front"], at):
            for w in latest(frames["wrist"], at):
                for j in latest(joints, at):
                    for k, v in observation({"front": f, "wrist": w}, j).items():
                        batch.setdefault(k, []).append(v[0])
                    owners.append(i)
    np.savez(tmp_path / "obs.npz", **{k: np.stack(v) for k, v in batch.items()})
    run = subprocess.run([str(LEROBOT), str(ROOT / "test" / "lerobot_env.py"), "predict", str(act_policy),
                          str(tmp_path / "obs.npz"), str(tmp_path / "out.npz")], capture_output=True, text=True,
                         timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    expected = np.load(tmp_path / "out.npz", allow_pickle=False)["action"]
    for i, msg in enumerate(msgs[:4]):
        got = np.array([p.positions for p in msg.points])
        assert list(msg.joint_names) == ROBOT.joint_names and got.shape == (10, ROBOT.dof)
        errors = [float(np.abs(expected[k] - got).max()) for k in range(len(owners)) if owners[k] == i]
        assert min(errors) <= 1e-5, f"chunk {i}: no candidate observation gives LeRobot's chunk (errors {errors})"
        dt = [p.time_from_start.sec + p.time_from_start.nanosec * 1e-9 for p in msg.points]
        np.testing.assert_allclose(dt, np.arange(10) * ROBOT.action_dt, atol=1e-9)


def test_a_folder_that_is_no_lerobot_policy_refuses_to_start_naming_it(ros, tmp_path):
    (tmp_path / "config.json").write_text('{"type": "act"}')
    with pytest.raises(ConfigError, match="cannot load a LeRobot policy") as err:
        PolicyNode(context=ros.context, parameter_overrides=[
            Parameter("backend", value="lerobot"), Parameter("model_path", value=str(tmp_path))])
    assert len(str(err.value).splitlines()) == 1
    with pytest.raises(ConfigError, match="no config.json"):
        PolicyNode(context=ros.context, parameter_overrides=[
            Parameter("backend", value="lerobot"), Parameter("model_path", value=str(tmp_path / "none"))])
