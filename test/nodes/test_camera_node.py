"""The camera node over real DDS: a video file written here with OpenCV, reconnect, pass-through mode, and the
compressed transport (JPEG/PNG sensor_msgs/CompressedImage on <topic>/compressed)."""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CompressedImage, Image

from corft_ros.core.images import ImageError, decode_compressed, open_capture, resize, source_kind, to_rgb8
from corft_ros.core.robot import ConfigError
from corft_ros.nodes.camera import CameraNode

FRAMES = 12


def write_video(path: Path, frames: int = FRAMES, size: tuple[int, int] = (160, 120)) -> Path:
    """Frame i is a solid colour: red = 200, green = 20·i, blue = 40 (written as BGR, as OpenCV does)."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, size)
    assert writer.isOpened()
    for i in range(frames):
        writer.write(np.full((size[1], size[0], 3), (40, 20 * i, 200), np.uint8))
    writer.release()
    return path


def node(ros, name: str, namespace: str | None = None, **params) -> CameraNode:
    overrides = [Parameter("name", value=name), *(Parameter(k, value=v) for k, v in params.items())]
    return ros.add(CameraNode(context=ros.context, cli_args=["--ros-args", "-r", f"__node:=camera_{name}"],
                              parameter_overrides=overrides, namespace=namespace))


def status_of(ros_log, node_name: str, predicate, timeout: float = 10.0):
    def match(messages):
        return any(s.hardware_id == node_name and predicate(s) for m in messages for s in m.status)

    msgs = ros_log.wait(match, timeout)
    return [s for m in msgs for s in m.status if s.hardware_id == node_name and predicate(s)][-1]


def kv(status) -> dict[str, str]:
    return {x.key: x.value for x in status.values}


def sec(stamp) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


def test_video_file_is_published_looping_with_capture_stamps(ros, tmp_path):
    video = write_video(tmp_path / "clip.avi")
    images = ros.subscribe_sensor(Image, "/camera/vid/image_raw")
    diagnostics = ros.subscribe(DiagnosticArray, "/diagnostics")
    cam = node(ros, "vid", source=str(video), width=64, height=48, fps=30.0)
    try:
        msgs = images.wait(lambda m: len(m) >= FRAMES + 6, timeout=20)  # more frames than the file has: it loops
        now = sec(cam.get_clock().now().to_msg())
        for msg in msgs:
            assert (msg.encoding, msg.width, msg.height, msg.step) == ("rgb8", 64, 48, 64 * 3)
            assert msg.header.frame_id == "vid_camera"
            assert 0 <= now - sec(msg.header.stamp) < 15
        stamps = [sec(m.header.stamp) for m in msgs]
        assert all(b > a for a, b in zip(stamps, stamps[1:], strict=False))
        # paced at ~30 fps (a busy machine may skip frames), not as fast as the file decodes
        assert 1 / 60 < np.median(np.diff(stamps)) < 0.2
        greens = [int(np.frombuffer(m.data, np.uint8).reshape(48, 64, 3)[..., 1].mean()) for m in msgs]
        reds = [int(np.frombuffer(m.data, np.uint8).reshape(48, 64, 3)[..., 0].mean()) for m in msgs]
        assert all(abs(r - 200) < 12 for r in reds)  # RGB order (the file holds BGR)
        assert max(greens) > 180 and min(greens) < 20  # saw the last and (after the loop) the first frames again
        wrap = [i for i in range(1, len(greens)) if greens[i] < greens[i - 1] - 100]
        assert wrap, f"never looped: {greens}"
        st = status_of(diagnostics, "camera_vid", lambda s: float(kv(s)["rate_hz"]) > 5)
        assert kv(st)["connected"] == "True" and int(kv(st)["published"]) >= FRAMES
    finally:
        ros.remove(cam)


def test_reconnects_with_backoff_when_the_source_appears(ros, tmp_path):
    video = tmp_path / "later.avi"  # not there yet: like an unplugged camera
    images = ros.subscribe_sensor(Image, "/camera/late/image_raw")
    diagnostics = ros.subscribe(DiagnosticArray, "/diagnostics")
    cam = node(ros, "late", source=str(video), width=32, height=32, reconnect_min_s=0.1, reconnect_max_s=0.4)
    try:
        st = status_of(diagnostics, "camera_late", lambda s: int(kv(s)["reconnects"]) >= 2)
        assert st.level == b"\x02" and "cannot open file camera source" in st.message
        assert images.messages == []
        write_video(video)
        images.wait(lambda m: len(m) >= 3, timeout=10)
        status_of(diagnostics, "camera_late", lambda s: s.level == b"\x00" and kv(s)["connected"] == "True")
    finally:
        ros.remove(cam)


@pytest.mark.parametrize("reliability", [ReliabilityPolicy.RELIABLE, ReliabilityPolicy.BEST_EFFORT])
def test_pass_through_resizes_and_converts_keeping_the_driver_stamp(ros, reliability):
    tag = reliability.name.lower()
    driver = ros.publisher(Image, f"/drv_{tag}/image_raw", QoSProfile(depth=10, reliability=reliability))
    images = ros.subscribe_sensor(Image, f"/camera/pt{tag}/image_raw")
    cam = node(ros, f"pt{tag}", input_topic=f"/drv_{tag}/image_raw", width=40, height=30, fps=0.0)
    try:
        ros.wait_for_subscribers(driver)
        bgr = np.zeros((120, 160, 3), np.uint8)
        bgr[..., 0], bgr[..., 1], bgr[..., 2] = 10, 100, 250
        stamps = []
        deadline = time.monotonic() + 10
        while not images.messages and time.monotonic() < deadline:
            msg = Image(height=120, width=160, encoding="bgr8", step=160 * 3, data=bgr.tobytes())
            msg.header.stamp = cam.get_clock().now().to_msg()
            stamps.append((msg.header.stamp.sec, msg.header.stamp.nanosec))
            driver.publish(msg)
            time.sleep(0.05)
        out = images.wait(lambda m: len(m) >= 1, timeout=1)[0]
        assert (out.encoding, out.width, out.height) == ("rgb8", 40, 30)
        assert (out.header.stamp.sec, out.header.stamp.nanosec) in stamps
        pixel = np.frombuffer(out.data, np.uint8).reshape(30, 40, 3)[15, 20]
        assert tuple(int(x) for x in pixel) == (250, 100, 10)
    finally:
        ros.remove(cam)


def test_compressed_transport_png_equals_raw_and_jpeg_runs_alone_in_a_namespace(ros, tmp_path):
    video = write_video(tmp_path / "clip.avi")
    raw = ros.subscribe_sensor(Image, "/camera/cpng/image_raw")
    png = ros.subscribe_sensor(CompressedImage, "/camera/cpng/image_raw/compressed")
    # relative default topic: inside the node's namespace
    jpeg = ros.subscribe_sensor(CompressedImage, "/armb/camera/cjpg/image_raw/compressed")
    diagnostics = ros.subscribe(DiagnosticArray, "/diagnostics")
    both = node(ros, "cpng", source=str(video), width=64, height=48, transport="both", compressed_format="png")
    alone = node(ros, "cjpg", namespace="armb", source=str(video), width=64, height=48, transport="compressed",
                 jpeg_quality=80)
    try:
        # PNG is lossless: the frame decoded from <topic>/compressed equals the raw frame with the same stamp
        def pairs(_=None):
            by_stamp = {sec(m.header.stamp): m for m in raw.messages}
            return [(by_stamp[sec(c.header.stamp)], c) for c in list(png.messages) if sec(c.header.stamp) in by_stamp]

        png.wait(lambda m: len(pairs()) >= 3, timeout=20)
        for image, compressed in pairs()[:3]:
            assert compressed.format == "rgb8; png compressed bgr8" and compressed.header.frame_id == "cpng_camera"
            np.testing.assert_array_equal(decode_compressed(compressed.data, compressed.format),
                                          np.frombuffer(image.data, np.uint8).reshape(48, 64, 3))
        msgs = jpeg.wait(lambda m: len(m) >= 3, timeout=20)
        for msg in msgs:
            assert msg.format == "rgb8; jpeg compressed bgr8"
            rgb = decode_compressed(msg.data, msg.format)
            assert rgb.shape == (48, 64, 3) and abs(rgb[..., 0].mean() - 200) < 12  # red: RGB order kept
        assert ros.probe.count_publishers("/armb/camera/cjpg/image_raw") == 0  # transport: compressed only
        st = status_of(diagnostics, "camera_cjpg", lambda s: kv(s).get("compressed_bytes", "nan") != "nan")
        v = kv(st)
        assert v["transport"] == "compressed" and v["compressed_format"] == "jpeg" and v["topic"] == ""
        assert v["compressed_topic"] == "/armb/camera/cjpg/image_raw/compressed"
        assert 0 < float(v["compressed_bytes"]) < 64 * 48 * 3 and float(v["encode_ms"]) > 0
        assert int(v["encode_errors"]) == 0
    finally:
        ros.remove(both)
        ros.remove(alone)


def test_bad_parameters_refuse_to_start(ros):
    with pytest.raises(ConfigError, match="exactly one of source"):
        CameraNode(context=ros.context)
    with pytest.raises(ConfigError, match="width/height"):
        CameraNode(context=ros.context, parameter_overrides=[Parameter("source", value="0"),
                                                             Parameter("width", value=64),
                                                             Parameter("height", value=0)])
    with pytest.raises(ConfigError, match="transport must be one of raw, compressed, both, got 'h264'"):
        CameraNode(context=ros.context, parameter_overrides=[Parameter("source", value="0"),
                                                             Parameter("transport", value="h264")])
    with pytest.raises(ConfigError, match="compressed_format must be one of jpeg, png"):
        CameraNode(context=ros.context, parameter_overrides=[Parameter("source", value="0"),
                                                             Parameter("compressed_format", value="tiff")])
    with pytest.raises(ConfigError, match=r"jpeg_quality must be in \[1, 100\], got 101"):
        CameraNode(context=ros.context, parameter_overrides=[Parameter("source", value="0"),
                                                             Parameter("jpeg_quality", value=101)])


def test_encodings_and_sources():
    rgb = np.random.default_rng(0).integers(0, 256, (6, 8, 3), dtype=np.uint8)
    assert np.array_equal(to_rgb8(rgb.tobytes(), 8, 6, "rgb8"), rgb)
    assert np.array_equal(to_rgb8(rgb[..., ::-1].copy().tobytes(), 8, 6, "bgr8"), rgb)
    rgba = np.concatenate([rgb, np.full((6, 8, 1), 255, np.uint8)], axis=2)
    assert np.array_equal(to_rgb8(rgba.tobytes(), 8, 6, "rgba8"), rgb)
    # row padding (step > width·bpp) is honoured
    padded = np.zeros((6, 8 * 3 + 8), np.uint8)
    padded[:, : 8 * 3] = rgb.reshape(6, -1)
    assert np.array_equal(to_rgb8(padded.tobytes(), 8, 6, "rgb8", step=32), rgb)
    gray = np.arange(48, dtype=np.uint8).reshape(6, 8)
    assert np.array_equal(to_rgb8(gray.tobytes(), 8, 6, "mono8")[..., 2], gray)
    g16 = (gray.astype(np.uint16) << 8)
    assert np.array_equal(to_rgb8(g16.astype(">u2").tobytes(), 8, 6, "mono16", is_bigendian=True)[..., 0], gray)
    uyvy = np.full((6, 8, 2), 128, np.uint8)
    uyvy[..., 1] = 200  # Y
    out = to_rgb8(uyvy.tobytes(), 8, 6, "yuv422")
    assert np.all(np.abs(out.astype(int) - out[..., :1].astype(int)) <= 2) and out.mean() > 180  # grey, bright
    with pytest.raises(ImageError, match="unsupported image encoding '32FC1'"):
        to_rgb8(np.zeros((6, 8), np.float32).tobytes(), 8, 6, "32FC1")
    with pytest.raises(ImageError, match="needs 144"):
        to_rgb8(rgb.tobytes()[:100], 8, 6, "rgb8")
    assert resize(rgb, 3, 4).shape == (3, 4, 3) and resize(rgb, 6, 8) is rgb
    assert [source_kind(s) for s in ("0", "/dev/video2", "rtsp://cam/stream", "v4l2src ! appsink", "a.mp4")] == [
        "device", "device", "stream", "gstreamer", "file"]
    with pytest.raises(ImageError, match="cannot open file camera source"):
        open_capture("/nonexistent/clip.avi")
