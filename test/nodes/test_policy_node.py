"""The policy node over real DDS: images + joint states + instruction in, well-formed chunks out; bad input;
/joint_states split over two publishers; compressed images from camera nodes (a policy on another machine)."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import CompressedImage, Image, JointState
from std_msgs.msg import String
from trajectory_msgs.msg import JointTrajectory

from corft_ros.core.images import encode_compressed
from corft_ros.core.paths import models_dir
from corft_ros.core.policy.backends import load_runtime
from corft_ros.core.policy.config import PolicyConfig
from corft_ros.core.policy.export import export_policy
from corft_ros.core.policy.model import ChunkPolicy
from corft_ros.core.policy.model_files import META_FILE, WEIGHTS_FILE, _sha256
from corft_ros.core.robot import ConfigError, load_robot_config
from corft_ros.nodes.camera import CameraNode
from corft_ros.nodes.policy import PolicyNode

INSTRUCTION_QOS = QoSProfile(
    depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
)
ROBOT = load_robot_config()


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    """A freshly initialised small model (front + wrist 64x64, the robot's joints): the bad-input tests need to know
    its inputs. The default model (models/default) has a test of its own."""
    torch.manual_seed(0)
    torch.set_num_threads(1)
    model = ChunkPolicy(PolicyConfig.for_robot(ROBOT))
    model.set_normalization(ROBOT.home_array, np.ones(7), ROBOT.home_array, np.full(7, 0.1))
    rng = np.random.default_rng(0)
    table = {}
    for text in ("pick up the cube", "push the cube left"):
        v = rng.standard_normal(384).astype(np.float32)
        table[text] = v / np.linalg.norm(v)
    return export_policy(model, tmp_path_factory.mktemp("models") / "test_policy", table)


@pytest.fixture(scope="module")
def reference(model_dir):
    runtime = load_runtime(model_dir, "onnx", threads=1)
    return runtime


class Rig:
    """A PolicyNode on topics of its own (so tests don't hear each other) and the probe's publishers."""

    def __init__(self, ros, model_dir: Path, tag: str, **params) -> None:
        self.ros = ros
        self.tag = tag
        overrides = {
            "model_path": str(model_dir) if str(model_dir) not in ("", ".") else "", "rate_hz": 20.0, "threads": 1,
            "camera_topic_format": f"/{tag}/camera/{{name}}/image_raw", "joint_states_topic": f"/{tag}/joint_states",
            "instruction_topic": f"/{tag}/instruction", "chunk_topic": f"/{tag}/action_chunk",
            # inputs are sent once and must stay usable (staleness has its own test)
            "max_observation_age": 60.0, **params,
        }
        self.chunks = ros.subscribe(JointTrajectory, f"/{tag}/action_chunk")
        self.diagnostics = ros.subscribe(DiagnosticArray, "/diagnostics")
        self.node = ros.add(PolicyNode(
            context=ros.context, cli_args=["--ros-args", "-r", f"__node:=policy_{tag}"],
            parameter_overrides=[Parameter(k, value=v) for k, v in overrides.items()],
        ))
        if self.node.image_transport == "compressed":
            self.cams = {c: ros.publisher(CompressedImage, f"/{tag}/camera/{c}/image_raw/compressed",
                                          qos_profile_sensor_data) for c in self.node.cameras}
        else:
            self.cams = {c: ros.publisher(Image, f"/{tag}/camera/{c}/image_raw", qos_profile_sensor_data)
                         for c in self.node.cameras}
        self.joints = ros.publisher(JointState, f"/{tag}/joint_states")
        self.instruction = ros.publisher(String, f"/{tag}/instruction", INSTRUCTION_QOS)
        for pub in [*self.cams.values(), self.joints, self.instruction, self.node.chunk_pub, self.node.diag_pub]:
            ros.wait_for_subscribers(pub)

    def now(self):
        return self.node.get_clock().now()

    def stamp(self, ago: float = 0.0):
        return (self.now() - rclpy_duration(ago)).to_msg()

    def send_image(self, camera: str, rgb: np.ndarray, encoding: str = "rgb8", ago: float = 0.0,
                   data: np.ndarray | None = None):
        msg = Image()
        msg.header.stamp = self.stamp(ago)
        msg.height, msg.width = rgb.shape[:2]
        msg.encoding = encoding
        payload = np.ascontiguousarray(rgb if data is None else data)
        msg.step = payload.shape[1] * (payload.shape[2] if payload.ndim == 3 else 1) * payload.itemsize
        msg.data = payload.tobytes()
        self.cams[camera].publish(msg)
        return msg.header.stamp

    def send_compressed(self, camera: str, data: bytes, fmt: str, ago: float = 0.0):
        msg = CompressedImage(format=fmt)
        msg.header.stamp = self.stamp(ago)
        msg.data = data
        self.cams[camera].publish(msg)
        return msg.header.stamp

    def send_joints(self, positions: np.ndarray, names: list[str] | None = None, ago: float = 0.0, publisher=None):
        msg = JointState()
        msg.header.stamp = self.stamp(ago)
        names = list(ROBOT.joint_names) if names is None else names
        order = ROBOT.index_of(names)
        # publish in reversed order: the node must map by name
        msg.name = names[::-1]
        msg.position = [float(positions[i]) for i in order][::-1]
        (publisher or self.joints).publish(msg)
        return msg.header.stamp

    def say(self, text: str) -> None:
        self.instruction.publish(String(data=text))

    def status(self, predicate, timeout: float = 20.0):
        name = f"policy_{self.tag}"

        def match(messages):
            return any(s.hardware_id == name and predicate(s) for m in messages for s in m.status)

        msgs = self.diagnostics.wait(match, timeout)
        return [s for m in msgs for s in m.status if s.hardware_id == name and predicate(s)][-1]

    def close(self) -> None:
        self.ros.remove(self.node)


def rclpy_duration(seconds: float):
    from rclpy.duration import Duration

    return Duration(nanoseconds=int(seconds * 1e9))


def values(status) -> dict[str, str]:
    return {kv.key: kv.value for kv in status.values}


def scene(seed: int = 0, size: tuple[int, int] = (64, 64)) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {c: rng.integers(0, 256, (*size, 3), dtype=np.uint8) for c in ("front", "wrist")}


def stamp_key(stamp) -> tuple[int, int]:
    return (stamp.sec, stamp.nanosec)


def test_publishes_well_formed_chunks_stamped_with_the_observation(ros, model_dir, reference):
    rig = Rig(ros, model_dir, "ok")
    try:
        instruction = reference.instructions.instructions[0]
        images = scene(1)
        q = ROBOT.home_array + 0.05
        rig.say(instruction)
        t_joint = rig.send_joints(q, ago=0.3)
        t_front = rig.send_image("front", images["front"], ago=0.2)
        t_wrist = rig.send_image("wrist", images["wrist"], ago=0.1)  # the newest input
        msgs = rig.chunks.wait(lambda m: len(m) >= 1, timeout=15)
        time.sleep(0.3)  # several inference periods: the same observation gives no second chunk (a duplicate stamp)
        assert len(rig.chunks.messages) == 1
        msgs = list(rig.chunks.messages)
        expected = reference.predict(images, q, instruction)
        for msg in msgs:
            assert list(msg.joint_names) == reference.joint_names
            assert len(msg.points) == reference.chunk_size
            assert stamp_key(msg.header.stamp) == stamp_key(t_wrist)
            for i, point in enumerate(msg.points):
                t = point.time_from_start.sec + point.time_from_start.nanosec * 1e-9
                assert t == pytest.approx(i * reference.action_dt, abs=1e-9)
            np.testing.assert_allclose(np.array([p.positions for p in msg.points]), expected, atol=1e-5)
        assert stamp_key(t_wrist) > stamp_key(t_front) > stamp_key(t_joint)
        # a newer joint state becomes the newest input: the next chunks carry its stamp
        t_joint2 = rig.send_joints(q)
        rig.chunks.wait(lambda m: any(stamp_key(x.header.stamp) == stamp_key(t_joint2) for x in m), timeout=10)
        st = rig.status(lambda s: values(s).get("latency_p50_ms", "nan") != "nan")
        v = values(st)
        assert float(v["latency_p95_ms"]) >= float(v["latency_p50_ms"]) > 0
        assert float(v["observation_age_ms"]) > 0
        assert int(v["chunks_published"]) >= 2 and int(v["unchanged_inputs"]) > 0
    finally:
        rig.close()


def test_encodings_converted_and_sizes_resized(ros, model_dir, reference):
    rig = Rig(ros, model_dir, "enc")
    try:
        instruction = reference.instructions.instructions[0]
        images = scene(2)
        q = ROBOT.home_array
        rig.say(instruction)
        rig.send_joints(q)
        # bgr8 on the front camera: the node must convert it back to the same RGB
        rig.send_image("front", images["front"], encoding="bgr8", data=images["front"][:, :, ::-1])
        rig.send_image("wrist", images["wrist"])
        expected = reference.predict(images, q, instruction)
        msg = rig.chunks.wait(lambda m: len(m) >= 1, timeout=15)[-1]
        np.testing.assert_allclose(np.array([p.positions for p in msg.points]), expected, atol=1e-5)

        # wrong size: a 96x128 wrist image is resized, and counted
        big = np.random.default_rng(3).integers(0, 256, (96, 128, 3), dtype=np.uint8)
        rig.chunks.clear()
        rig.send_image("wrist", big)
        expected = reference.predict({"front": images["front"], "wrist": big}, q, instruction)
        rig.chunks.wait(lambda m: any(np.allclose([p.positions for p in x.points], expected, atol=1e-5) for x in m),
                        timeout=10)
        rig.status(lambda s: int(values(s).get("resized_images", "0")) > 0)

        # mono8 and yuv422 are converted (chunks keep coming)
        gray = np.full((64, 64), 128, np.uint8)
        rig.send_image("wrist", np.zeros((64, 64, 1), np.uint8), encoding="mono8", data=gray)
        rig.chunks.clear()
        rig.chunks.wait(lambda m: len(m) >= 1, timeout=10)
        uyvy = np.full((64, 64, 2), 128, np.uint8)
        rig.send_image("wrist", np.zeros((64, 64, 2), np.uint8), encoding="yuv422", data=uyvy)
        rig.chunks.clear()
        rig.chunks.wait(lambda m: len(m) >= 1, timeout=10)

        # an encoding the node cannot convert is rejected by name: no chunks
        rig.send_image("wrist", np.zeros((64, 64, 4), np.uint8), encoding="32FC1",
                       data=np.zeros((64, 64), np.float32))
        st = rig.status(lambda s: "32FC1" in s.message, timeout=10)
        assert "wrist" in st.message and st.level == b"\x02"
        rig.chunks.clear()
        time.sleep(0.5)
        assert rig.chunks.messages == []
        assert int(values(rig.status(lambda s: "32FC1" in s.message))["rejected_images"]) > 0
    finally:
        rig.close()


def test_missing_camera_gives_no_chunk_and_a_warning_naming_it(ros, model_dir, reference):
    rig = Rig(ros, model_dir, "cam")
    try:
        rig.say(reference.instructions.instructions[0])
        rig.send_joints(ROBOT.home_array)
        rig.send_image("front", scene()["front"])
        st = rig.status(lambda s: "camera 'wrist' missing" in s.message)
        assert st.level == b"\x01"
        assert int(values(st)["missing_camera_wrist"]) > 0
        assert rig.chunks.messages == []
        # a stale image counts as missing too
        rig.send_image("wrist", scene()["wrist"], ago=100.0)  # max_observation_age is 60 s
        rig.diagnostics.clear()
        st = rig.status(lambda s: "camera 'wrist' missing" in s.message and "old" in s.message)
        assert rig.chunks.messages == []
        rig.send_image("wrist", scene()["wrist"])
        rig.chunks.wait(lambda m: len(m) >= 1, timeout=10)
    finally:
        rig.close()


ARM = [j for j in ROBOT.joint_names if j != "finger_joint"]


def test_split_joint_states_combine_newest_stamp_oldest_age(ros, model_dir, reference):
    """An arm driver and a gripper driver each publish their joints on /joint_states: the policy combines them."""
    rig = Rig(ros, model_dir, "split")
    finger = ros.publisher(JointState, "/split/joint_states")  # a second publisher: the gripper's driver
    try:
        ros.wait_for_subscribers(finger)
        instruction = reference.instructions.instructions[0]
        images = scene(4)
        q = ROBOT.home_array + 0.03
        rig.say(instruction)
        t_front = rig.send_image("front", images["front"], ago=0.25)
        rig.send_image("wrist", images["wrist"], ago=0.2)
        t_arm = rig.send_joints(q, names=ARM, ago=0.4)  # the oldest input
        st = rig.status(lambda s: "finger_joint (never received)" in s.message)
        assert st.level == b"\x01" and values(st)["missing_joints"] == "finger_joint"
        assert int(values(st)["joint_state_errors"]) == 0 and rig.chunks.messages == []
        t_finger = rig.send_joints(q, names=["finger_joint"], ago=0.1, publisher=finger)  # the newest input
        msg = rig.chunks.wait(lambda m: len(m) >= 1, timeout=15)[0]
        assert stamp_key(msg.header.stamp) == stamp_key(t_finger)
        assert stamp_key(t_finger) > stamp_key(t_front) > stamp_key(t_arm)
        np.testing.assert_allclose(np.array([p.positions for p in msg.points]),
                                   reference.predict(images, q, instruction), atol=1e-5)
        v = values(rig.status(lambda s: values(s)["observation_age_ms"] != "nan"))
        assert float(v["observation_age_ms"]) >= 400  # measured from the arm's (oldest) stamp
        assert v["joint_sources"] == "2" and v["missing_joints"] == ""
        # a NaN from the gripper is rejected by name; the arm's message is not
        finger.publish(JointState(name=["finger_joint"], position=[float("nan")]))
        st = rig.status(lambda s: "finger_joint' position is nan" in s.message)
        assert st.level == b"\x02" and int(values(st)["joint_state_errors"]) >= 1
    finally:
        rig.close()


class JointFeeder:
    """Two /joint_states publishers (arm driver, gripper driver) and the cameras, at ~20 Hz with fresh stamps."""

    def __init__(self, rig: Rig, finger_pub, q: np.ndarray, images: dict[str, np.ndarray]) -> None:
        self.rig, self.finger_pub, self.q, self.images = rig, finger_pub, q, images
        self.finger = True
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self.rig.send_joints(self.q, names=ARM)
            if self.finger:
                self.rig.send_joints(self.q, names=["finger_joint"], publisher=self.finger_pub)
            for camera, rgb in self.images.items():
                self.rig.send_image(camera, rgb)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def test_a_stopped_gripper_driver_stops_the_chunks_and_is_named(ros, model_dir, reference):
    rig = Rig(ros, model_dir, "gripstop", max_observation_age=1.0)
    finger = ros.publisher(JointState, "/gripstop/joint_states")
    feeder = None
    try:
        ros.wait_for_subscribers(finger)
        instruction = reference.instructions.instructions[0]
        images, q = scene(6), ROBOT.home_array - 0.02
        rig.say(instruction)
        feeder = JointFeeder(rig, finger, q, images)
        msgs = rig.chunks.wait(lambda m: len(m) >= 3, timeout=20)
        np.testing.assert_allclose(np.array([p.positions for p in msgs[-1].points]),
                                   reference.predict(images, q, instruction), atol=1e-5)
        feeder.finger = False  # the gripper's driver stops; the arm's keeps publishing
        stale = rig.status(lambda s: values(s)["missing_joints"] == "finger_joint", timeout=20)
        assert "finger_joint (" in stale.message and "s old)" in stale.message and stale.level == b"\x01"
        published, skipped = int(values(stale)["chunks_published"]), int(values(stale)["skipped_missing_input"])
        rig.diagnostics.clear()
        later = rig.status(lambda s: values(s)["missing_joints"] == "finger_joint"
                           and int(values(s)["skipped_missing_input"]) > skipped)
        assert int(values(later)["chunks_published"]) == published, "chunks kept coming without the finger"
        assert len(rig.chunks.messages) == published
        feeder.finger = True  # the driver is back
        rig.chunks.wait(lambda m: len(m) >= published + 2, timeout=15)
        rig.status(lambda s: s.message == "ok" and values(s)["missing_joints"] == "")
    finally:
        if feeder is not None:
            feeder.stop()
        rig.close()


def test_compressed_images_from_camera_nodes_give_chunks(ros, model_dir, reference, tmp_path):
    """Camera nodes publish only JPEG/PNG CompressedImage; the policy subscribes <topic>/compressed and infers."""
    from test_camera_node import write_video

    tag = "remote"
    video = write_video(tmp_path / "clip.avi")
    cameras = [ros.add(CameraNode(
        context=ros.context, cli_args=["--ros-args", "-r", f"__node:=camera_{tag}_{name}"],
        parameter_overrides=[Parameter(k, value=v) for k, v in dict(
            name=name, source=str(video), width=64, height=64, fps=30.0, transport="compressed",
            compressed_format=fmt, topic=f"/{tag}/camera/{name}/image_raw").items()]))
        for name, fmt in (("front", "jpeg"), ("wrist", "png"))]
    rig = Rig(ros, model_dir, tag, image_transport="compressed")
    try:
        rig.say(reference.instructions.instructions[0])
        rig.send_joints(ROBOT.home_array)
        msgs = rig.chunks.wait(lambda m: len(m) >= 3, timeout=20)
        assert all(np.isfinite([p.positions for p in m.points]).all() for m in msgs)
        v = values(rig.status(lambda s: int(values(s)["decoded_images"]) >= 6))
        assert v["image_transport"] == "compressed" and v["rejected_images"] == "0"
        assert float(v["decode_p50_ms"]) > 0
        assert rig.node.camera_topics == {c: f"/{tag}/camera/{c}/image_raw/compressed" for c in ("front", "wrist")}
        for name in ("front", "wrist"):  # nothing raw on the wire
            assert ros.probe.count_publishers(f"/{tag}/camera/{name}/image_raw") == 0
            assert ros.probe.count_subscribers(f"/{tag}/camera/{name}/image_raw") == 0
    finally:
        rig.close()
        for node in cameras:
            ros.remove(node)


def test_compressed_png_gives_the_raw_chunk_and_bad_data_is_counted_once(ros, model_dir, reference):
    rig = Rig(ros, model_dir, "cmp", image_transport="compressed")
    try:
        instruction = reference.instructions.instructions[0]
        images, q = scene(7), ROBOT.home_array
        rig.say(instruction)
        rig.send_joints(q)
        for camera, rgb in images.items():
            rig.send_compressed(camera, *encode_compressed(rgb, "png"))
        msg = rig.chunks.wait(lambda m: len(m) >= 1, timeout=15)[-1]  # PNG is lossless: the raw image's chunk
        np.testing.assert_allclose(np.array([p.positions for p in msg.points]),
                                   reference.predict(images, q, instruction), atol=1e-5)
        # data that does not decode: one-line error naming the camera, counted once, no chunk, the node keeps going
        rig.send_compressed("wrist", b"\xff\xd8 not a jpeg", "rgb8; jpeg compressed bgr8")
        st = rig.status(lambda s: "camera 'wrist': cannot decode" in s.message)
        assert st.level == b"\x02" and "\n" not in st.message
        rig.diagnostics.clear()  # a later status: many more steps saw the same bad frame
        later = rig.status(lambda s: s.message == st.message)
        assert values(later)["rejected_images"] == "1"
        rig.chunks.clear()
        rig.send_compressed("wrist", *encode_compressed(images["wrist"], "jpeg"))
        rig.chunks.wait(lambda m: len(m) >= 1, timeout=10)
        rig.status(lambda s: s.message == "ok")
    finally:
        rig.close()


def test_relative_topics_resolve_in_the_node_namespace(ros, model_dir):
    node = ros.add(PolicyNode(context=ros.context, namespace="left", cli_args=["--ros-args", "-r", "__node:=policy_ns"],
                              parameter_overrides=[Parameter("model_path", value=str(model_dir)),
                                                   Parameter("image_transport", value="compressed")]))
    try:
        assert node.camera_topics == {c: f"/left/camera/{c}/image_raw/compressed" for c in ("front", "wrist")}
        assert (node.joint_topic, node.instruction_topic) == ("/left/joint_states", "/left/corft/instruction")
        assert node.chunk_pub.topic_name == "/left/corft/action_chunk"
        assert node.diag_pub.topic_name == "/diagnostics"
    finally:
        ros.remove(node)


def test_empty_and_unknown_instructions(ros, model_dir, reference):
    rig = Rig(ros, model_dir, "instr", allow_encoder=False)
    try:
        for c, img in scene().items():
            rig.send_image(c, img)
        rig.send_joints(ROBOT.home_array)
        rig.say("   ")
        st = rig.status(lambda s: "empty instruction" in s.message)
        assert int(values(st)["instruction_errors"]) == 1
        assert rig.chunks.messages == []
        rig.say("juggle three cubes")
        st = rig.status(lambda s: "unknown instruction 'juggle three cubes'" in s.message)
        assert st.level == b"\x02"
        assert rig.chunks.messages == []
        rig.say(reference.instructions.instructions[0])
        rig.chunks.wait(lambda m: len(m) >= 1, timeout=10)
    finally:
        rig.close()


def test_nonfinite_output_is_not_published_and_counted(ros, model_dir, reference, tmp_path):
    from safetensors.torch import load_file, save_file

    broken = tmp_path / "nan_model"
    shutil.copytree(model_dir, broken)
    weights = load_file(str(broken / WEIGHTS_FILE))
    weights["action_head.bias"][3] = float("nan")  # a real model whose output has a NaN in joint 3
    save_file(weights, str(broken / WEIGHTS_FILE))
    meta = yaml.safe_load((broken / META_FILE).read_text())
    meta["files"][WEIGHTS_FILE]["sha256"] = _sha256(broken / WEIGHTS_FILE)
    (broken / META_FILE).write_text(yaml.safe_dump(meta))
    rig = Rig(ros, broken, "nan", backend="torch")
    try:
        rig.say(reference.instructions.instructions[0])
        rig.send_joints(ROBOT.home_array)
        for c, img in scene().items():
            rig.send_image(c, img)
        st = rig.status(lambda s: int(values(s).get("nonfinite_outputs", "0")) >= 2)
        assert "NaN/Inf" in st.message
        assert rig.chunks.messages == []
    finally:
        rig.close()


def test_default_model_path_publishes_chunks(ros):
    """model_path '' = models/default (the bundled model): the node runs it on its own inputs."""
    default = models_dir() / "default"
    assert (default / META_FILE).is_file(), "no bundled models/default (make experiment bundles it)"
    runtime = load_runtime(default, "onnx", threads=1)
    instruction = (runtime.instructions.instructions or ["pick up the red cube and place it on the target"])[0]
    rig = Rig(ros, Path(""), "default")
    try:
        assert rig.node.model_path == str(default)
        rng = np.random.default_rng(0)
        h, w = runtime.config.image_size
        rig.say(instruction)
        rig.send_joints(ROBOT.home_array)
        for camera in runtime.camera_names:
            rig.send_image(camera, rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
        msg = rig.chunks.wait(lambda m: len(m) >= 1, timeout=30)[-1]
        assert list(msg.joint_names) == runtime.joint_names and len(msg.points) == runtime.chunk_size
        assert np.isfinite([p.positions for p in msg.points]).all()
    finally:
        rig.close()


def test_best_of_n_publishes_the_critics_choice(ros, model_dir, reference):
    rig = Rig(ros, model_dir, "bon", best_of_n=6, noise_std=0.5, seed=11)
    try:
        instruction = reference.instructions.instructions[0]
        images, q = scene(5), ROBOT.home_array + 0.02
        # the node ranks by the prefix that executes: the rig re-plans at 20 Hz a chunk of 20 Hz actions = 1 action
        same = load_runtime(model_dir, "onnx", threads=1, best_of_n=6, noise_std=0.5, seed=11, prefix=1)
        same.warmup()  # as the node does at start-up (it may draw candidates)
        expected = same.predict(images, q, instruction)  # the node's first draw of candidates, same seed
        rig.say(instruction)
        rig.send_joints(q)
        for c, img in images.items():
            rig.send_image(c, img)
        first = rig.chunks.wait(lambda m: len(m) >= 1, timeout=15)[0]
        np.testing.assert_allclose(np.array([p.positions for p in first.points]), expected, atol=1e-5)
        assert values(rig.status(lambda s: True))["best_of_n"] == "6"
    finally:
        rig.close()


def _node(ros, model: Path, **params):
    overrides = [Parameter("model_path", value=str(model)), *(Parameter(k, value=v) for k, v in params.items())]
    return PolicyNode(context=ros.context, parameter_overrides=overrides)


def test_corrupt_or_mismatched_model_refuses_to_start_naming_the_file(ros, model_dir, tmp_path):
    corrupt = tmp_path / "corrupt"
    shutil.copytree(model_dir, corrupt)
    data = bytearray((corrupt / "actor.onnx").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (corrupt / "actor.onnx").write_bytes(bytes(data))
    with pytest.raises(ConfigError, match=r"actor\.onnx: sha256 .* corrupt"):
        _node(ros, corrupt)

    truncated = tmp_path / "truncated"
    shutil.copytree(model_dir, truncated)
    (truncated / "critic.onnx").write_bytes((truncated / "critic.onnx").read_bytes()[:1000])
    meta = yaml.safe_load((truncated / META_FILE).read_text())
    meta["files"]["critic.onnx"]["sha256"] = _sha256(truncated / "critic.onnx")  # hash consistent, file still bad
    (truncated / META_FILE).write_text(yaml.safe_dump(meta))
    with pytest.raises(ConfigError, match=r"critic\.onnx: ONNX Runtime cannot load it"):
        _node(ros, truncated)

    other_robot = tmp_path / "other_robot"
    shutil.copytree(model_dir, other_robot)
    meta = yaml.safe_load((other_robot / META_FILE).read_text())
    meta["config"]["joint_names"][0] = meta["joint_names"][0] = "elbow_2_joint"
    (other_robot / META_FILE).write_text(yaml.safe_dump(meta))
    with pytest.raises(ConfigError, match="unknown joint name 'elbow_2_joint'"):
        _node(ros, other_robot)

    with pytest.raises(ConfigError, match="model directory not found"):
        _node(ros, tmp_path / "nowhere")
    with pytest.raises(ConfigError, match="missing 'wrist'"):
        _node(ros, model_dir, cameras=["front"])
    with pytest.raises(ConfigError, match="backend"):
        _node(ros, model_dir, backend="tensorflow")
    with pytest.raises(ConfigError, match="image_transport must be one of raw, compressed, got 'theora'"):
        _node(ros, model_dir, image_transport="theora")
