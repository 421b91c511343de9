"""`corft-ros measure logger`: episode_logger throughput: losses at the nominal load with the drivers' QoS, receive
latency, the zero-loss ceiling against a bare raw subscriber."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from corft_ros.measure._logger_bench import _LoggerBench
from corft_ros.measure._logger_ramp import _Ramp


def register(benches: argparse._SubParsersAction) -> None:
    bench = benches.add_parser("logger", help="episode_logger throughput: drops at the nominal load, max rate")
    bench.add_argument("--seconds", type=float, default=60.0, help="duration of the nominal-load phase")
    bench.add_argument("--ramp-seconds", type=float, default=3.0, help="duration of each ramp step (0 = no ramp)")
    bench.add_argument("--width", type=int, default=640)
    bench.add_argument("--height", type=int, default=480)
    bench.add_argument("--compression", choices=["none", "zstd"], default="none")
    bench.add_argument("--js-depth", type=int, default=0,
                       help="/joint_states publisher history depth (default 0: SystemDefaultsQoS, as ros2_control's "
                            "joint_state_broadcaster publishes: reliable, keep-last, the middleware's default depth)")
    bench.add_argument("--runs", type=int, default=1, help="nominal-load runs (default 1)")
    bench.add_argument("--hog", type=int, default=0, metavar="K",
                       help="K busy processes on the same cores during the nominal runs (default 0)")
    bench.add_argument("--camera-qos", choices=["reliable", "best_effort"], default="reliable",
                       help="QoS the simulated cameras publish with (the logger adapts to it)")
    bench.add_argument("--writers", default="thread,process",
                       help="episode_logger `writer` designs measured in the same run, comma-separated "
                            "(default thread,process: the bag written by a thread of the logger's process, or by a "
                            "child process fed through a shared-memory ring)")
    bench.add_argument("--output", default="", help="where bags go (default: a temporary folder, deleted)")
    bench.add_argument("--json", action="store_true", help="print JSON")
    bench.set_defaults(func=cmd_bench_logger)


def cmd_bench_logger(args: argparse.Namespace) -> int:
    from corft_ros.measure._common import print_result

    if args.runs < 1 or args.hog < 0 or not args.seconds > 0:
        print("error: --runs must be >= 1, --hog >= 0 and --seconds positive", file=sys.stderr)
        return 2
    writers = _writers(args)
    if not writers or any(w not in ("thread", "process") for w in writers):
        print(f"error: --writers takes thread and/or process, comma-separated; got {args.writers!r}", file=sys.stderr)
        return 2
    result = run_bench(args)
    print_result(result, args.json)
    return 0


# --------------------------------------------------------------------------- logger benchmark
def _writers(args: argparse.Namespace) -> list[str]:
    return [w.strip() for w in str(getattr(args, "writers", "thread")).split(",") if w.strip()]


def _storage_write(folder: Path, block: int, max_bytes: int = 3 << 30, max_s: float = 8.0) -> dict:
    """Sequential buffered writes of `block`-byte frames into `folder` (as the logger writes a bag) for up to
    `max_bytes` or `max_s`: the rate the page cache takes them, and the rate to disk including the final fsync."""
    import os
    import shutil

    max_bytes = min(max_bytes, shutil.disk_usage(folder).free // 4)  # never fill a small disk for a reference
    data = bytes(block)
    path = folder / "storage_write.probe"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    written = 0
    start = time.monotonic()
    try:
        while written < max_bytes and time.monotonic() - start < max_s:
            written += os.write(fd, data)
        buffered = time.monotonic() - start
        os.fsync(fd)
        synced = time.monotonic() - start
    finally:
        os.close(fd)
        path.unlink(missing_ok=True)
    return {"bytes": written, "buffered_mb_per_s": round(written / buffered / 1e6, 1),
            "with_fsync_mb_per_s": round(written / synced / 1e6, 1)}


def run_bench(args: argparse.Namespace) -> dict:
    import os
    import shutil
    import subprocess
    import tempfile

    # Isolated DDS domain on loopback, shared with the publisher subprocesses through the environment.
    from corft_ros.measure._common import isolated_domain

    os.environ["ROS_DOMAIN_ID"] = str(isolated_domain(150, 230))
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    import rclpy

    from corft_ros.core.memory import keep_large_buffers

    out_root = Path(args.output) if args.output else Path(tempfile.mkdtemp(prefix="corft_bench_logger_"))
    out_root.mkdir(parents=True, exist_ok=True)
    # The logger's process setting (episode_logger applies it as it starts), made here before anything runs, so every
    # contestant of this process has it: the bare subscriber as much as the logger.
    large_buffers_kept = keep_large_buffers()
    context = rclpy.Context()
    rclpy.init(context=context)
    result: dict = {
        "bench": "logger", "image": f"{args.width}x{args.height} rgb8", "compression": args.compression,
        "cpu_count": os.cpu_count(), "large_buffers_kept": large_buffers_kept,
        "joint_states_publisher_qos": (f"reliable, keep-last {args.js_depth}" if args.js_depth else
                                       "SystemDefaultsQoS (joint_state_broadcaster's)"),
        "camera_qos": "reliable, depth 100 (usb_cam's default)" if args.camera_qos == "reliable" else "SensorDataQoS",
    }
    bench = _LoggerBench(args, context, out_root)
    writers = _writers(args)
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.hog)]
    try:
        result.update(bench.nominal(writers))
        for hog in hogs:
            hog.kill()
        if args.ramp_seconds <= 0:
            return result
        # 2. References: what the output folder's storage takes (a bag cannot be written faster for long), and a bare
        # raw subscriber under a publisher flooding one camera topic.
        result["storage_write"] = _storage_write(out_root, bench.image_bytes)
        result["bare_subscriber_flood"] = bench.flood()
        result.update(_Ramp(bench, writers).run())
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
        rclpy.shutdown(context=context)
        if not args.output:
            shutil.rmtree(out_root, ignore_errors=True)
    return result


