"""Small helpers shared by the node adapters: parameters, stamps, diagnostics, main()."""

from __future__ import annotations

import sys
from collections.abc import Callable

import rclpy
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticStatus, KeyValue
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.executors import MultiThreadedExecutor
from rclpy.node import Node

from corft_ros.core.robot import ConfigError


def declare(node: Node, name: str, default, description: str):
    """Declare a parameter with a description and return its value."""
    return node.declare_parameter(name, default, ParameterDescriptor(description=description)).value


def stamp_to_sec(stamp: Time) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


def sec_to_stamp(seconds: float) -> Time:
    sec = int(seconds // 1)
    nanosec = int(round((seconds - sec) * 1e9))
    if nanosec >= 1_000_000_000:
        sec, nanosec = sec + 1, nanosec - 1_000_000_000
    return Time(sec=sec, nanosec=nanosec)


def diagnostic_status(name: str, hardware_id: str, level: bytes, message: str, values: dict) -> DiagnosticStatus:
    """`level` is one of DiagnosticStatus.OK / WARN / ERROR / STALE."""
    return DiagnosticStatus(
        level=level,
        name=name,
        message=message,
        hardware_id=hardware_id,
        values=[KeyValue(key=str(k), value=_fmt(v)) for k, v in values.items()],
    )


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def run_node(factory: Callable[[], Node], args: list[str] | None = None, threads: int = 4) -> int:
    """Standard main(): init, build the node (a ConfigError exits 2 with its one-line message), spin, shut down."""
    rclpy.init(args=args)
    try:
        node = factory()
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        rclpy.try_shutdown()
        return 2
    executor = MultiThreadedExecutor(num_threads=threads)
    executor.add_node(node)
    try:
        executor.spin()
    except (KeyboardInterrupt, rclpy.executors.ExternalShutdownException):
        pass
    finally:
        close = getattr(node, "close", None)
        if close is not None:
            close()
        node.destroy_node()
        rclpy.try_shutdown()
    return 0
