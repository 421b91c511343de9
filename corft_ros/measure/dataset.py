"""`corft-ros measure dataset`: what the data pipeline and the trainer cost, measured, never assumed.

(a) build: bag → cached dataset (cold cache: hash, read, decode the frames that ticks use, resize, write
    .npy), as a ratio to a plain rosbags loop that reads and deserializes every message of the same bags;
(b) sampling: one epoch of training batches gathered from the memory-mapped cache vs the same epoch when
    every bag must be decoded again first (no cache);
(c) trainer steps/s for IL and CO-RFT on the default-size model.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from corft_ros.core.robot import RobotConfig


def plain_rosbags_loop(bags: list[Path]) -> tuple[int, int, float]:
    """(messages, bytes, seconds): read + deserialize every message with rosbags' typestore."""
    from rosbags.rosbag2 import Reader
    from rosbags.typesys import Stores, get_typestore

    ts = get_typestore(Stores.ROS2_KILTED)
    n = nbytes = 0
    t0 = time.perf_counter()
    for bag in bags:
        with Reader(bag) as reader:
            for conn, _t, data in reader.messages():
                ts.deserialize_cdr(data, conn.msgtype)
                n += 1
                nbytes += len(data)
    return n, nbytes, time.perf_counter() - t0


def _warm(bags: list[Path]) -> None:
    """Read every file once so both contenders start from the same (warm) page cache."""
    for bag in bags:
        for f in bag.iterdir():
            if f.is_file():
                with open(f, "rb") as fh:
                    while fh.read(16 << 20):
                        pass


def make_bench_bags(root: Path, robot: RobotConfig, episodes: int, seconds: float, width: int, height: int,
                    fps: float) -> list[Path]:
    from corft_ros.core.dataset import synthetic

    paths = synthetic.write_dataset(
        root, robot, episodes, seed=1, image_hw=(height, width), camera_fps=fps, joint_state_hz=100.0,
        command_hz=50.0, duration_s=seconds,
    )
    return paths


