"""The two ends `corft-ros measure transport` talks to: the publisher process, through its stdin and stdout (one
JSON line each way), and this process's subscriber, which spins on a thread of its own, deserializes and decodes
each camera message as it arrives and records its size and timings."""

from __future__ import annotations

import argparse
import json
import queue
import subprocess
import threading
import time

from corft_ros.measure._transport_child import _qos


class _PublisherLink:
    """The publisher process's stdin (one JSON command a line) and stdout (one JSON answer a line, read on a
    thread)."""

    def __init__(self, child: subprocess.Popen) -> None:
        self.child = child
        self._lines: queue.Queue = queue.Queue()
        threading.Thread(target=lambda: [self._lines.put(x) for x in child.stdout], daemon=True).start()

    def answer(self, timeout: float) -> dict:
        try:
            return json.loads(self._lines.get(timeout=timeout))
        except queue.Empty:
            raise TimeoutError(f"the publisher process did not answer within {timeout:.0f} s "
                               f"(exit code {self.child.poll()})") from None

    def send(self, command: dict) -> None:
        self.child.stdin.write(json.dumps(command) + "\n")
        self.child.stdin.flush()


class _Subscriber:
    """This process's subscriber, spun on a thread of its own: a raw and a compressed subscription per camera, each
    message deserialized and decoded to RGB as it arrives, recorded as (camera, serialized bytes, stamp ns,
    received ns, decoded ns, decode s)."""

    def __init__(self, args: argparse.Namespace, prefix: str) -> None:
        import rclpy
        from sensor_msgs.msg import CompressedImage, Image

        from corft_ros.nodes.common import make_executor, spin

        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node("corft_bench_transport_subscriber", context=self.context)
        self.records: list[tuple] = []
        self.lock = threading.Lock()
        self.subs, qos = [], _qos(args.qos)
        for i in range(args.cameras):
            self.subs.append(self.node.create_subscription(Image, f"{prefix}/cam{i}/image_raw",
                                                           self._callback(i, False), qos, raw=True))
            self.subs.append(self.node.create_subscription(CompressedImage, f"{prefix}/cam{i}/image_raw/compressed",
                                                           self._callback(i, True), qos, raw=True))
        self.executor = make_executor(self.context)
        self.executor.add_node(self.node)
        self.stop = threading.Event()
        self.spinner = threading.Thread(target=spin, args=(self.executor, self.context, self.stop), daemon=True)
        self.spinner.start()

    def _callback(self, camera: int, compressed: bool):
        from rclpy.serialization import deserialize_message
        from sensor_msgs.msg import CompressedImage, Image

        from corft_ros.core.images import decode_compressed, to_rgb8

        msg_type = CompressedImage if compressed else Image
        records, lock = self.records, self.lock

        def on_bytes(data: bytes) -> None:
            received = time.time_ns()
            t0 = time.perf_counter()
            msg = deserialize_message(data, msg_type)
            if compressed:
                decode_compressed(msg.data, msg.format)
            else:
                to_rgb8(bytes(msg.data), msg.width, msg.height, msg.encoding, msg.step)
            decode_s = time.perf_counter() - t0
            stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
            with lock:
                records.append((camera, len(data), stamp, received, time.time_ns(), decode_s))

        return on_bytes

    def wait_for_publishers(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while any(s.get_publisher_count() < 1 for s in self.subs):
            if time.monotonic() > deadline:
                raise TimeoutError(f"the publisher process's topics were not discovered within {timeout:g} s")
            time.sleep(0.05)

    def clear(self) -> None:
        with self.lock:
            self.records.clear()

    def settled_records(self) -> list[tuple]:
        """The records, once the last frames have arrived: nothing came for 0.5 s (at most 5 s)."""
        settle = time.monotonic() + 5.0
        while time.monotonic() < settle:
            with self.lock:
                last = self.records[-1][3] if self.records else 0
            if time.time_ns() - last > 0.5e9:
                break
            time.sleep(0.1)
        with self.lock:
            return list(self.records)

    def close(self) -> None:
        import rclpy

        self.stop.set()
        self.spinner.join(timeout=5)
        self.executor.shutdown(timeout_sec=1.0)
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)

