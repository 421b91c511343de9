"""camera: frames from OpenCV (V4L2 device, video file, RTSP/HTTP URL, GStreamer pipeline) or from another
driver's topic (pass-through), published as rgb8 sensor_msgs/Image with SensorDataQoS on camera/<name>/image_raw
(relative: inside the node's namespace) and/or as a JPEG/PNG sensor_msgs/CompressedImage on
camera/<name>/image_raw/compressed (image_transport's convention and `format` string), by `transport`.

Capture runs in its own thread (OpenCV reads block); each frame is stamped right after the grab returns. A lost
device is reopened with exponential backoff. Video files play at `fps` (0 = the file's own rate) and loop.
Pass-through keeps the driver's stamp, converts any supported encoding to rgb8 and resizes; its callback only hands
the newest frame to a worker thread (conversion and compression never run on the executor).
Counters on /diagnostics: published, rate_hz, dropped (frames lost: read/convert/encode failures, file frames
skipped to keep up, pass-through frames replaced before the worker took them), skipped (frames decimated to respect
`fps`), read_errors, reconnects, encode_errors; compressed_bytes and encode_ms (mean of the last second).
"""

from __future__ import annotations

import threading
import time

import cv2
import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import CompressedImage, Image

from corft_ros.core import topics
from corft_ros.core.images import (
    ImageError,
    check_compression,
    encode_compressed,
    open_capture,
    resize,
    source_kind,
    to_rgb8,
)
from corft_ros.core.node_params.camera import CameraParams
from corft_ros.core.robot import ConfigError, load_robot_config
from corft_ros.nodes.common import ClosesOnDestroy, declare_params, diagnostic_status, run_node
from corft_ros.nodes.qos import RELIABLE

MAX_CONSECUTIVE_READ_ERRORS = 5