def bench_dataset(bags_root: Path | None, robot: RobotConfig, *, episodes: int = 4, seconds: float = 4.0,
                  width: int = 640, height: int = 480, fps: float = 30.0, batch_size: int = 32,
                  train_steps: int = 20, policy_overrides: dict | None = None, log=print) -> dict:
    import torch  # noqa: F401 (torch and the trainer are loaded before anything is timed, as they always were)

    from corft_ros.core.dataset.config import DatasetConfig
    from corft_ros.core.episodes.layout import data_files, find_bags
    from corft_ros.core.rl import batches, rewards, trainer  # noqa: F401

    work = Path(tempfile.mkdtemp(prefix="corft-bench-"))
    result: dict = {}
    try:
        if bags_root is None:
            log(f"writing {episodes} synthetic episodes ({width}x{height} rgb8, 2 cameras at {fps:g} fps)")
            make_bench_bags(work / "episodes", robot, episodes, seconds, width, height, fps)
            bags_root = work / "episodes"
            result["bags"] = {"synthetic": True, "episodes": episodes, "width": width, "height": height, "fps": fps}
        else:
            result["bags"] = {"synthetic": False, "path": str(bags_root)}
        bags = find_bags(bags_root)
        size = sum(f.stat().st_size for b in bags for f in data_files(b))
        result["bags"]["files_mb"] = round(size / 1e6, 1)

        cfg = DatasetConfig(cache_dir=str(work / "cache"))
        result["build"], report = _measure_build(bags_root, bags, robot, cfg)
        log(f"(a) build {result['build']['ratio']:.2f}x a plain rosbags read+deserialize loop")
        chunk_size = int((policy_overrides or {}).get("chunk_size", 10))
        result["sampling"] = _measure_sampling(report, robot, cfg, chunk_size, batch_size)
        log(f"(b) sampling from the cache {result['sampling']['ratio']:.1f}x faster than decoding bags")
        if train_steps > 0:
            result["trainer"] = _measure_trainer(bags_root, robot, work, train_steps, batch_size, policy_overrides)
            log(f"(c) IL {result['trainer']['il_steps_per_s']} steps/s, CO-RFT {result['trainer']['rl_steps_per_s']}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return result


def _measure_build(bags_root: Path, bags: list[Path], robot: RobotConfig, cfg) -> tuple[dict, object]:
    """(a) build vs plain rosbags loop: the cold-cache build and a cache hit, timed; (figures, the load report)."""
    from corft_ros.core.dataset.load import load_episodes

    _warm(bags)
    n, nbytes, t_plain = plain_rosbags_loop(bags)
    _warm(bags)
    t0 = time.perf_counter()
    report = load_episodes(bags_root, robot, cfg, log=lambda _m: None)
    t_build = time.perf_counter() - t0
    t0 = time.perf_counter()
    load_episodes(bags_root, robot, cfg, log=lambda _m: None)
    t_hit = time.perf_counter() - t0
    build = {
        "messages": n,
        "message_mb": round(nbytes / 1e6, 1),
        "plain_rosbags_s": round(t_plain, 3),
        "plain_rosbags_mb_per_s": round(nbytes / 1e6 / t_plain, 1),
        "build_s": round(t_build, 3),
        "build_mb_per_s": round(nbytes / 1e6 / t_build, 1),
        "ratio": round(t_plain / t_build, 3),
        "goal": 0.5,
        "cache_hit_s": round(t_hit, 4),
        "episodes": len(report.episodes),
        "ticks": int(sum(len(e) for e in report.episodes)),
    }
    return build, report


def _measure_sampling(report, robot: RobotConfig, cfg, chunk_size: int, batch_size: int) -> dict:
    """(b) one epoch of RL batches: from the cache vs decoding the bags again."""
    from corft_ros.core.dataset.build import build_episode
    from corft_ros.core.rl.batches import ChunkData
    from corft_ros.core.rl.rewards import RewardConfig

    texts = {e.instruction: np.zeros(384, np.float32) for e in report.episodes}

    def epoch(data: ChunkData) -> int:
        rows = np.random.default_rng(0).permutation(len(data))
        for i in range(0, len(rows), batch_size):
            data.batch(rows[i:i + batch_size], with_next=True)
        return len(rows)

    t0 = time.perf_counter()
    samples = epoch(ChunkData(report.episodes, chunk_size, RewardConfig(), cfg.camera_names, texts))
    t_cache = time.perf_counter() - t0
    t0 = time.perf_counter()
    fresh = []
    for ep in report.episodes:
        arrays, stats = build_episode(ep.bag, robot, cfg)
        fresh.append(type(ep)(ep.bag, ep.key, ep.instruction, ep.success,
                              {c: arrays[f"image_{c}"] for c in cfg.camera_names}, arrays["state"],
                              arrays["action"], arrays["tick_ns"], stats))
    epoch(ChunkData(fresh, chunk_size, RewardConfig(), cfg.camera_names, texts))
    t_decode = time.perf_counter() - t0
    return {
        "samples_per_epoch": samples,
        "batch_size": batch_size,
        "cache_epoch_s": round(t_cache, 4),
        "decode_epoch_s": round(t_decode, 3),
        "cache_samples_per_s": round(samples / t_cache, 1),
        "ratio": round(t_decode / t_cache, 1),
        "goal": 10.0,
    }


def _measure_trainer(bags_root: Path, robot: RobotConfig, work: Path, train_steps: int, batch_size: int,
                     policy_overrides: dict | None) -> dict:
    """(c) trainer steps/s (default model unless overridden), export off."""
    import torch

    from corft_ros.core.rl.trainer import config_from_params, train

    params = {
        "output": str(work / "run"), "models_dir": str(work / "models"), "export": False, "progress": False,
        "il_steps": train_steps, "rl_steps": train_steps, "batch_size": batch_size, "log_every": 10,
        "checkpoint_every": 10 ** 9, "dataset": {"cache_dir": str(work / "cache")},
        "corft": {"actor_warmup_steps": 0},  # every 2nd step has its actor update, as after warmup
        "policy": dict(policy_overrides or {}),
    }
    cfg_t = config_from_params(params)
    summary = train(bags_root, cfg_t, robot, log=lambda _m: None)
    return {
        "il_steps_per_s": round(summary["stages"]["il"]["steps_per_s"], 2),
        "rl_steps_per_s": round(summary["stages"]["rl"]["steps_per_s"], 2),
        "steps": train_steps,
        "batch_size": batch_size,
        "threads": torch.get_num_threads(),
        "device": summary["device"],
        "policy_parameters": _param_count(summary["policy"]),
    }


def _param_count(policy_dict: dict) -> int:
    from corft_ros.core.policy.config import PolicyConfig
    from corft_ros.core.policy.model import ChunkPolicy

    return ChunkPolicy(PolicyConfig.from_dict(policy_dict)).num_parameters()


def register(benches: argparse._SubParsersAction) -> None:
    p = benches.add_parser("dataset", help="bag -> cached dataset build, cached sampling, trainer steps/s")
    p.add_argument("--bags", default="", help="episodes to measure (default: synthetic 640x480 episodes)")
    p.add_argument("--episodes", type=int, default=4, help="synthetic episodes")
    p.add_argument("--seconds", type=float, default=4.0, help="length of each synthetic episode")
    p.add_argument("--width", type=int, default=640)
    p.add_argument("--height", type=int, default=480)
    p.add_argument("--fps", type=float, default=30.0)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--train-steps", type=int, default=20, help="steps per stage for the steps/s figure (0: skip)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="policy.* overrides")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_bench_dataset)


def cmd_bench_dataset(args: argparse.Namespace) -> int:
    if (not args.bags and min(args.episodes, args.width, args.height) < 1) or not (args.seconds > 0 and args.fps > 0) \
            or args.batch_size < 1 or args.train_steps < 0:
        print("error: --episodes, --width, --height and --batch-size must be >= 1, --seconds and --fps positive, "
              "--train-steps >= 0", file=sys.stderr)
        return 2
    from corft_ros.core.params import parse_sets
    from corft_ros.core.robot import load_robot_config
    from corft_ros.measure._common import print_result

    overrides = {k.split(".", 1)[1] if k.startswith("policy.") else k: v for k, v in parse_sets(args.set).items()}
    result = bench_dataset(
        Path(args.bags) if args.bags else None, load_robot_config(), episodes=args.episodes, seconds=args.seconds,
        width=args.width, height=args.height, fps=args.fps, batch_size=args.batch_size,
        train_steps=args.train_steps, policy_overrides=overrides, log=lambda m: print(m, file=sys.stderr),
    )
    print_result(result, args.json)
    return 0
