"""Critic-guided chunk selection with the flow-matching head: N chunks from N noise draws and their values in one
batched ONNX call (sampler.onnx), scored on the prefix that will execute, equal to torch."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from corft_ros.core.policy.backends import load_runtime
from corft_ros.core.policy.config import PolicyConfig
from corft_ros.core.policy.export import export_policy
from corft_ros.core.policy.model import ChunkPolicy, SamplerGraph
from corft_ros.core.robot import load_robot_config

ROBOT = load_robot_config()
TEXT = "pick up the red cube"


@pytest.fixture(scope="module")
def flow_model(tmp_path_factory):
    torch.set_num_threads(1)
    torch.manual_seed(0)
    cfg = PolicyConfig.for_robot(ROBOT, d_model=32, heads=2, ff_dim=64, encoder_layers=1, decoder_layers=1,
                                 cnn_channels=[8, 16], action_head="flow", flow_steps=5)
    model = ChunkPolicy(cfg)
    model.set_normalization(ROBOT.home_array, np.full(7, 0.5), ROBOT.home_array, np.full(7, 0.2))
    rng = np.random.default_rng(0)
    emb = rng.standard_normal(384).astype(np.float32)
    return export_policy(model.eval(), tmp_path_factory.mktemp("m") / "flow", {TEXT: emb / np.linalg.norm(emb)})


def _scene(seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {c: rng.integers(0, 256, (64, 64, 3), dtype=np.uint8) for c in ("front", "wrist")}


def test_the_sampler_graph_gives_different_chunks_and_onnx_equals_torch(flow_model):
    onnx_rt = load_runtime(flow_model, "onnx", threads=1, best_of_n=8, seed=1, prefix=2)
    torch_rt = load_runtime(flow_model, "torch", threads=1, best_of_n=8, seed=1, prefix=2)
    inputs = onnx_rt.prepare(_scene(0), ROBOT.home_array, TEXT)
    noise = np.random.default_rng(5).standard_normal((8, 10, 7)).astype(np.float32)
    chunks_o, q_o = onnx_rt._sampler(*inputs, noise)
    chunks_t, q_t = torch_rt._sampler(*inputs, noise)
    np.testing.assert_allclose(chunks_o, chunks_t, atol=1e-4)
    np.testing.assert_allclose(q_o, q_t, atol=1e-4)
    assert chunks_o.shape == (8, 10, 7) and q_o.shape == (2, 8, 10)
    assert float(chunks_o.std(axis=0).mean()) > 1e-4  # eight noise draws, eight chunks
    # candidate 0 (noise 0) is the flow head's plain chunk: what actor.onnx gives
    zero = np.zeros((1, 10, 7), np.float32)
    np.testing.assert_allclose(onnx_rt._sampler(*inputs, zero)[0][0], onnx_rt._actor(*inputs)[0], atol=1e-4)


def test_the_selected_chunk_is_the_best_executed_prefix(flow_model):
    rt = load_runtime(flow_model, "onnx", threads=1, best_of_n=8, seed=3, prefix=2, beta=1.0)
    chunk = rt.predict(_scene(1), ROBOT.home_array, TEXT)
    sel = rt.last_selection
    assert sel.candidates == 8
    inputs = rt.prepare(_scene(1), ROBOT.home_array, TEXT)
    rt.rng = np.random.default_rng(3)
    candidates, q = rt.sample(*inputs)
    prefix_q = q[:, :, 1]  # prefix 2 = index 1
    values = prefix_q.mean(axis=0) - prefix_q.std(axis=0, ddof=1)
    assert int(np.argmax(values)) == sel.index
    np.testing.assert_allclose(chunk, candidates[sel.index], atol=1e-6)


def test_bad_selection_settings_are_refused(flow_model):
    with pytest.raises(ValueError, match="prefix must be 0..10"):
        load_runtime(flow_model, "onnx", prefix=11)
    with pytest.raises(ValueError, match="beta must be >= 0"):
        load_runtime(flow_model, "onnx", beta=-1.0)


def test_the_sampler_graph_keeps_the_regression_head_chunk_as_candidate_zero():
    torch.manual_seed(0)
    cfg = PolicyConfig.for_robot(ROBOT, d_model=32, heads=2, ff_dim=64, encoder_layers=1, decoder_layers=1,
                                 cnn_channels=[8, 16])
    model = ChunkPolicy(cfg).eval()
    images, state, text = torch.rand(1, 2, 3, 64, 64), torch.zeros(1, 7), torch.zeros(1, 384)
    noise = torch.zeros(3, 10, 7)
    noise[1:] = 0.1
    with torch.no_grad():
        chunks, q = SamplerGraph(model)(images, state, text, noise)
        plain = model(images, state, text)[0]
    torch.testing.assert_close(chunks[0], plain)
    torch.testing.assert_close(chunks[1] - plain, 0.1 * model.action_std.expand(10, 7))
    assert q.shape == (2, 3, 10)


def test_the_policy_node_deploys_a_flow_model_with_the_selection_its_export_asks_for(ros, tmp_path):
    """A CO-RFT export asks for best-of-N in policy.yaml; the policy node (best_of_n 0 = the model's) publishes, over
    DDS, exactly the chunk the runtime selects for the same observation and seed."""
    from rclpy.parameter import Parameter
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
    from sensor_msgs.msg import Image, JointState
    from std_msgs.msg import Float64MultiArray, String
    from trajectory_msgs.msg import JointTrajectory

    from corft_ros.core.policy.model import ChunkPolicy
    from corft_ros.core.policy.model_files import load_metadata
    from corft_ros.nodes.policy import PolicyNode

    torch.manual_seed(1)
    cfg = PolicyConfig.for_robot(ROBOT, d_model=32, heads=2, ff_dim=64, encoder_layers=1, decoder_layers=1,
                                 cnn_channels=[8, 16], action_head="flow", flow_steps=5)
    model = ChunkPolicy(cfg)
    model.set_normalization(ROBOT.home_array, np.full(7, 0.5), ROBOT.home_array, np.full(7, 0.2))
    emb = np.random.default_rng(0).standard_normal(384).astype(np.float32)
    folder = export_policy(model.eval(), tmp_path / "corft", {TEXT: emb / np.linalg.norm(emb)},
                           deploy={"best_of_n": 4, "selection_beta": 0.5})
    assert load_metadata(folder).deploy == {"best_of_n": 4, "selection_beta": 0.5, "proposals": "white",
                                            "noise_std": 0.1, "selection": "critic"}
    tag = "selnode"
    chunks = ros.subscribe(JointTrajectory, f"/{tag}/action_chunk")
    selections = ros.subscribe(Float64MultiArray, f"/{tag}/selection")
    node = ros.add(PolicyNode(context=ros.context, cli_args=["--ros-args", "-r", f"__node:=policy_{tag}"],
                              parameter_overrides=[Parameter(k, value=v) for k, v in {
                                  "model_path": str(folder), "rate_hz": 10.0, "threads": 1, "seed": 7,
                                  "camera_topic_format": f"/{tag}/camera/{{name}}/image_raw",
                                  "joint_states_topic": f"/{tag}/joint_states",
                                  "instruction_topic": f"/{tag}/instruction", "chunk_topic": f"/{tag}/action_chunk",
                                  "selection_topic": f"/{tag}/selection",
                                  "max_observation_age": 60.0}.items()]))
    try:
        assert node.best_of_n == 4 and node.runtime.prefix == 2 and node.runtime.beta == 0.5
        same = load_runtime(folder, "onnx", threads=1, best_of_n=None, seed=7, prefix=2)
        same.warmup()
        images = _scene(9)
        expected = same.predict(images, ROBOT.home_array, TEXT)
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        ros.publisher(String, f"/{tag}/instruction", latched).publish(String(data=TEXT))
        joints = ros.publisher(JointState, f"/{tag}/joint_states")
        cams = {c: ros.publisher(Image, f"/{tag}/camera/{c}/image_raw", qos_profile_sensor_data) for c in images}
        ros.wait_for_subscribers(joints)
        stamp = node.get_clock().now().to_msg()
        joints.publish(JointState(name=ROBOT.joint_names, position=[float(v) for v in ROBOT.home_array]))
        for c, img in images.items():
            msg = Image(height=64, width=64, encoding="rgb8", step=64 * 3, data=img.tobytes())
            msg.header.stamp = stamp
            cams[c].publish(msg)
        first = chunks.wait(lambda m: len(m) >= 1, timeout=20.0)[0]
        np.testing.assert_allclose(np.array([p.positions for p in first.points]), expected, atol=1e-5)
        assert node.runtime.last_selection.candidates == 4
        # which candidate won and how the values spread, stamped like the chunk (the logger records it)
        sel = selections.wait(lambda m: len(m) >= 1, timeout=20.0)[0]
        stamp_s, index, value, best, worst, n = sel.data
        assert sel.layout.dim[0].label == "stamp_s,index,value,best_value,worst_value,candidates"
        first_stamp = first.header.stamp.sec + first.header.stamp.nanosec * 1e-9
        assert stamp_s == pytest.approx(first_stamp) and n == 4
        assert index == same.last_selection.index and value == pytest.approx(same.last_selection.value, abs=1e-5)
        assert best == pytest.approx(value, abs=1e-9) and worst <= best
    finally:
        ros.executor.remove_node(node)
        import time

        time.sleep(0.15)
        ros.remove(node)


@pytest.fixture(scope="module")
def regression_model(tmp_path_factory):
    torch.manual_seed(2)
    cfg = PolicyConfig.for_robot(ROBOT, d_model=32, heads=2, ff_dim=64, encoder_layers=1, decoder_layers=1,
                                 cnn_channels=[8, 16])
    model = ChunkPolicy(cfg)
    model.set_normalization(ROBOT.home_array, np.full(7, 0.5), ROBOT.home_array, np.full(7, 0.2))
    emb = np.random.default_rng(0).standard_normal(384).astype(np.float32)
    return export_policy(model.eval(), tmp_path_factory.mktemp("m") / "reg", {TEXT: emb / np.linalg.norm(emb)},
                         deploy={"best_of_n": 8, "proposals": "mixed"})


def test_proposals_keep_the_policy_chunk_and_differ_as_documented():
    from corft_ros.core.policy.proposals import propose, time_warp

    rng = np.random.default_rng(0)
    base = np.cumsum(rng.normal(size=(10, 7)), axis=0)
    std = np.full(7, 0.2)
    for kind in ("white", "smooth", "warp", "mixed"):
        c = propose(base, 8, kind, np.random.default_rng(1), 0.5, std)
        assert c.shape == (8, 10, 7) and c.dtype == np.float32
        np.testing.assert_allclose(c[0], base, atol=1e-5)
        assert all(not np.allclose(c[k], base) for k in range(1, 8))
    smooth = propose(base, 4, "smooth", np.random.default_rng(1), 0.5, std)
    np.testing.assert_allclose(smooth[:, 0], np.repeat(base[None, 0], 4, axis=0), atol=1e-5)  # no jump at the start
    steps = np.abs(np.diff(smooth[1:] - base, axis=1)).max()
    white = propose(base, 4, "white", np.random.default_rng(1), 0.5, std)
    assert steps < np.abs(np.diff(white[1:] - base, axis=1)).max()  # correlated in time, white noise is not
    warp = propose(base, 8, "warp", np.random.default_rng(1), 0.5, std)
    np.testing.assert_allclose(warp[1], time_warp(base, 0.7), atol=1e-5)
    np.testing.assert_allclose(warp[-1], time_warp(base, 1.4), atol=1e-5)
    np.testing.assert_allclose(time_warp(base, 2.0)[:5], base[::2], atol=1e-12)  # twice as fast: every other target
    np.testing.assert_allclose(time_warp(base, 2.0)[5:], np.repeat(base[-1:], 5, axis=0))  # then the last one holds
    with pytest.raises(ValueError, match="proposals must be one of"):
        propose(base, 4, "brownian", rng, 0.5, std)


def test_diverse_proposals_are_scored_by_the_critic_and_random_selection_is_the_control(regression_model):
    from corft_ros.core.policy.model_files import load_metadata
    from corft_ros.core.policy.proposals import propose
    from corft_ros.core.policy.runtime import Observation

    assert load_metadata(regression_model).deploy["proposals"] == "mixed"
    rt = load_runtime(regression_model, "onnx", threads=1, best_of_n=None, seed=5, prefix=2)
    assert rt.proposals == "mixed" and rt.selection == "critic" and rt.best_of_n == 8
    scene = _scene(4)
    chunk = rt.predict(scene, ROBOT.home_array, TEXT)
    sel = rt.last_selection
    plain = load_runtime(regression_model, "onnx", threads=1, best_of_n=1).predict(scene, ROBOT.home_array, TEXT)
    candidates = propose(plain, 8, "mixed", np.random.default_rng(5), 0.1, rt._action_std)
    q = rt.score(Observation(scene, ROBOT.home_array, TEXT), candidates)
    values = rt.selection_values(q)
    assert sel.index == int(np.argmax(values)) and sel.spread == pytest.approx(values.max() - values.min(), abs=1e-5)
    np.testing.assert_allclose(chunk, candidates[sel.index], atol=1e-5)
    picks = set()
    control = load_runtime(regression_model, "onnx", threads=1, best_of_n=None, seed=5, prefix=2, selection="random")
    for _ in range(12):
        control.predict(scene, ROBOT.home_array, TEXT)
        s = control.last_selection
        picks.add(s.index)
        assert s.value == pytest.approx(s.values[s.index]) and s.as_array()[2] == pytest.approx(s.values.max())
    assert len(picks) > 3  # random picks, not the critic's one winner


def test_bad_proposal_settings_are_refused(flow_model, regression_model, tmp_path):
    import shutil

    import yaml

    from corft_ros.core.policy.model_files import ModelError

    with pytest.raises(ValueError, match="need a regression head"):
        load_runtime(flow_model, "onnx", best_of_n=4, proposals="warp")
    with pytest.raises(ValueError, match="selection must be one of critic, random"):
        load_runtime(regression_model, "onnx", selection="best")
    bad = shutil.copytree(regression_model, tmp_path / "bad")
    meta = yaml.safe_load((bad / "policy.yaml").read_text())
    meta["deploy"]["proposals"] = "pink"
    (bad / "policy.yaml").write_text(yaml.safe_dump(meta))
    with pytest.raises(ModelError, match="deploy.proposals must be one of white, smooth, warp, mixed"):
        load_runtime(bad, "onnx", best_of_n=None)


def test_a_model_copied_with_another_deploy_runs_the_same_weights_another_way(regression_model, tmp_path):
    from corft_ros.core.policy.export import copy_with_deploy
    from corft_ros.core.policy.model_files import ModelError, load_metadata

    actor = copy_with_deploy(regression_model, tmp_path / "actor", best_of_n=1)
    pick = copy_with_deploy(regression_model, tmp_path / "random", selection="random")
    assert load_metadata(actor).deploy["best_of_n"] == 1 and load_metadata(actor).deploy["proposals"] == "mixed"
    assert load_metadata(pick).deploy == {**load_metadata(regression_model).deploy, "selection": "random"}
    scene = _scene(6)
    own = load_runtime(regression_model, "onnx", threads=1, best_of_n=1).predict(scene, ROBOT.home_array, TEXT)
    np.testing.assert_array_equal(load_runtime(actor, "onnx", threads=1, best_of_n=None).predict(
        scene, ROBOT.home_array, TEXT), own)
    assert load_runtime(pick, "onnx", threads=1, best_of_n=None).selection == "random"
    with pytest.raises(ModelError, match="unknown deploy setting"):
        copy_with_deploy(regression_model, tmp_path / "bad", best_of=2)
    with pytest.raises(ModelError, match="deploy.proposals must be one of"):
        copy_with_deploy(regression_model, tmp_path / "bad", proposals="pink")
    assert not (tmp_path / "bad").exists() and not (tmp_path / "bad.tmp").exists()


def test_the_policy_node_refuses_proposals_its_model_cannot_make_in_one_line(ros, flow_model):
    from rclpy.parameter import Parameter

    from corft_ros.core.robot import ConfigError
    from corft_ros.nodes.policy import PolicyNode

    with pytest.raises(ConfigError, match="proposals 'warp' need a regression head"):
        PolicyNode(context=ros.context, cli_args=["--ros-args", "-r", "__node:=policy_badprop"],
                   parameter_overrides=[Parameter("model_path", value=str(flow_model)),
                                        Parameter("best_of_n", value=4), Parameter("proposals", value="warp")])
