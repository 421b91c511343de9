"""The other process of `corft-ros measure transport`: renders the frames it will send and publishes them (raw,
JPEG or PNG) with rclpy, so the measured subscriber shares no GIL with the publisher."""

from __future__ import annotations

import functools
import json
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

WARMUP_S = 1.0  # frames captured in a case's first second are not counted (discovery, socket buffers)


def _qos(name: str):
    from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data

    return qos_profile_sensor_data if name == "sensor_data" else QoSProfile(
        depth=5, reliability=ReliabilityPolicy.RELIABLE)


# ---------------------------------------------------------------------------------------------------- frames
def _render_frames(n_cameras: int, width: int, height: int, count: int) -> tuple[list, str]:
    """`count` frames per camera: the sim's front and wrist cameras while the arm moves (a synthetic scene if
    MuJoCo cannot render here)."""
    import numpy as np

    try:
        from corft_ros.core.robot import load_robot_config
        from corft_ros.core.sim.scene import CAMERAS, CubeScene, SceneConfig

        robot = load_robot_config()
        names = [c for c in ("front", "wrist", "front_pixels") if c in CAMERAS][:max(1, min(n_cameras, 3))]
        scene = CubeScene(robot, SceneConfig(cameras=tuple(names), image_width=width, image_height=height))
        try:
            scene.reset(seed=1)
            home = robot.home_array
            frames: list[list] = [[] for _ in range(n_cameras)]
            for k in range(count):
                q = home + 0.25 * np.sin(2 * np.pi * k / count + np.arange(len(home)))
                scene.set_targets(q)
                scene.step(50)
                for i in range(n_cameras):
                    frames[i].append(scene.render(names[i % len(names)]))
        finally:
            scene.close()
        return frames, f"MuJoCo render of the sim's {', '.join(names)} camera(s) while the arm moves"
    except Exception as exc:  # noqa: BLE001 - no EGL/MuJoCo here: still measure, and say what was sent
        rng = np.random.default_rng(0)
        y, x = np.mgrid[0:height, 0:width]
        frames = [[] for _ in range(n_cameras)]
        for i in range(n_cameras):
            for k in range(count):
                img = np.stack([x * 255 // width, y * 255 // height, np.full_like(x, 60 + 40 * i)], -1)
                img = img.astype(np.uint8)
                cx, cy = (k * 17 + 100 * i) % (width - 60), (k * 11) % (height - 60)
                img[cy:cy + 60, cx:cx + 60] = rng.integers(0, 256, 3)
                frames[i].append(img)
        return frames, f"synthetic gradients and squares (the sim could not render: {type(exc).__name__}: {exc})"


# ---------------------------------------------------------------------------------------------------- publisher
def _publisher_main(argv: list[str]) -> int:
    """The publisher process: `python -m corft_ros.measure._transport_child --publisher FRAMES.npz CONFIG_JSON`.
    Reads one JSON command per line on stdin ({"codec", "noise", "seconds"} or "quit"), answers one JSON line."""
    import numpy as np
    import rclpy
    from sensor_msgs.msg import CompressedImage, Image

    from corft_ros.core.images import encode_compressed

    frames_path, config = argv[1], json.loads(argv[2])
    data = np.load(frames_path)
    clean = [data[f"cam{i}"] for i in range(config["cameras"])]  # [count, H, W, 3] each
    rclpy.init()
    node = rclpy.create_node("corft_bench_transport_publisher")
    prefix, qos = config["prefix"], _qos(config["qos"])
    raw_pubs = [node.create_publisher(Image, f"{prefix}/cam{i}/image_raw", qos) for i in range(config["cameras"])]
    comp_pubs = [node.create_publisher(CompressedImage, f"{prefix}/cam{i}/image_raw/compressed", qos)
                 for i in range(config["cameras"])]
    print(json.dumps({"ready": True}), flush=True)
    noisy_cache: dict[float, list] = {}
    period = 1.0 / config["fps"]
    for line in sys.stdin:
        command = json.loads(line)
        if command == "quit":
            break
        codec, std, seconds = command["codec"], float(command["noise"]), float(command["seconds"])
        frames = _noisy(noisy_cache, clean, std)
        start_ns = time.time_ns()
        encode = functools.partial(encode_compressed, fmt=codec, jpeg_quality=config["jpeg_quality"],
                                   png_level=config["png_level"])
        case = _Case(codec, start_ns, time.monotonic() + seconds, period, raw_pubs, comp_pubs, encode)
        results = _play_case(case, frames)
        print(json.dumps({"start_ns": start_ns, "cameras": results}), flush=True)
    node.destroy_node()
    rclpy.try_shutdown()
    return 0


def _noisy(cache: dict[float, list], clean: list, std: float) -> list:
    """The frames with Gaussian noise of `std` grey levels (the clean ones at 0); one noise level cached at a time."""
    import numpy as np

    if std not in cache:
        rng = np.random.default_rng(1)
        cache.clear()  # one noise level in memory at a time
        cache[std] = clean if std == 0 else [
            np.stack([np.clip(f + rng.normal(0, std, f.shape).astype(np.float32), 0, 255).astype(np.uint8)
                      for f in cam]) for cam in clean]
    return cache[std]


@dataclass
class _Case:
    """One case being played: its codec, capture start (wall clock, ns) and end (monotonic, s), the frame period,
    the publishers (raw and compressed, one per camera) and `encode` (RGB -> (payload, format), a compressed codec's
    encoder with the camera node's settings)."""

    codec: str
    start_ns: int
    end: float
    period: float
    raw_pubs: list
    comp_pubs: list
    encode: Callable


def _play_case(case: _Case, frames: list) -> list[dict]:
    """Every camera played on a thread of its own until the case ends; per camera what was sent and timed."""
    results = [dict(sent=0, late=0, encode_ms=[], publish_ms=[]) for _ in frames]
    threads = [threading.Thread(target=_play, args=(case, i, results[i], frames[i], len(frames)))
               for i in range(len(frames))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def _play(case: _Case, i: int, out: dict, cam, n_cams: int) -> None:
    """Camera i: its frames at the case's rate (late frames counted), encoded and published, timed after warm-up."""
    from sensor_msgs.msg import CompressedImage, Image

    period = case.period
    next_t = time.monotonic() + i * period / n_cams  # cameras not in lock-step, as real ones
    k = 0
    while True:
        delay = next_t - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        elif delay < -period:
            out["late"] += 1
            next_t = time.monotonic()
        if time.monotonic() >= case.end:
            return
        next_t += period
        rgb = cam[k % len(cam)]
        k += 1
        now = time.time_ns()  # the capture stamp: before any encoding
        t0 = time.perf_counter()
        if case.codec == "raw":
            msg = Image(height=rgb.shape[0], width=rgb.shape[1], encoding="rgb8", step=rgb.shape[1] * 3)
            msg.data = rgb.tobytes()
            pub = case.raw_pubs[i]
        else:
            payload, fmt = case.encode(rgb)
            msg = CompressedImage(format=fmt)
            msg.data = payload
            pub = case.comp_pubs[i]
        t1 = time.perf_counter()
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(now, 1_000_000_000)
        msg.header.frame_id = f"cam{i}"
        pub.publish(msg)
        if now - case.start_ns >= WARMUP_S * 1e9:
            out["encode_ms"].append((t1 - t0) * 1e3)
            out["publish_ms"].append((time.perf_counter() - t1) * 1e3)
            out["sent"] += 1


# ---------------------------------------------------------------------------------------------------- subscriber


if __name__ == "__main__":
    if len(sys.argv) >= 4 and sys.argv[1] == "--publisher":
        raise SystemExit(_publisher_main(sys.argv[1:]))
