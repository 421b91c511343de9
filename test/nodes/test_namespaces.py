"""Two arms side by side: the same graph under two ROS namespaces in one DDS domain, each commanding only its own
arm, and episodes recorded under a namespace read back under the usual topic names."""

from __future__ import annotations

import time

import numpy as np
import pytest
from builtin_interfaces.msg import Duration
from ros_harness import wait_until
from sensor_msgs.msg import JointState
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from corft_ros.core.episodes import EpisodeBag, find_bags
from corft_ros.core.graph import Graph, load_graph
from corft_ros.core.robot import ConfigError, load_robot_config
from corft_ros.nodes.compose import ComposedGraph

ROBOT = load_robot_config()


def _arm(namespace: str, episodes) -> Graph:
    """The deploy graph's sim arm, executor and logger under `namespace` (no policy: the test sends chunks). Both
    sims pace to wall time and the other nodes use wall time: two sims would publish two /clock streams."""
    graph = load_graph("deploy", {"namespace": namespace, "cameras": "front", "output_dir": str(episodes)})
    nodes = []
    for spec in graph.nodes:
        if spec.name not in ("sim_arm", "executor", "episode_logger"):
            continue
        params = dict(spec.parameters)
        params["use_sim_time"] = False
        if spec.name == "sim_arm":
            params.update(image_width=16, image_height=16, camera_rate_hz=2.0)
        if spec.name == "episode_logger":
            params.update(topics=["joint_states"], optional_topics=["forward_position_controller/commands"])
        nodes.append(type(spec)(name=spec.name, executable=spec.executable, parameters=params))
    return Graph(name=f"arm-{namespace}", source=graph.source, arguments=graph.arguments, nodes=tuple(nodes))


def _chunk(stamp_ns: int, start, delta) -> JointTrajectory:
    msg = JointTrajectory()
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp_ns, 1_000_000_000)
    msg.joint_names = list(ROBOT.joint_names)
    for i in range(10):
        ns = int(round(i * ROBOT.action_dt * 1e9))
        msg.points.append(JointTrajectoryPoint(positions=[float(v) for v in start + delta],
                                               time_from_start=Duration(sec=ns // 10**9, nanosec=ns % 10**9)))
    return msg


def test_two_arms_under_two_namespaces_each_follow_only_their_own_chunks(ros, tmp_path):
    (tmp_path / "left").mkdir()
    (tmp_path / "right").mkdir()
    left = right = None
    try:
        left = ComposedGraph(_arm("left", tmp_path / "left"), context=ros.context)
        right = ComposedGraph(_arm("right", tmp_path / "right"), context=ros.context)
        assert left.nodes["executor"].get_namespace() == "/left"
        states = {ns: ros.subscribe(JointState, f"/{ns}/joint_states", 100) for ns in ("left", "right")}
        for log in states.values():
            log.wait(lambda m: len(m) >= 20, timeout=30.0)
        assert ros.call(Trigger, "/left/corft/episode/start", Trigger.Request()).success

        chunks = ros.publisher(JointTrajectory, "/left/corft/action_chunk")
        ros.wait_for_subscribers(chunks)
        start = {ns: np.array(states[ns].last.position) for ns in states}
        delta = np.zeros(ROBOT.dof)
        delta[0] = 0.25
        deadline = time.monotonic() + 30.0
        while abs(states["left"].last.position[0] - start["left"][0] - 0.25) > 0.03:
            assert time.monotonic() < deadline, "the left arm never reached its chunk's target"
            chunks.publish(_chunk(time.time_ns(), start["left"], delta))  # wall time: the nodes' clock here
            time.sleep(0.1)
        assert abs(states["right"].last.position[0] - start["right"][0]) < 0.01  # the right arm never moved

        assert ros.call(Trigger, "/left/corft/episode/stop", Trigger.Request()).success
        wait_until(lambda: find_bags(tmp_path / "left"), timeout=20.0, what="the left episode's bag")
        bag = find_bags(tmp_path / "left")[0]
        wait_until(lambda: (bag / "metadata.yaml").is_file(), timeout=20.0, what="the bag's metadata")
        from rosbags.rosbag2 import Reader

        with Reader(bag) as raw:
            recorded = {c.topic for c in raw.connections}
        assert "/left/joint_states" in recorded  # the bag holds the real (resolved) names
        with EpisodeBag(bag, canonical_names=True) as reader:
            assert "/joint_states" in reader.topics()  # the trainer reads them without the namespace
            assert sum(1 for _ in reader.messages({"/joint_states"})) > 0
        assert not find_bags(tmp_path / "right")
    finally:
        for graph in (left, right):
            if graph is not None:
                graph.shutdown()


def test_a_bad_namespace_is_a_one_line_error():
    with pytest.raises(ConfigError, match="not a valid ROS namespace"):
        load_graph("deploy", {"namespace": "left arm"})
    assert load_graph("deploy", {"namespace": "/left/"}).namespace == "/left"
    assert load_graph("deploy").namespace == ""
