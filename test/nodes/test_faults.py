"""Fault injection across the stack: real nodes over real DDS (executor, policy with a real exported model,
camera, episode_logger, the MuJoCo sim_arm), faults the way they happen in the field.

- a burst of chunks with stamps duplicated, out of order, from the future and very old: refused by rule, the
  arm's commands never go back to an older or refused chunk;
- a real model whose corrupted weights give NaN for some observations and huge values for others: the policy
  publishes no NaN, the executor never commands outside the limits;
- a camera that stops publishing: the policy stops producing chunks and /diagnostics names the camera (policy and
  camera node); frames again: chunks resume;
- the disk nearly full mid-episode (min_free_bytes above what will be free): the logger stops cleanly with one
  clear error, the earlier episode is intact, the cut episode is a closed readable bag, new starts are refused;
- the sim running at 0.3× real time with use_sim_time: nothing goes stale or is refused while chunks keep coming
  in sim time, though sim time falls seconds behind the wall clock;
- the policy node destroyed mid-run: the executor holds within its staleness timeout; a new policy node: execution
  resumes.
- the logger process paused 5 s by the OS mid-episode: no joint state of the sim arm is lost (the arm's publisher
  keeps the history for the resend); Ctrl-C then closes the episode cleanly.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import Log
from rclpy.parameter import Parameter
from rclpy.qos import qos_profile_sensor_data
from ros_harness import wait_until
from rosbags.rosbag2 import Reader
from rosbags.typesys import Stores, get_typestore
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Float64MultiArray, String
from std_srvs.srv import Trigger
from test_executor_node import START, Rig, remove_node
from trajectory_msgs.msg import JointTrajectory

from corft_ros.core.episodes import list_episodes, load_episode_metadata, read_episode
from corft_ros.core.episodes.diskguard import free_bytes
from corft_ros.core.episodes.reader import bag_is_intact
from corft_ros.core.policy.config import PolicyConfig
from corft_ros.core.policy.export import export_policy
from corft_ros.core.policy.model import ChunkPolicy
from corft_ros.core.policy.model_files import META_FILE, WEIGHTS_FILE, _sha256
from corft_ros.core.robot import load_robot_config
from corft_ros.nodes.camera import CameraNode
from corft_ros.nodes.episode_logger import EpisodeLoggerNode
from corft_ros.nodes.executor import ExecutorNode
from corft_ros.nodes.policy import PolicyNode
from corft_ros.nodes.sim_arm import SimArmNode

ROBOT = load_robot_config()
LOWER, UPPER = ROBOT.lower, ROBOT.upper
HOME = ROBOT.home_array
INSTRUCTION = "pick up the red cube and place it on the target"
ELBOW = ROBOT.joint_names.index("elbow_joint")
JOINT_STATE_TS = get_typestore(Stores.ROS2_KILTED)


# ---- shared pieces ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    """A real exported model (small, freshly initialised: its chunks stay near the pose it sees)."""
    torch.manual_seed(0)
    torch.set_num_threads(1)
    config = PolicyConfig.for_robot(ROBOT, d_model=32, heads=2, ff_dim=64, cnn_channels=[8, 16], encoder_layers=1,
                                    decoder_layers=1)
    model = ChunkPolicy(config)
    model.set_normalization(HOME, np.ones(ROBOT.dof), HOME, np.full(ROBOT.dof, 0.05))
    v = np.random.default_rng(0).standard_normal(384).astype(np.float32)
    return export_policy(model, tmp_path_factory.mktemp("models") / "faults", {INSTRUCTION: v / np.linalg.norm(v)})


def corrupt_model(model_dir: Path, out: Path) -> Path:
    """The same model with corrupted weights, re-hashed so it loads: the elbow's output bias is 1e6 (a huge but
    finite chunk) and the first state layer's shoulder_pan column is ±3e38, so any shoulder_pan away from the
    home pose overflows to Inf and the output is NaN; exactly at home (normalized 0) the chunk stays finite."""
    from safetensors.torch import load_file, save_file

    shutil.copytree(model_dir, out)
    weights = load_file(str(out / WEIGHTS_FILE))
    weights["action_head.bias"][ELBOW] = 1e6
    column = weights["state_mlp.0.weight"][:, 0]
    weights["state_mlp.0.weight"][:, 0] = 3e38 * torch.where(column >= 0, 1.0, -1.0)
    save_file(weights, str(out / WEIGHTS_FILE))
    meta = yaml.safe_load((out / META_FILE).read_text())
    meta["files"][WEIGHTS_FILE]["sha256"] = _sha256(out / WEIGHTS_FILE)
    (out / META_FILE).write_text(yaml.safe_dump(meta))
    return out


def params(**values) -> list[Parameter]:
    return [Parameter(k, value=v) for k, v in values.items()]


def values(status) -> dict[str, str]:
    return {kv.key: kv.value for kv in status.values}


def latest_status(log, predicate, timeout: float = 60.0):
    """The newest diagnostic status satisfying `predicate` (waits for one)."""
    found = log.wait(lambda msgs: any(predicate(s) for m in msgs for s in m.status), timeout)
    return [s for m in found for s in m.status if predicate(s)][-1]


def rgb_image(stamp, value: int = 90, size: tuple[int, int] = (64, 64)) -> Image:
    msg = Image(height=size[0], width=size[1], encoding="rgb8", step=size[1] * 3)
    msg.header.stamp = stamp
    msg.data = bytes([value]) * (size[0] * size[1] * 3)
    return msg


def joint_state(stamp, positions) -> JointState:
    msg = JointState(name=list(ROBOT.joint_names), position=[float(v) for v in positions])
    msg.header.stamp = stamp
    return msg


class Feeder:
    """A background thread publishing camera frames and joint states at fixed rates, stamped now (what a camera
    driver and a joint_state_broadcaster do). `cameras[name] = False` silences one camera; `pose` can change."""

    def __init__(self, ros, camera_topics: dict[str, str], joints_topic: str, pose: np.ndarray,
                 camera_hz: float = 15.0, joints_hz: float = 50.0) -> None:
        self.ros, self.pose = ros, np.array(pose, dtype=np.float64)
        self.cams = {n: ros.publisher(Image, t, qos_profile_sensor_data) for n, t in camera_topics.items()}
        self.cameras = dict.fromkeys(camera_topics, True)
        self.joints = ros.publisher(JointState, joints_topic, 10)
        self.camera_period, self.joints_period = 1.0 / camera_hz, 1.0 / joints_hz
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        next_cam = next_js = time.monotonic()
        while not self._stop.is_set():
            now = time.monotonic()
            stamp = self.ros.probe.get_clock().now().to_msg()
            if now >= next_js:
                self.joints.publish(joint_state(stamp, self.pose))
                next_js += self.joints_period
            if now >= next_cam:
                for name, pub in self.cams.items():
                    if self.cameras[name]:
                        pub.publish(rgb_image(stamp))
                next_cam += self.camera_period
            self._stop.wait(max(0.0, min(next_cam, next_js) - time.monotonic()))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2.0)


# ---- (a) a burst of bad stamps ---------------------------------------------------------------------------------
def test_burst_of_duplicate_out_of_order_future_and_old_chunks_is_refused_never_executed_out_of_order(ros):
    rig = Rig(ros, mode="latest", staleness_timeout=1.0, max_lead=0.5)
    try:
        rig.commands.clear()
        deadline = time.monotonic() + 10
        while not rig.commands.messages and time.monotonic() < deadline:
            rig.publish_state(START)
            time.sleep(0.05)
        rig.commands.wait(lambda m: len(m) >= 3, timeout=10)  # holding the measured pose

        def rows(elbow_offset: float) -> np.ndarray:
            target = START.copy()
            target[ELBOW] += elbow_offset
            return np.tile(target, (30, 1))  # 30 × 50 ms: covers the whole observation window

        base = rig.now()
        # Only A and then B (newer) may ever be executed; each refused chunk carries a value that would show.
        burst = [
            (base, 0.10),           # A: valid
            (base, 0.40),           # duplicate of A's stamp
            (base - 0.02, 0.35),    # out of order: older than A
            (base + 5.0, 0.45),     # from the future (max_lead 0.5 s)
            (base - 100.0, 0.50),   # very old (staleness_timeout 1 s)
            (base + 0.01, 0.15),    # B: valid, newer than A
            (base + 0.005, 0.30),   # between A and B: out of order after B
        ]
        rig.commands.clear()
        for stamp, offset in burst:
            rig.publish_chunk(rows(offset), stamp=stamp)
        stats = rig.node.core.stats
        deadline = time.monotonic() + 5
        while stats.chunks_accepted + stats.chunks_rejected < len(burst) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert (stats.chunks_accepted, stats.chunks_rejected) == (2, 5)
        time.sleep(0.4)  # ≥ 30 ticks: enough to reach B at the velocity limit (0.0314 rad per tick)
        elbow = np.array([m.data[ELBOW] for m in rig.commands.messages]) - START[ELBOW]
        assert elbow.max() <= 0.15 + 1e-9, "a refused chunk was executed"
        assert np.all(np.diff(elbow) >= -1e-12), "the commands went back towards an older chunk"
        assert elbow[-1] == pytest.approx(0.15)
        status = rig.status(lambda s: int(values(s).get("chunks_rejected", "0")) == 5)
        assert "chunk stamped" in values(status)["last_error"]
    finally:
        rig.close()


# ---- (b) a model that outputs NaN or huge values -----------------------------------------------------------------
def test_model_with_nan_or_huge_outputs_never_makes_the_arm_leave_its_limits(ros, model_dir, tmp_path):
    broken = corrupt_model(model_dir, tmp_path / "broken")
    chunks = ros.subscribe(JointTrajectory, "/corft/action_chunk", 100)
    commands = ros.subscribe(Float64MultiArray, "/forward_position_controller/commands", 1000)
    diagnostics = ros.subscribe(DiagnosticArray, "/diagnostics", 100)
    executor = ros.add(ExecutorNode(context=ros.context, parameter_overrides=params(
        mode="temporal_ensembling", staleness_timeout=1.0)))
    policy = ros.add(PolicyNode(context=ros.context, parameter_overrides=params(
        model_path=str(broken), backend="torch", threads=1, rate_hz=10.0, instruction=INSTRUCTION,
        max_observation_age=2.0)))
    at_home = START.copy()
    at_home[0] = HOME[0]  # shoulder_pan exactly at the normalization mean: the corrupted model stays finite
    feeder = Feeder(ros, {c: f"/camera/{c}/image_raw" for c in ("front", "wrist")}, "/joint_states", at_home)
    try:
        chunks.wait(lambda m: len(m) >= 5, timeout=60)  # huge but finite chunks: executed, clamped
        elbow_targets = [p.positions[ELBOW] for p in chunks.messages[0].points]
        assert min(elbow_targets) > 1e4
        away = at_home.copy()
        away[0] += 0.2
        feeder.pose = away  # the model's output turns NaN
        latest_status(diagnostics, lambda s: s.name == "policy: inference"
                      and int(values(s)["nonfinite_outputs"]) >= 3 and "NaN/Inf" in s.message)
        feeder.pose = at_home
        published = len(chunks.messages)
        chunks.wait(lambda m: len(m) >= published + 3, timeout=10)  # chunks again
        time.sleep(0.3)
    finally:
        feeder.stop()
        remove_node(ros, policy)
        remove_node(ros, executor)
    sent = np.array([[p.positions for p in m.points] for m in chunks.messages])
    assert np.isfinite(sent).all(), "the policy published a NaN/Inf chunk"
    out = np.array([m.data for m in commands.messages])
    assert len(out) > 100
    assert np.isfinite(out).all()
    assert (out >= LOWER).all() and (out <= UPPER).all(), "a command left the position limits"
    assert out[:, ELBOW].max() > START[ELBOW] + 0.5  # it really was driven hard towards the limit
    assert executor.core.safety.position_clamps > 0
    assert policy.counters["nonfinite_outputs"] >= 3


# ---- (c) a camera stops publishing -------------------------------------------------------------------------------
def tagged_policy(ros, tag: str, model_dir: Path) -> PolicyNode:
    """A policy node on /<tag>/… topics at 10 Hz that refuses observations older than 0.5 s."""
    return ros.add(PolicyNode(
        context=ros.context, cli_args=["--ros-args", "-r", f"__node:=policy_{tag}"],
        parameter_overrides=params(
            model_path=str(model_dir), threads=1, rate_hz=10.0, instruction=INSTRUCTION, max_observation_age=0.5,
            camera_topic_format=f"/{tag}/camera/{{name}}/image_raw", joint_states_topic=f"/{tag}/joint_states",
            chunk_topic=f"/{tag}/action_chunk")))


def test_camera_that_stops_stops_the_chunks_is_named_and_chunks_resume(ros, model_dir):
    tag = "faultcam"
    cameras = [ros.add(CameraNode(
        context=ros.context, cli_args=["--ros-args", "-r", f"__node:=camera_{tag}_{name}"],
        parameter_overrides=params(name=name, input_topic=f"/{tag}/driver/{name}",
                                   topic=f"/{tag}/camera/{name}/image_raw", fps=0.0)))
        for name in ("front", "wrist")]
    chunks = ros.subscribe(JointTrajectory, f"/{tag}/action_chunk", 100)
    diagnostics = ros.subscribe(DiagnosticArray, "/diagnostics", 100)
    policy = tagged_policy(ros, tag, model_dir)
    feeder = Feeder(ros, {c: f"/{tag}/driver/{c}" for c in ("front", "wrist")}, f"/{tag}/joint_states", HOME)
    try:
        chunks.wait(lambda m: len(m) >= 3, timeout=20)
        feeder.cameras["wrist"] = False  # the wrist camera's driver stops
        stopped = time.monotonic()
        status = latest_status(diagnostics, lambda s: s.hardware_id == f"policy_{tag}"
                               and "camera 'wrist' missing" in s.message)
        assert f"/{tag}/camera/wrist/image_raw" in status.message and status.level == b"\x01"
        time.sleep(0.3)
        silent_from = len(chunks.messages)
        time.sleep(1.0)
        assert len(chunks.messages) == silent_from, "chunks kept coming without the wrist camera"
        camera_status = latest_status(diagnostics, lambda s: s.name == "camera: wrist"
                                      and f"no frames on /{tag}/driver/wrist" in s.message)
        assert camera_status.level == b"\x01"
        assert int(values(status)["missing_camera_wrist"]) > 0
        assert time.monotonic() - stopped < 15
        feeder.cameras["wrist"] = True  # the driver is back
        chunks.wait(lambda m: len(m) >= silent_from + 3, timeout=10)
        latest_status(diagnostics, lambda s: s.hardware_id == f"policy_{tag}" and s.message == "ok")
    finally:
        feeder.stop()
        remove_node(ros, policy)
        for node in cameras:
            remove_node(ros, node)


def test_video_file_that_ends_stops_the_chunks_and_both_nodes_name_the_camera(ros, model_dir, tmp_path):
    from test_camera_node import write_video

    tag = "faultfile"
    video = write_video(tmp_path / "front.avi", frames=45)  # 1.5 s at 30 fps, then the file ends
    camera = ros.add(CameraNode(
        context=ros.context, cli_args=["--ros-args", "-r", f"__node:=camera_{tag}_front"],
        parameter_overrides=params(name="front", source=str(video), loop=False, width=64, height=64, fps=30.0,
                                   topic=f"/{tag}/camera/front/image_raw")))
    chunks = ros.subscribe(JointTrajectory, f"/{tag}/action_chunk", 100)
    diagnostics = ros.subscribe(DiagnosticArray, "/diagnostics", 100)
    policy = tagged_policy(ros, tag, model_dir)
    feeder = Feeder(ros, {"wrist": f"/{tag}/camera/wrist/image_raw"}, f"/{tag}/joint_states", HOME)
    try:
        chunks.wait(lambda m: len(m) >= 1, timeout=20)  # the file plays: chunks flow
        camera_status = latest_status(diagnostics, lambda s: s.hardware_id == f"camera_{tag}_front"
                                      and "end of video file" in s.message)
        assert str(video) in camera_status.message
        status = latest_status(diagnostics, lambda s: s.hardware_id == f"policy_{tag}"
                               and "camera 'front' missing" in s.message)
        assert f"/{tag}/camera/front/image_raw" in status.message and status.level == b"\x01"
        time.sleep(0.3)
        silent_from = len(chunks.messages)
        time.sleep(1.0)
        assert len(chunks.messages) == silent_from, "chunks kept coming after the front camera's file ended"
    finally:
        feeder.stop()
        remove_node(ros, policy)
        remove_node(ros, camera)


# ---- (d) the disk nearly full ------------------------------------------------------------------------------------
def test_disk_nearly_full_stops_the_logger_cleanly_and_keeps_earlier_episodes(ros, tmp_path):
    topic = "/faultlog/frames"
    rosout = ros.subscribe(Log, "/rosout", 1000)
    events = ros.subscribe(String, "/corft/episode/events", 10)
    pub = ros.publisher(Image, topic, 100)  # holds all 20 frames of the first episode until the logger has them
    common = {"output_dir": str(tmp_path), "topics": [topic], "topic_types": [f"{topic}=sensor_msgs/msg/Image"],
              "optional_topics": [""], "flush_interval_s": 0.1}
    frame = rgb_image(ros.probe.get_clock().now().to_msg(), size=(240, 320))  # 230 kB

    def trigger(name: str):
        return ros.call(Trigger, f"/corft/episode/{name}", Trigger.Request())

    logger = ros.add(EpisodeLoggerNode(context=ros.context, parameter_overrides=params(min_free_bytes=0, **common)))
    try:
        ros.wait_for_subscribers(pub)
        assert trigger("start").success
        for _ in range(20):
            pub.publish(frame)
            time.sleep(0.01)
        deadline = time.monotonic() + 10
        while logger.writer_stats().messages < 20 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert trigger("stop").success
    finally:
        remove_node(ros, logger)
    (first,) = list_episodes(tmp_path)
    first_bytes = {p.name: p.read_bytes() for p in (first.path / "bag").iterdir()}

    # The next logger must keep 20 MB more free than there is now: writing frames crosses the line mid-episode.
    threshold = free_bytes(tmp_path) - 20_000_000
    logger = ros.add(EpisodeLoggerNode(context=ros.context,
                                       parameter_overrides=params(min_free_bytes=threshold, **common)))
    try:
        events.clear()
        assert trigger("start").success
        second = logger.current_episode
        deadline = time.monotonic() + 60
        while logger.current_episode is not None and time.monotonic() < deadline:
            pub.publish(frame)
            time.sleep(0.005)
        assert logger.current_episode is None, "the logger kept recording below min_free_bytes"
        events.wait(lambda m: [x.data for x in m] == ["start", "stop"], 5)  # the executor is told
        line = rosout.wait(lambda m: any("recording stopped: disk almost full" in x.msg for x in m), 10)
        (error,) = [x.msg for x in line if "recording stopped" in x.msg]
        assert "min_free_bytes" in error and str(tmp_path) in error and "\n" not in error
        refused = trigger("start")  # still too full: refused with the same reason, nothing created
        assert not refused.success and "disk almost full" in refused.message
    finally:
        remove_node(ros, logger)
    assert sorted(e.path for e in list_episodes(tmp_path)) == sorted([first.path, second])
    # the earlier episode is untouched and complete
    assert {p.name: p.read_bytes() for p in (first.path / "bag").iterdir()} == first_bytes
    assert bag_is_intact(first.path) and load_episode_metadata(first.path)["status"] == "stopped"
    with Reader(first.path / "bag") as reader:
        assert reader.message_count == 20
    # the cut episode is a closed, readable bag holding what was recorded, and says why it ended
    meta = load_episode_metadata(second)
    assert meta["status"] == "disk_full" and "min_free_bytes" in meta["error"]
    assert bag_is_intact(second)
    with Reader(second / "bag") as reader:
        assert reader.message_count == meta["topics"][topic]["count"] > 0


# ---- (e), (f) on the sim arm, slower than real time ---------------------------------------------------------------
@pytest.fixture(scope="module")
def slow_sim(ros):
    node = ros.add(SimArmNode(context=ros.context, parameter_overrides=params(
        seed=3, realtime_factor=0.3, camera_rate_hz=10.0)))
    yield node
    remove_node(ros, node)


def sim_policy(ros, model_dir: Path, rate_hz: float = 10.0) -> PolicyNode:
    return ros.add(PolicyNode(context=ros.context, parameter_overrides=params(
        model_path=str(model_dir), threads=1, rate_hz=rate_hz, instruction=INSTRUCTION, use_sim_time=True,
        max_observation_age=0.5)))


def sim_executor(ros) -> ExecutorNode:
    return ros.add(ExecutorNode(context=ros.context, parameter_overrides=params(
        mode="temporal_ensembling", staleness_timeout=0.5, use_sim_time=True)))


def watch_states(node: ExecutorNode, seconds: float) -> list[str]:
    seen, deadline = [], time.monotonic() + seconds
    while time.monotonic() < deadline:
        seen.append(node.core.state.value)
        time.sleep(0.02)
    return seen


def test_sim_slower_than_real_time_with_sim_time_times_nothing_out(ros, slow_sim, model_dir):
    clock = ros.subscribe(Clock, "/clock", 10)
    clock.wait(lambda m: len(m) >= 2, timeout=20)
    executor = sim_executor(ros)
    # 40 inferences per sim second = 12 per wall second; a wall-clock loop would run 40 per wall second
    policy = sim_policy(ros, model_dir, rate_hz=40.0)
    try:
        deadline = time.monotonic() + 30
        while executor.core.state.value != "tracking" and time.monotonic() < deadline:
            time.sleep(0.02)
        assert executor.core.state.value == "tracking"
        stats = executor.core.stats
        accepted, rejected, stale = stats.chunks_accepted, stats.chunks_rejected, stats.stale_holds
        skipped, inferences = policy.counters["skipped_missing_input"], policy.counters["inferences"]
        wall0, sim0 = time.time(), executor.get_clock().now().nanoseconds * 1e-9
        seen = watch_states(executor, 5.0)
        wall1, sim1 = time.time(), executor.get_clock().now().nanoseconds * 1e-9
        assert set(seen) == {"tracking"}, f"the executor left tracking: {sorted(set(seen))}"
        assert stats.stale_holds == stale and stats.chunks_rejected == rejected
        assert stats.chunks_accepted >= accepted + 10
        assert policy.counters["skipped_missing_input"] == skipped  # no input ever counted as too old
        # the policy plans at rate_hz of sim time, not of wall time (40 Hz of wall time would be ~200 inferences)
        assert policy.counters["inferences"] - inferences <= 40.0 * (sim1 - sim0) * 1.25 + 3
        # the sim really ran slower than real time, and its clock is far behind the wall clock: a wall-clock
        # executor would have refused every chunk as older than its 0.5 s staleness timeout
        assert (sim1 - sim0) / (wall1 - wall0) < 0.6
        assert wall1 - sim1 > 1.0
    finally:
        remove_node(ros, policy)
        remove_node(ros, executor)


def test_policy_destroyed_mid_run_the_executor_holds_then_a_new_policy_resumes(ros, slow_sim, model_dir):
    chunks = ros.subscribe(JointTrajectory, "/corft/action_chunk", 100)
    commands = ros.subscribe(Float64MultiArray, "/forward_position_controller/commands", 1000)
    executor = sim_executor(ros)
    policy = sim_policy(ros, model_dir)
    try:
        deadline = time.monotonic() + 30
        while executor.core.state.value != "tracking" and time.monotonic() < deadline:
            time.sleep(0.02)
        assert executor.core.state.value == "tracking"
        time.sleep(0.5)
        remove_node(ros, policy)  # the policy dies mid-run
        last = chunks.last.header.stamp
        last_stamp = last.sec + last.nanosec * 1e-9
        deadline = time.monotonic() + 10
        while executor.core.state.value != "stale" and time.monotonic() < deadline:
            time.sleep(0.005)
        assert executor.core.state.value == "stale"
        stale_at = executor.get_clock().now().nanoseconds * 1e-9  # sim time
        # held within the staleness timeout of the last chunk's stamp (+ two ticks and scheduling, in sim time)
        assert stale_at - last_stamp < 0.5 + 0.1
        commands.clear()
        time.sleep(1.0)
        held = np.array([m.data for m in commands.messages])
        assert len(held) > 5 and np.ptp(held, axis=0).max() == 0.0, "the command moved while holding"
        accepted = executor.core.stats.chunks_accepted
        policy = sim_policy(ros, model_dir)  # a new policy node
        deadline = time.monotonic() + 30
        while executor.core.state.value != "tracking" and time.monotonic() < deadline:
            time.sleep(0.02)
        assert executor.core.state.value == "tracking"
        assert set(watch_states(executor, 1.5)) == {"tracking"}
        assert executor.core.stats.chunks_accepted > accepted + 3
    finally:
        remove_node(ros, policy)
        remove_node(ros, executor)


def stamp_ns(stamp) -> int:
    return stamp.sec * 10**9 + stamp.nanosec


def _recorded_stamps(folder: Path) -> list[int]:
    try:
        (ep,) = [p for p in folder.iterdir() if p.is_dir()]
        return [stamp_ns(JOINT_STATE_TS.deserialize_cdr(raw, t).header.stamp) for _, t, _, raw in read_episode(ep)]
    except Exception:  # a chunk being written right now: not readable yet
        return []


def test_a_logger_process_paused_for_seconds_loses_no_joint_state_of_the_sim_arm(ros, slow_sim, tmp_path):
    """A logger stalled by the OS (swap, a GC pause, a busy 2-core machine) gets every /joint_states message the sim
    arm published meanwhile: the arm's reliable publisher keeps enough history for the logger to catch up."""
    seen = ros.subscribe(JointState, "/joint_states", 5000)
    cmd = [sys.executable, "-m", "corft_ros.nodes.episode_logger", "--ros-args",
           "-p", f"output_dir:={tmp_path}", "-p", "autostart:=true", "-p", "flush_interval_s:=0.1",
           "-p", "instruction:=paused logger", "-p", "topics:=[/joint_states]", "-p", "optional_topics:=['']",
           "-p", "topic_types:=[/joint_states=sensor_msgs/msg/JointState]"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        # recording for real before the pause: a reader not yet matched to the arm's publisher gets nothing older
        wait_until(lambda: len(_recorded_stamps(tmp_path)) >= 10, 60, what="10 joint states recorded")
        os.kill(proc.pid, signal.SIGSTOP)
        time.sleep(5.0)  # the slow sim (0.3x real time) publishes ~150 joint states meanwhile
        os.kill(proc.pid, signal.SIGCONT)
        time.sleep(0.3)
        resumed = stamp_ns(seen.last.header.stamp)
        # A reliable reader delivers in order: what came after the pause waits for the resent samples (a heartbeat).
        wait_until(lambda: max(_recorded_stamps(tmp_path), default=0) >= resumed, 20,
                   what="the logger caught up with the joint states published while it was paused")
        proc.send_signal(signal.SIGINT)  # a clean stop closes the episode
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    stderr = proc.stderr.read().decode()
    assert proc.returncode == 0 and "Traceback" not in stderr, stderr[-2000:]
    (ep,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    assert load_episode_metadata(ep)["status"] == "stopped"  # Ctrl-C closed the episode: metadata.yaml written
    recorded_ns = _recorded_stamps(tmp_path)
    first, last = min(recorded_ns), max(recorded_ns)
    window = [s for s in (stamp_ns(m.header.stamp) for m in seen.messages) if first <= s <= last]
    missing = sorted(set(window) - set(recorded_ns))
    assert len(window) > 100, f"only {len(window)} joint states in the recorded window"
    assert not missing, f"{len(missing)} of {len(window)} joint states published while recording are not in the bag"
    assert recorded_ns == sorted(recorded_ns)
