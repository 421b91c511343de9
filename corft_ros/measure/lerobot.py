"""`corft-ros measure lerobot`: what `bag export-lerobot` costs, as frames/s and as a ratio to a plain read of the same
bags (rosbags reading and deserializing every message), for each video setting; and `bag import-lerobot` back."""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

from corft_ros.measure.dataset import _warm, make_bench_bags, plain_rosbags_loop


def bench_lerobot(episodes: Path | None, *, count: int = 4, seconds: float = 4.0, width: int = 640, height: int = 480,
                  log=print) -> dict:
    from corft_ros.core.episodes.layout import find_bags
    from corft_ros.core.lerobot.export import export_dataset
    from corft_ros.core.lerobot.importer import import_dataset
    from corft_ros.core.robot import load_robot_config

    robot = load_robot_config()
    work = Path(tempfile.mkdtemp(prefix="corft-bench-lerobot-"))
    result: dict = {}
    try:
        if episodes is None:
            log(f"writing {count} synthetic episodes ({width}x{height} rgb8, 2 cameras at 30 fps, {seconds:g} s)")
            make_bench_bags(work / "episodes", robot, count, seconds, width, height, 30.0)
            episodes = work / "episodes"
            result["bags"] = {"synthetic": True, "episodes": count, "width": width, "height": height}
        else:
            result["bags"] = {"synthetic": False, "path": str(episodes)}
        bags = find_bags(episodes)
        _warm(bags)
        n, nbytes, read_s = plain_rosbags_loop(bags)
        result["plain_read"] = {"messages": n, "bytes": nbytes, "seconds": round(read_s, 3)}
        log(f"plain read: {n} messages, {nbytes / 1e6:.1f} MB in {read_s:.2f} s")
        for quality in ("lossless", "lerobot"):
            out = work / f"dataset-{quality}"
            t0 = time.perf_counter()
            report = export_dataset(episodes, out, robot, quality=quality, log=lambda _m: None)
            export_s = time.perf_counter() - t0
            size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
            entry = {"episodes": report.episodes, "frames": report.frames, "seconds": round(export_s, 3),
                     "frames_per_s": round(report.frames / export_s, 1),
                     "time_vs_plain_read": round(export_s / read_s, 2), "dataset_mb": round(size / 1e6, 2)}
            if quality == "lossless":
                t0 = time.perf_counter()
                back = import_dataset(out, work / "imported", robot, log=lambda _m: None)
                import_s = time.perf_counter() - t0
                entry["import"] = {"frames": back.frames, "seconds": round(import_s, 3),
                                   "frames_per_s": round(back.frames / import_s, 1)}
            result[f"export_{quality}"] = entry
            log(f"export ({quality}): {report.frames} frames in {export_s:.2f} s = {entry['frames_per_s']} frames/s, "
                f"{entry['time_vs_plain_read']}x a plain read, {entry['dataset_mb']} MB")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return result


def register(benches: argparse._SubParsersAction) -> None:
    p = benches.add_parser("lerobot", help="bag export-lerobot / import-lerobot throughput vs a plain read")
    p.add_argument("--episodes", default="", help="episodes folder (default: synthetic 640x480 episodes)")
    p.add_argument("--count", type=int, default=4, help="synthetic episodes (default 4)")
    p.add_argument("--seconds", type=float, default=4.0, help="synthetic episode length (default 4 s)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=cmd)


def cmd(args: argparse.Namespace) -> int:
    result = bench_lerobot(Path(args.episodes) if args.episodes else None, count=args.count, seconds=args.seconds)
    if args.json:
        print(json.dumps(result, indent=2))
    return 0
