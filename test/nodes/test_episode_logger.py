"""episode_logger over real DDS: live publishers -> MCAP bag read back with rosbags; SIGKILL; bad input."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from geometry_msgs.msg import PoseStamped
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from ros_harness import wait_until
from rosbags.rosbag2 import Reader
from rosbags.typesys import Stores, get_typestore
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import String
from std_srvs.srv import SetBool, Trigger

from corft_ros.core.episodes import list_episodes, load_episode_metadata, read_episode
from corft_ros.core.episodes.reader import bag_is_intact
from corft_ros.core.robot import ConfigError
from corft_ros.nodes.episode_logger import EpisodeLoggerNode

TS = get_typestore(Stores.ROS2_KILTED)
ROOT = Path(__file__).resolve().parents[2]
INSTRUCTION_QOS = QoSProfile(
    depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
)


def make_logger(ros, out: Path, optional_topics: list[str] | None = None, **params) -> EpisodeLoggerNode:
    overrides = [Parameter("output_dir", value=str(out))] + [Parameter(k, value=v) for k, v in params.items()]
    # rclpy cannot override a list parameter with [] (no element type): [""] means none.
    overrides.append(Parameter("optional_topics", value=optional_topics or [""]))
    return ros.add(EpisodeLoggerNode(context=ros.context, parameter_overrides=overrides))


def trigger(ros, name: str):
    return ros.call(Trigger, f"/corft/episode/{name}", Trigger.Request())


def label(ros, success: bool):
    return ros.call(SetBool, "/corft/episode/label", SetBool.Request(data=success))


def joint_state(i: int) -> JointState:
    msg = JointState(name=["shoulder_pan_joint", "finger_joint"], position=[0.001 * i, 0.0])
    msg.header.stamp.sec, msg.header.stamp.nanosec = 1000 + i, i
    return msg


def image(i: int) -> Image:
    msg = Image(height=4, width=6, encoding="rgb8", step=18, data=bytes([i % 256]) * 72)
    msg.header.stamp.sec, msg.header.stamp.nanosec = 2000 + i, i
    return msg


def test_records_live_topics_and_bag_reads_back(ros, tmp_path: Path) -> None:
    instr_pub = ros.publisher(String, "/corft/instruction", INSTRUCTION_QOS)
    instr_pub.publish(String(data="stack the red cube"))
    js_pub = ros.publisher(JointState, "/joint_states", 100)
    img_pub = ros.publisher(Image, "/camera/front/image_raw", qos_profile_sensor_data)
    pose_pub = ros.publisher(PoseStamped, "/extra/pose", 10)  # no configured type: typed from the graph
    events = ros.subscribe(String, "/corft/episode/events", 10)
    topics = ["/joint_states", "/camera/front/image_raw", "/corft/instruction", "/extra/pose",
              "/never/appears", "/bad/type"]
    logger = make_logger(
        ros, tmp_path, topics=topics, operator="bob", topic_wait_s=1.0, optional_topics=["/maybe/later"],
        topic_types=["/joint_states=sensor_msgs/msg/JointState", "/camera/front/image_raw=sensor_msgs/msg/Image",
                     "/corft/instruction=std_msgs/msg/String", "/never/appears=std_msgs/msg/String",
                     "/bad/type=nope_msgs/msg/Thing"],
    )
    try:
        for pub in (js_pub, img_pub, instr_pub):
            ros.wait_for_subscribers(pub, 2 if pub is instr_pub else 1)
        wait_until(lambda: "/extra/pose" in logger._subscribed, 10, what="/extra/pose typed from the graph")
        wait_until(lambda: logger._latest_instruction == "stack the red cube", 10, what="instruction")
        res = trigger(ros, "start")
        assert res.success, res.message
        events.wait(lambda m: [x.data for x in m] == ["start"], 5)
        n = 60
        for i in range(n):
            js_pub.publish(joint_state(i))
            if i % 3 == 0:
                img_pub.publish(image(i))
            if i % 20 == 0:
                pose_pub.publish(PoseStamped())
            time.sleep(0.005)

        def counts() -> dict[str, int]:
            return {t: s.count for t, s in logger._writer.stats().topics.items()}

        wait_until(lambda: counts().get("/joint_states") == n and counts().get("/camera/front/image_raw") == n // 3
                   and counts().get("/extra/pose") == 3, 10, what="all messages recorded")
        time.sleep(1.2)  # past topic_wait_s: /never/appears is reported as missing
        res = trigger(ros, "stop")
        assert res.success, res.message
        events.wait(lambda m: [x.data for x in m] == ["start", "stop"], 5)
        assert label(ros, True).success  # labels the last (closed) episode
    finally:
        ros.remove(logger)

    (ep,) = [i.path for i in list_episodes(tmp_path)]
    assert ep.name.endswith("_stack-the-red-cube")
    assert bag_is_intact(ep)
    with Reader(ep / "bag") as reader:
        types = {c.topic: c.msgtype for c in reader.connections}
        assert types == {
            "/joint_states": "sensor_msgs/msg/JointState", "/camera/front/image_raw": "sensor_msgs/msg/Image",
            "/corft/instruction": "std_msgs/msg/String", "/extra/pose": "geometry_msgs/msg/PoseStamped",
            "/never/appears": "std_msgs/msg/String",
        }
        got: dict[str, list] = {}
        last_t = 0
        for conn, t_ns, raw in reader.messages():
            assert t_ns >= last_t
            last_t = t_ns
            got.setdefault(conn.topic, []).append(TS.deserialize_cdr(raw, conn.msgtype))
        qos = {c.topic: c.ext.offered_qos_profiles for c in reader.connections}
    # Every message, with its stamps and contents.
    assert [(m.header.stamp.sec, m.header.stamp.nanosec) for m in got["/joint_states"]] == [
        (1000 + i, i) for i in range(n)
    ]
    assert [m.position[0] for m in got["/joint_states"]] == pytest.approx([0.001 * i for i in range(n)])
    assert [m.header.stamp.sec for m in got["/camera/front/image_raw"]] == [2000 + i for i in range(0, n, 3)]
    assert all(bytes(m.data) == bytes([m.header.stamp.nanosec % 256]) * 72 for m in got["/camera/front/image_raw"])
    # The transient-local instruction published before the episode is in the bag (late-joiner QoS).
    assert [m.data for m in got["/corft/instruction"]] == ["stack the red cube"]
    assert qos["/corft/instruction"][0].durability.name == "TRANSIENT_LOCAL"
    meta = load_episode_metadata(ep)
    assert meta["instruction"] == "stack the red cube" and meta["operator"] == "bob"
    assert meta["success"] is True and meta["cycle_time_s"] > 0 and meta["status"] == "stopped"
    assert meta["robot"] == "ur5e_robotiq_2f85" and meta["joint_names"][-1] == "finger_joint"
    assert meta["topics"]["/joint_states"] == {"msgtype": "sensor_msgs/msg/JointState", "count": n, "dropped": 0,
                                               "bytes": meta["topics"]["/joint_states"]["bytes"]}
    assert meta["extra"]["missing_topics"] == ["/never/appears"]  # not /maybe/later: optional
    custom = yaml.safe_load((ep / "bag" / "metadata.yaml").read_text())["rosbag2_bagfile_information"]["custom_data"]
    assert custom["corft_ros.success"] == "true" and custom["corft_ros.instruction"] == "stack the red cube"
    assert "/bad/type" in logger._failed_types and "nope_msgs/msg/Thing" in logger._failed_types["/bad/type"]


def test_bad_service_calls(ros, tmp_path: Path) -> None:
    logger = make_logger(
        ros, tmp_path, topics=["/joint_states"], topic_types=["/joint_states=sensor_msgs/msg/JointState"]
    )
    try:
        res = trigger(ros, "stop")
        assert not res.success and "not recording" in res.message
        res = label(ros, True)
        assert not res.success and "no episode to label" in res.message
        assert trigger(ros, "start").success
        res = trigger(ros, "start")
        assert not res.success and "already recording" in res.message
        assert label(ros, False).success
        assert trigger(ros, "stop").success
        (info,) = list_episodes(tmp_path)
        assert info.success is False
        # The output folder disappears between episodes: start says so, the node keeps running.
        os.rename(tmp_path, tmp_path.with_name(tmp_path.name + "-moved"))
        res = trigger(ros, "start")
        assert not res.success and "does not exist" in res.message and str(tmp_path) in res.message
    finally:
        ros.remove(logger)


def test_disk_guard_refuses_start(ros, tmp_path: Path) -> None:
    logger = make_logger(ros, tmp_path, topics=["/joint_states"], min_free_bytes=1 << 60)
    try:
        res = trigger(ros, "start")
        assert not res.success and "disk almost full" in res.message and "min_free_bytes" in res.message
        assert list_episodes(tmp_path) == []
    finally:
        ros.remove(logger)


def test_bad_parameters_refuse_to_start(ros, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    cases = [
        ({"output_dir": str(blocker / "below")}, "cannot create output folder .*a-file/below"),
        ({"output_dir": str(blocker)}, "is not a folder"),
        ({"output_dir": str(tmp_path), "compression": "lz5"}, "compression"),
        ({"output_dir": str(tmp_path), "topic_types": ["/x"]}, "topic_types: '/x'"),
        ({"output_dir": str(tmp_path), "topics": ["joint states"]}, "not a valid topic name"),
        ({"output_dir": str(tmp_path), "queue_max_bytes": 0}, "queue_max_bytes"),
    ]
    for params, match in cases:
        overrides = [Parameter(k, value=v) for k, v in params.items()]
        with pytest.raises(ConfigError, match=match):
            EpisodeLoggerNode(context=ros.context, parameter_overrides=overrides)


def test_a_missing_output_folder_is_created_at_start(ros, tmp_path: Path) -> None:
    """`ros2 launch corft_ros deploy.launch.py` from a folder without ./episodes once lost the logger (exit 2)."""
    out = tmp_path / "new" / "episodes"
    logger = make_logger(ros, out, topics=["/joint_states"])
    try:
        assert out.is_dir()
        assert trigger(ros, "start").success
        assert trigger(ros, "stop").success
        assert len(list_episodes(out)) == 1
    finally:
        ros.remove(logger)


def _readable_count(episode: Path) -> int:
    try:
        return sum(1 for _ in read_episode(episode))
    except Exception:  # a chunk being written right now: not readable yet
        return 0


def test_sigkill_mid_episode_leaves_readable_bag_and_cli_repair(ros, tmp_path: Path) -> None:
    # The publisher keeps all 300 in its history: a reliable writer with a shorter KEEP_LAST history drops samples
    # its reader has not acknowledged yet, which a logger process still starting up on a busy 2-core machine may not.
    pub = ros.publisher(JointState, "/joint_states", 1000)
    cmd = [sys.executable, "-m", "corft_ros.nodes.episode_logger", "--ros-args",
           "-p", f"output_dir:={tmp_path}", "-p", "autostart:=true", "-p", "flush_interval_s:=0.1",
           "-p", "instruction:=killed mid episode",
           "-p", "topics:=[/joint_states]", "-p", "optional_topics:=['']",
           "-p", "topic_types:=[/joint_states=sensor_msgs/msg/JointState]"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    sent = 0
    try:
        ros.wait_for_subscribers(pub, 1, timeout=30)
        wait_until(lambda: any(tmp_path.glob("*/bag/*.mcap")), 20, what="episode bag created")
        for i in range(300):
            pub.publish(joint_state(i))
            sent += 1
            time.sleep(0.004)
        # Every message published is in a flushed chunk before the kill (flushes every 0.1 s; a loaded machine may
        # take longer than a fixed sleep, so poll the partial bag as a crash would leave it).
        bag_dir = next(tmp_path.glob("*/bag")).parent
        counts = [0]
        try:
            wait_until(lambda: counts.append(_readable_count(bag_dir)) or counts[-1] >= sent, 20)
        except TimeoutError:
            pytest.fail(f"{max(counts)} of {sent} messages readable in the partial bag after 20 s")
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    (ep,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    assert not (ep / "bag" / "metadata.yaml").exists()
    msgs = list(read_episode(ep))
    assert len(msgs) == sent
    stamps = [TS.deserialize_cdr(raw, t).header.stamp.sec for _, t, _, raw in msgs]
    assert stamps == [1000 + i for i in range(sent)]
    out = subprocess.run([str(Path(sys.executable).parent / "corft-ros"), "bag", "repair", str(ep)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "repaired" in out.stdout
    with Reader(ep / "bag") as reader:
        assert reader.message_count == sent
    meta = load_episode_metadata(ep)
    assert meta["status"] == "repaired" and meta["instruction"] == "killed mid episode"
    assert meta["topics"]["/joint_states"]["count"] == sent


@pytest.mark.parametrize("writer", ["thread", "process"])
def test_nothing_is_lost_from_a_joint_state_broadcaster_and_two_cameras_at_their_default_qos(monkeypatch,
                                                                                           writer: str) -> None:
    """The nominal load in small, from separate processes as real drivers publish: /joint_states at 500 Hz with
    joint_state_broadcaster's QoS (rclcpp::SystemDefaultsQoS: reliable, keep-last, the middleware's depth) and two
    usb_cam-like cameras (reliable, depth 100, 640x480 rgb8 at 30 fps) for 3 s: every message is recorded."""
    import argparse

    from corft_ros.measure.logger import run_bench

    monkeypatch.setenv("ROS_DOMAIN_ID", os.environ.get("ROS_DOMAIN_ID", "0"))  # run_bench picks its own domain
    args = argparse.Namespace(seconds=3.0, ramp_seconds=0.0, width=640, height=480, compression="none", js_depth=0,
                              runs=1, hog=0, camera_qos="reliable", output="", json=True, writers=writer)
    run = run_bench(args)["nominal"]["per_run"][0]
    assert run["topics"]["/joint_states"]["published"] > 1000
    assert all(t["published"] > 60 for name, t in run["topics"].items() if name.startswith("/camera"))
    assert run["dropped"] == 0, run["topics"]


def test_takeovers_during_an_episode_become_its_intervention_segments(ros, tmp_path: Path) -> None:
    """The executor's latched corft/intervention (Bool): the state an episode starts in and every change during it
    are in the bag, and episode.yaml / `corft-ros bag ls` say how many takeovers, how long and when."""
    from std_msgs.msg import Bool

    from corft_ros.core.episodes.interventions import segments

    assert segments([(12.0, False), (13.0, True), (14.5, False)], 10.0, 20.0, engaged_at_start=True) == [
        (0.0, 2.0), (3.0, 4.5)]
    assert segments([(11.0, True)], 10.0, 12.5) == [(1.0, 2.5)] and segments([], 10.0, 12.0) == []
    # its own namespace: the session's other tests leave latched publishers of /corft/intervention behind
    ns = "/takeover_log"
    state = ros.publisher(Bool, f"{ns}/corft/intervention", INSTRUCTION_QOS)  # latched, as the executor publishes it
    state.publish(Bool(data=True))  # an operator already holds the arm when the episode starts
    out = tmp_path / "episodes"
    logger = ros.add(EpisodeLoggerNode(context=ros.context, cli_args=["--ros-args", "-r", f"__ns:={ns}"],
                                       parameter_overrides=[
        Parameter("output_dir", value=str(out)), Parameter("topics", value=[""]),
        Parameter("optional_topics", value=["corft/intervention"]),
        Parameter("topic_types", value=["corft/intervention=std_msgs/msg/Bool"])]))

    def call(name: str):
        return ros.call(Trigger, f"{ns}/corft/episode/{name}", Trigger.Request())

    try:
        wait_until(lambda: logger._book.intervening, what="the latched state")
        assert call("start").success
        time.sleep(0.2)  # the takeover lasts a while
        state.publish(Bool(data=False))
        wait_until(lambda: not logger._book.intervening)
        time.sleep(0.1)
        state.publish(Bool(data=True))
        wait_until(lambda: logger._book.intervening)
        time.sleep(0.1)
        state.publish(Bool(data=False))
        wait_until(lambda: not logger._book.intervening)
        assert call("stop").success
        episode = list_episodes(out)[0]
        meta = load_episode_metadata(episode.path)
        takeovers = meta["extra"]["interventions"]
        assert takeovers["count"] == 2 and takeovers["segments"][0][0] == 0.0
        assert takeovers["segments"][0][1] >= 0.2 and takeovers["segments"][1][1] - takeovers["segments"][1][0] >= 0.099
        assert 0.299 <= takeovers["seconds"] < 5.0 and episode.interventions == 2
        values = [TS.deserialize_cdr(raw, "std_msgs/msg/Bool").data for raw in _messages(episode.path,
                                                                                         f"{ns}/corft/intervention")]
        assert values == [True, False, True, False]  # the state at the start, then every change
        listing = subprocess.run([sys.executable, "-m", "corft_ros.cli", "bag", "ls", str(out)], capture_output=True,
                                 text=True, timeout=60)
        assert "takeovers" in listing.stdout.splitlines()[0] and " 2  stopped" in listing.stdout
    finally:
        ros.remove(logger)


def _messages(episode: Path, topic: str) -> list[bytes]:
    with Reader(episode / "bag") as reader:
        connections = [c for c in reader.connections if c.topic == topic]
        return [raw for _c, _t, raw in reader.messages(connections=connections)]
