"""The driver of `corft-ros measure soak`: a node in an rclpy context of its own, in the soak's process, that watches
every command the executor sends (limit violations, non-finite values), the chunks the policy publishes and the
nodes' /diagnostics, and calls the sim's and the episode logger's services."""

from __future__ import annotations

import math
import threading
import time

from corft_ros.core import topics as topic_names


# ---- the driver ----------------------------------------------------------------------------------------------------
class _Driver:
    """Watches commands and diagnostics, calls the episode and sim services (its own rclpy context)."""

    def __init__(self, robot) -> None:
        import numpy as np
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.node import Node
        from std_msgs.msg import Float64MultiArray
        from trajectory_msgs.msg import JointTrajectory

        from corft_ros.nodes.common import make_executor
        from corft_ros.nodes.qos import RECORDED

        self.np = np
        self.context = rclpy.Context()
        rclpy.init(args=[], context=self.context)
        self.node = Node("soak_driver", context=self.context)
        self.lower, self.upper = robot.lower, robot.upper
        self.lock = threading.Lock()
        self.commands = 0
        self.violations = 0
        self.nonfinite = 0
        self.chunks_seen = 0
        self.status: dict[str, dict[str, str]] = {}  # diagnostic status name -> values (latest)
        self.p99_max = 0.0
        self.max_period_error = 0.0
        self.rtf: list[float] = []  # the sim's real-time factor, one per diagnostic (1 Hz)
        commands = topic_names.controller_commands(topic_names.FORWARD_CONTROLLER)
        self.node.create_subscription(Float64MultiArray, commands, self._on_command, RECORDED)
        self.node.create_subscription(JointTrajectory, topic_names.ACTION_CHUNK, self._on_chunk, RECORDED)
        self.node.create_subscription(DiagnosticArray, topic_names.DIAGNOSTICS, self._on_diagnostics, RECORDED)
        self.executor = make_executor(self.context, threads=2)
        self.executor.add_node(self.node)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        from corft_ros.nodes.common import spin

        spin(self.executor, self.context, self._stop)

    def _on_command(self, msg) -> None:
        q = self.np.asarray(msg.data, dtype=float)
        with self.lock:
            self.commands += 1
            if q.shape != self.lower.shape or not self.np.isfinite(q).all():
                self.nonfinite += 1
            elif (q < self.lower).any() or (q > self.upper).any():
                self.violations += 1

    def _on_chunk(self, _msg) -> None:
        with self.lock:
            self.chunks_seen += 1

    def _on_diagnostics(self, msg) -> None:
        with self.lock:
            for status in msg.status:
                values = {kv.key: kv.value for kv in status.values}
                values["_message"] = status.message
                self.status[status.name] = values
                if status.name == "sim_arm":
                    self.rtf.append(_float(values.get("real_time_factor")))
                if status.name == "executor":
                    self.p99_max = max(self.p99_max, _float(values.get("period_error_p99_ms")))
                    self.max_period_error = max(self.max_period_error, _float(values.get("period_error_max_ms")))

    def call(self, srv_type, name: str, request, timeout: float = 30.0):
        client = self.node.create_client(srv_type, name)
        try:
            if not client.wait_for_service(timeout_sec=timeout):
                raise RuntimeError(f"service {name} not available within {timeout:.0f} s")
            future = client.call_async(request)
            deadline = time.monotonic() + timeout
            while not future.done():
                if time.monotonic() > deadline:
                    raise RuntimeError(f"service {name} did not answer within {timeout:.0f} s")
                time.sleep(0.01)
            return future.result()
        finally:
            self.node.destroy_client(client)

    def executor_values(self) -> dict[str, str]:
        with self.lock:
            return dict(self.status.get("executor", {}))

    def snapshot(self) -> dict:
        """What it has seen so far: command counts, the executor's worst period errors, chunks, the policy's latest
        diagnostics and the sim's real-time factors (those above 0)."""
        with self.lock:
            return {"commands": self.commands, "violations": self.violations, "nonfinite": self.nonfinite,
                    "p99_max": self.p99_max, "max_period_error": self.max_period_error,
                    "chunks_seen": self.chunks_seen, "policy": dict(self.status.get("policy: inference", {})),
                    "rtf": [x for x in self.rtf if x > 0]}

    def close(self) -> None:
        import rclpy

        self._stop.set()
        self._thread.join(timeout=2.0)
        self.executor.shutdown(timeout_sec=1.0)
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)


def _float(value) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return 0.0
    return number if math.isfinite(number) else 0.0