class CameraNode(ClosesOnDestroy, Node):
    def __init__(self, **kwargs) -> None:
        super().__init__("camera", **kwargs)
        p = self.params = declare_params(self, CameraParams)
        load_robot_config(p.robot_config or None)
        self.camera, self.source, self.input_topic, topic = p.name, p.source, p.input_topic, p.topic
        self.transport, self.compressed_format = p.transport, p.compressed_format
        self.jpeg_quality, self.png_level, self.width, self.height = p.jpeg_quality, p.png_level, p.width, p.height
        self.fps, self.loop, self.frame_id = p.fps, p.loop, p.frame_id
        self.backoff_min, self.backoff_max = p.reconnect_min_s, p.reconnect_max_s

        if not self.camera.replace("_", "").isalnum():
            raise ConfigError(f"name must be alphanumeric/underscore, got '{self.camera}'")
        if bool(self.source.strip()) == bool(self.input_topic.strip()):
            raise ConfigError("set exactly one of source (capture) and input_topic (pass-through)")
        if (self.width == 0) != (self.height == 0):
            raise ConfigError(f"width/height must both be positive or both 0, got {self.width}x{self.height}")
        if not self.backoff_min <= self.backoff_max:
            raise ConfigError("need 0 < reconnect_min_s <= reconnect_max_s")
        try:
            check_compression(self.compressed_format, self.jpeg_quality, self.png_level)
        except ImageError as exc:
            raise ConfigError(str(exc)) from None
        self.kind = "topic"
        if self.source.strip():
            try:
                self.kind = source_kind(self.source)
            except ImageError as exc:
                raise ConfigError(f"source: {exc}") from None
        self.topic = topic or topics.camera_image(self.camera)
        self.frame_id = self.frame_id or f"{self.camera}_camera"

        self._lock = threading.Lock()
        self.counters = {"published": 0, "received": 0, "dropped": 0, "skipped": 0, "read_errors": 0, "reconnects": 0,
                         "encode_errors": 0}
        self._encoded = [0, 0.0, 0]  # since the last diagnostics: frames compressed, seconds encoding, bytes
        self.connected = False
        self.problem = ""
        self.finished = False
        self._last_input = time.monotonic()
        self._next_publish = 0.0
        self._rate_window = (time.monotonic(), 0)
        self.rate_hz = 0.0

        self.pub = None
        self.compressed_pub = None
        if self.transport in ("raw", "both"):
            self.pub = self.create_publisher(Image, self.topic, qos_profile_sensor_data)
        if self.transport in ("compressed", "both"):
            self.compressed_pub = self.create_publisher(CompressedImage, topics.compressed(self.topic),
                                                        qos_profile_sensor_data)
        outputs = [p.topic_name for p in (self.pub, self.compressed_pub) if p is not None]
        self.diag_pub = self.create_publisher(DiagnosticArray, topics.DIAGNOSTICS, RELIABLE)
        self.create_timer(1.0, self._publish_diagnostics)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pending: Image | None = None  # pass-through: the newest frame the worker has not taken yet
        self._pending_ready = threading.Event()
        if self.kind == "topic":
            # SensorDataQoS (best effort) hears reliable and best-effort drivers alike
            sub = self.create_subscription(Image, self.input_topic, self._on_input, qos_profile_sensor_data)
            self.connected = True
            where = sub.topic_name
            self._thread = threading.Thread(target=self._pass_through_loop, name=f"camera-{self.camera}",
                                            daemon=True)
            self._thread.start()
        else:
            self._thread = threading.Thread(target=self._capture_loop, name=f"camera-{self.camera}", daemon=True)
            self._thread.start()
            where = f"{self.kind} '{self.source}'"
        size = f"{self.width}x{self.height}" if self.width else "native size"
        codec = "" if self.compressed_pub is None else f", {self.compressed_format}"
        self.get_logger().info(f"camera '{self.camera}': {where} → {' + '.join(outputs)} ({size}, fps {self.fps:g}"
                               f"{codec})")

    # ------------------------------------------------------------------ output
    def _publish(self, rgb: np.ndarray, stamp) -> bool:
        """Resize and publish one frame on the configured transport(s), from the node's own thread; False when the
        frame could not be compressed."""
        if self.width:
            rgb = resize(rgb, self.height, self.width)
        sent, ok = False, True
        if self.pub is not None:
            self.pub.publish(self._make_msg(rgb, stamp))
            sent = True
        if self.compressed_pub is not None:
            start = time.perf_counter()
            try:
                data, fmt = encode_compressed(rgb, self.compressed_format, self.jpeg_quality, self.png_level)
            except ImageError as exc:
                ok = False
                self._count("encode_errors")
                self.problem = f"camera '{self.camera}': {exc}"
                self.get_logger().error(self.problem, throttle_duration_sec=2.0)
            else:
                msg = CompressedImage(format=fmt)
                msg.header.stamp = stamp
                msg.header.frame_id = self.frame_id
                msg.data = data
                self.compressed_pub.publish(msg)
                sent = True
                with self._lock:
                    self._encoded[0] += 1
                    self._encoded[1] += time.perf_counter() - start
                    self._encoded[2] += len(data)
        self._count("published" if sent else "dropped")
        return ok

    def _make_msg(self, rgb: np.ndarray, stamp) -> Image:
        msg = Image()
        msg.header.stamp = stamp
        msg.header.frame_id = self.frame_id
        msg.height, msg.width = int(rgb.shape[0]), int(rgb.shape[1])
        msg.encoding = "rgb8"
        msg.is_bigendian = 0
        msg.step = msg.width * 3
        msg.data = np.ascontiguousarray(rgb).tobytes()
        return msg

    def _rate_allows(self) -> bool:
        """Decimate to `fps` (0 = publish everything)."""
        if self.fps <= 0:
            return True
        now = time.monotonic()
        if now + 0.1 / self.fps < self._next_publish:  # a little slack so a source at exactly fps isn't decimated
            with self._lock:
                self.counters["skipped"] += 1
            return False
        period = 1.0 / self.fps
        self._next_publish = max(self._next_publish + period, now)
        return True

    def _count(self, key: str, n: int = 1) -> None:
        with self._lock:
            self.counters[key] += n

    # ------------------------------------------------------------------ pass-through
    def _on_input(self, msg: Image) -> None:
        """Executor callback: only hand the newest frame to the worker (conversion/compression run there)."""
        self._last_input = time.monotonic()
        allowed = self._rate_allows()
        with self._lock:
            self.counters["received"] += 1
            if not allowed:
                return
            if self._pending is not None:
                self.counters["dropped"] += 1  # the worker did not keep up: only the newest frame matters
            self._pending = msg
        self._pending_ready.set()

    def _pass_through_loop(self) -> None:
        while not self._stop.is_set():
            if not self._pending_ready.wait(0.2):
                continue
            with self._lock:
                msg, self._pending = self._pending, None
                self._pending_ready.clear()
            if msg is None:
                continue
            try:
                rgb = to_rgb8(msg.data, msg.width, msg.height, msg.encoding, msg.step, bool(msg.is_bigendian))
            except ImageError as exc:
                self._count("dropped")
                self.problem = f"{self.input_topic}: {exc}"
                self.get_logger().error(self.problem, throttle_duration_sec=2.0)
                continue
            if self._publish(rgb, msg.header.stamp):
                self.problem = ""

    # ------------------------------------------------------------------ capture thread
    def _capture_loop(self) -> None:
        backoff = self.backoff_min
        first = True
        while not self._stop.is_set():
            try:
                cap = open_capture(self.source, self.width, self.height, self.fps if self.kind == "device" else 0)
            except ImageError as exc:
                self.connected = False
                self.problem = f"{exc}; retrying in {backoff:.1f}s"
                self.get_logger().warning(self.problem, throttle_duration_sec=5.0)
                if self._stop.wait(backoff):
                    return
                backoff = min(2 * backoff, self.backoff_max)
                self._count("reconnects")
                continue
            if not first:
                self.get_logger().info(f"camera '{self.camera}' (re)connected to {self.source}")
            first = False
            self.connected, self.problem, backoff = True, "", self.backoff_min
            try:
                finished = self._read_frames(cap)
            finally:
                cap.release()
                self.connected = False
            if finished:
                self.finished = True
                return

    def _read_frames(self, cap: cv2.VideoCapture) -> bool:
        """Publish frames until the source fails (→ False: reconnect) or a non-looping file ends (→ True)."""
        is_file = self.kind == "file"
        native = cap.get(cv2.CAP_PROP_FPS) if is_file else 0.0
        play_fps = self.fps or (native if native and native > 0 else 30.0)
        period = 1.0 / play_fps if is_file else 0.0
        next_frame = time.monotonic()
        errors = 0
        while not self._stop.is_set():
            if is_file:  # play at play_fps in real time; if we fell behind, skip frames rather than lag
                delay = next_frame - time.monotonic()
                if delay > 0 and self._stop.wait(delay):
                    return True
                behind = int(-delay / period) if delay < 0 else 0
                for _ in range(min(behind, 10)):
                    cap.grab()
                    self._count("dropped")
                next_frame = max(next_frame + period, time.monotonic() - period)
            ok = cap.grab()
            stamp = self.get_clock().now().to_msg()  # capture time: right after the grab returned
            if not ok:
                if is_file and self.loop:
                    cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
                    ok = cap.grab()
                    stamp = self.get_clock().now().to_msg()
                elif is_file:
                    self.problem = f"end of video file {self.source}"
                    self.get_logger().info(self.problem)
                    return True
            frame = cap.retrieve()[1] if ok else None
            if frame is None:
                errors += 1
                self._count("read_errors")
                self._count("dropped")
                if errors >= MAX_CONSECUTIVE_READ_ERRORS:
                    self.problem = f"camera '{self.camera}' lost ({self.source}): reconnecting"
                    self.get_logger().warning(self.problem)
                    self._count("reconnects")
                    return False
                continue
            errors = 0
            if not is_file and not self._rate_allows():
                continue
            if frame.ndim == 2:
                rgb = cv2.cvtColor(frame, cv2.COLOR_GRAY2RGB)
            elif frame.shape[2] == 4:
                rgb = cv2.cvtColor(frame, cv2.COLOR_BGRA2RGB)
            else:
                rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
            self._publish(rgb, stamp)
        return True

    # ------------------------------------------------------------------ diagnostics
    def _publish_diagnostics(self) -> None:
        now = time.monotonic()
        with self._lock:
            counters = dict(self.counters)
            encoded, self._encoded = self._encoded, [0, 0.0, 0]
        t0, n0 = self._rate_window
        if now > t0:
            self.rate_hz = (counters["published"] - n0) / (now - t0)
        self._rate_window = (now, counters["published"])
        level, message = DiagnosticStatus.OK, self.problem or "ok"
        if self.kind == "topic" and now - self._last_input > 2.0:
            level, message = DiagnosticStatus.WARN, f"no frames on {self.input_topic} for {now - self._last_input:.0f}s"
        elif not self.connected and not self.finished:
            level = DiagnosticStatus.ERROR
        elif self.problem:
            level = DiagnosticStatus.WARN
        values = {
            "source": self.source or self.input_topic, "kind": self.kind,
            "topic": self.pub.topic_name if self.pub is not None else "",
            "transport": self.transport,
            "compressed_topic": self.compressed_pub.topic_name if self.compressed_pub is not None else "",
            "connected": self.connected, "rate_hz": self.rate_hz, **counters,
            "width": self.width, "height": self.height, "fps": self.fps,
        }
        if self.compressed_pub is not None:
            n, seconds, size = encoded
            values.update({
                "compressed_format": self.compressed_format,
                "compressed_bytes": size / n if n else float("nan"),
                "encode_ms": seconds / n * 1e3 if n else float("nan"),
            })
        array = DiagnosticArray()
        array.header.stamp = self.get_clock().now().to_msg()
        array.status.append(diagnostic_status(f"camera: {self.camera}", self.get_name(), level, message, values))
        self.diag_pub.publish(array)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=5.0)


def main(args: list[str] | None = None) -> int:
    return run_node(lambda: CameraNode(), args, threads=2)


if __name__ == "__main__":
    raise SystemExit(main())
