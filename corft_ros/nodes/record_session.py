"""The rclpy side of `corft-ros record`: is a robot there, and the record graph composed in the CLI's process with a
helper node that hears /sim/success, latches the task instruction and resets the sim."""

from __future__ import annotations

import time

import rclpy
from std_msgs.msg import Bool, String
from std_srvs.srv import Trigger

from corft_ros.core import topics
from corft_ros.core.graph import Graph
from corft_ros.nodes.compose import ComposedGraph
from corft_ros.nodes.qos import LATCHED, RELIABLE


def robot_present(seconds: float = 2.0) -> bool:
    """True when something already publishes /joint_states (a real arm or another sim)."""
    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        node = rclpy.create_node("record_probe", context=context)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if node.count_publishers(topics.JOINT_STATES):
                return True
            time.sleep(0.1)
        return False
    finally:
        rclpy.try_shutdown(context=context)


class RecordSession:
    """The record graph spinning in this process (its `logger` and `teleop` nodes), plus the CLI's helper node.
    Composing the graph raises ConfigError for a bad graph; `close()` takes it all down."""

    def __init__(self, graph: Graph, task: str) -> None:
        self.composed = ComposedGraph(graph)
        self.logger = self.composed.nodes["episode_logger"]
        self.teleop = self.composed.nodes["teleop"]
        self.success = False  # the sim's last /sim/success
        self._helper = rclpy.create_node("record_cli", context=self.composed.context)
        self._helper.create_subscription(Bool, topics.SIM_SUCCESS, self._on_success, RELIABLE)
        self._helper.create_publisher(String, topics.INSTRUCTION, LATCHED).publish(String(data=task))
        self._reset = self._helper.create_client(Trigger, topics.SIM_RESET)
        self.composed.executor.add_node(self._helper)

    def _on_success(self, msg: Bool) -> None:
        self.success = bool(msg.data)

    def reset_sim(self) -> None:
        """Calls /sim/reset and waits for the post-reset state to reach every node; RuntimeError when it fails."""
        self.success = False
        if not self._reset.wait_for_service(timeout_sec=10.0):
            raise RuntimeError("/sim/reset is not available")
        future = self._reset.call_async(Trigger.Request())
        deadline = time.monotonic() + 30
        while not future.done() and time.monotonic() < deadline:
            time.sleep(0.02)
        if not future.done() or not future.result().success:
            raise RuntimeError(f"/sim/reset failed: {future.result().message if future.done() else 'timeout'}")
        time.sleep(0.3)  # let the post-reset state reach every node
        self.success = False

    def close(self) -> None:
        self.composed.executor.remove_node(self._helper)
        self._helper.destroy_node()
        self.composed.shutdown()
