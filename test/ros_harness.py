"""Real-ROS test harness: rclpy over Fast DDS on loopback, nodes spun in a background executor."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from typing import Any

import rclpy
from rclpy.node import Node
from rclpy.qos import QoSProfile, qos_profile_sensor_data

from corft_ros.nodes.common import make_executor, spin


class MessageLog:
    """Messages received on one topic, thread-safe; `wait` blocks until a predicate holds."""

    def __init__(self) -> None:
        self.messages: list[Any] = []
        self.stamps: list[float] = []
        self._cond = threading.Condition()

    def append(self, msg: Any) -> None:
        with self._cond:
            self.messages.append(msg)
            self.stamps.append(time.monotonic())
            self._cond.notify_all()

    def wait(self, predicate: Callable[[list[Any]], bool] = bool, timeout: float = 10.0) -> list[Any]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate(self.messages):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"condition not met within {timeout:.1f}s ({len(self.messages)} messages)")
                self._cond.wait(remaining)
            return list(self.messages)

    @property
    def last(self) -> Any:
        with self._cond:
            return self.messages[-1] if self.messages else None

    def clear(self) -> None:
        with self._cond:
            self.messages.clear()
            self.stamps.clear()


class RosHarness:
    def __init__(self, num_threads: int = 4, domain_id: int | None = None) -> None:
        """`domain_id`: a DDS domain of its own (a graph started in a subprocess with that ROS_DOMAIN_ID); default:
        the session's (ROS_DOMAIN_ID, set by conftest.py)."""
        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=domain_id)
        self.executor = make_executor(self.context, num_threads)
        self.probe = Node("test_probe", context=self.context)
        self.executor.add_node(self.probe)
        self._nodes: list[Node] = [self.probe]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        spin(self.executor, self.context, stop=self._stop)

    def add(self, node: Node) -> Node:
        self.executor.add_node(node)
        self._nodes.append(node)
        return node

    def remove(self, node: Node) -> None:
        self.executor.remove_node(node)
        if node in self._nodes:
            self._nodes.remove(node)
        time.sleep(0.15)  # let the spin thread finish the wait set that may still hold this node's entities
        node.destroy_node()

    def subscribe(self, msg_type: type, topic: str, qos: QoSProfile | int = 10) -> MessageLog:
        log = MessageLog()
        self.probe.create_subscription(msg_type, topic, log.append, qos)
        return log

    def subscribe_sensor(self, msg_type: type, topic: str) -> MessageLog:
        return self.subscribe(msg_type, topic, qos_profile_sensor_data)

    def publisher(self, msg_type: type, topic: str, qos: QoSProfile | int = 10):
        return self.probe.create_publisher(msg_type, topic, qos)

    def wait_for_subscribers(self, publisher, count: int = 1, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while publisher.get_subscription_count() < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"no subscriber on {publisher.topic_name} within {timeout:.1f}s")
            time.sleep(0.02)

    def call(self, srv_type: type, name: str, request: Any, timeout: float = 10.0) -> Any:
        client = self.probe.create_client(srv_type, name)
        try:
            if not client.wait_for_service(timeout_sec=timeout):
                raise TimeoutError(f"service {name} not available within {timeout:.1f}s")
            future = client.call_async(request)
            deadline = time.monotonic() + timeout
            while not future.done():
                if time.monotonic() > deadline:
                    raise TimeoutError(f"service {name} did not answer within {timeout:.1f}s")
                time.sleep(0.01)
            return future.result()
        finally:
            self.probe.destroy_client(client)

    def shutdown(self) -> None:
        # Stop spinning first, then destroy the nodes: destroying entities a spinning executor still waits on fails
        # in rcl ("service pointer is invalid") and can abort the interpreter at exit.
        self._stop.set()
        self._thread.join(timeout=10.0)
        with contextlib.suppress(Exception):
            self.executor.shutdown(timeout_sec=10.0)
        for node in list(self._nodes):
            with contextlib.suppress(Exception):
                node.destroy_node()
        rclpy.shutdown(context=self.context)


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0, interval: float = 0.02, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.1f}s waiting for {what or predicate}")
        time.sleep(interval)
