"""Critic-guided chunk selection with the flow-matching head: N chunks from N noise draws and their values in one
batched ONNX call (sampler.onnx), scored on the prefix that will execute, equal to torch."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from corft_ros.core.policy.config import PolicyConfig
from corft_ros.core.policy.export import export_policy
from corft_ros.core.policy.model import ChunkPolicy, SamplerGraph
from corft_ros.core.policy.runtime import load_runtime
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
    from std_msgs.msg import String
    from trajectory_msgs.msg import JointTrajectory

    from corft_ros.core.policy.export import load_metadata
    from corft_ros.core.policy.model import ChunkPolicy
    from corft_ros.nodes.policy import PolicyNode

    torch.manual_seed(1)
    cfg = PolicyConfig.for_robot(ROBOT, d_model=32, heads=2, ff_dim=64, encoder_layers=1, decoder_layers=1,
                                 cnn_channels=[8, 16], action_head="flow", flow_steps=5)
    model = ChunkPolicy(cfg)
    model.set_normalization(ROBOT.home_array, np.full(7, 0.5), ROBOT.home_array, np.full(7, 0.2))
    emb = np.random.default_rng(0).standard_normal(384).astype(np.float32)
    folder = export_policy(model.eval(), tmp_path / "corft", {TEXT: emb / np.linalg.norm(emb)},
                           deploy={"best_of_n": 4, "selection_beta": 0.5})
    assert load_metadata(folder).deploy == {"best_of_n": 4, "selection_beta": 0.5}
    tag = "selnode"
    chunks = ros.subscribe(JointTrajectory, f"/{tag}/action_chunk")
    node = ros.add(PolicyNode(context=ros.context, cli_args=["--ros-args", "-r", f"__node:=policy_{tag}"],
                              parameter_overrides=[Parameter(k, value=v) for k, v in {
                                  "model_path": str(folder), "rate_hz": 10.0, "threads": 1, "seed": 7,
                                  "camera_topic_format": f"/{tag}/camera/{{name}}/image_raw",
                                  "joint_states_topic": f"/{tag}/joint_states",
                                  "instruction_topic": f"/{tag}/instruction", "chunk_topic": f"/{tag}/action_chunk",
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
    finally:
        ros.executor.remove_node(node)
        import time

        time.sleep(0.15)
        ros.remove(node)
