"""Minor page faults per received 640x480 rgb8 frame in a raw subscriber's receiving thread, over real DDS (one
process publishes and subscribes). argv[1]: `plain` (a bare rclpy process) or `logger` (an EpisodeLoggerNode
constructed in the process first, as `episode_logger` runs); argv[2]: an output folder for the logger.
Prints one JSON line. Run by test_logger_memory.py in a fresh interpreter, so nothing else set malloc up before."""

from __future__ import annotations

import json
import resource
import sys
import threading
import time

import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image

FRAMES, SKIP = 80, 20


def main(mode: str, out: str) -> int:
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    keep = []
    if mode == "logger":
        from corft_ros.nodes.episode_logger import EpisodeLoggerNode

        keep.append(EpisodeLoggerNode(context=ctx, parameter_overrides=[
            Parameter("output_dir", value=out), Parameter("topics", value=[""]), Parameter("min_free_bytes", value=0)]))
    pub_node = rclpy.create_node("rx_faults_pub", context=ctx)
    sub_node = rclpy.create_node("rx_faults_sub", context=ctx)
    faults: list[int] = []
    sub_node.create_subscription(
        Image, "rx_faults", lambda _data: faults.append(resource.getrusage(resource.RUSAGE_THREAD).ru_minflt), 100,
        raw=True)
    pub = pub_node.create_publisher(Image, "rx_faults", 100)
    executor = SingleThreadedExecutor(context=ctx)
    executor.add_node(sub_node)
    stop = threading.Event()

    def spin() -> None:
        while not stop.is_set():
            executor.spin_once(timeout_sec=0.1)

    thread = threading.Thread(target=spin, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while pub.get_subscription_count() < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    msg = Image(height=480, width=640, encoding="rgb8", step=1920, data=bytes(640 * 480 * 3))
    for _ in range(FRAMES):
        pub.publish(msg)
        time.sleep(0.02)
    while len(faults) < FRAMES and time.monotonic() < deadline:
        time.sleep(0.05)
    stop.set()
    thread.join()
    n = len(faults)
    per_frame = (faults[-1] - faults[SKIP]) / (n - SKIP - 1) if n > SKIP + 1 else None
    print(json.dumps({"received": n, "faults_per_frame": per_frame}), flush=True)
    executor.shutdown()
    for node in (pub_node, sub_node, *keep):
        node.destroy_node()
    rclpy.shutdown(context=ctx)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1], sys.argv[2]))
