"""`corft-ros train`: IL, then CO-RFT, then export."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

NODE_ONLY = ("bags", "robot_config", "steps", "shutdown_when_done")


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "train", help="train a policy from recorded episodes: IL, then CO-RFT offline RL; export to models/<name>/",
        description="Replays episode bags into a cached chunked dataset, runs stage 1 (imitation learning) and/or "
                    "stage 2 (CO-RFT chunked offline RL) and exports the policy. Multi-process: "
                    "torchrun --nproc_per_node N corft-ros train ...",
    )
    p.add_argument("--bags", required=True, nargs="+",
                   help="episodes folder(s) (or episode / bag folders): all of them are one dataset")
    p.add_argument("--stage", choices=["il", "rl", "bc", "all"],
                   help="il, rl (needs --init or a resumable run), bc (the control arm: extra supervised steps from "
                        "--init, no critic) or all (il then rl)")
    p.add_argument("--output", help="run folder: checkpoints/, tensorboard/, train.json (default: runs/<name>)")
    p.add_argument("--steps", type=int, help="cap gradient steps per stage (quick runs)")
    p.add_argument("--strict", action="store_true", help="a bad bag stops the job instead of being skipped")
    p.add_argument("--name", help="exported model name (models/<name>/)")
    p.add_argument("--models-dir", help="where exported models go (default: ./models)")
    p.add_argument("--init", help="start from this policy checkpoint")
    p.add_argument("--no-resume", action="store_true", help="ignore <output>/checkpoints/latest.pt")
    p.add_argument("--no-export", action="store_true", help="skip the export")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"])
    p.add_argument("--cache", help="dataset cache folder")
    p.add_argument("--config", default="", help="parameter YAML (default: config/train.yaml)")
    p.add_argument("--robot-config", default="", help="robot description (default: config/robot.yaml)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="any training parameter, e.g. --set corft.gamma=0.98 --set policy.chunk_size=5 (YAML values)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_train)


def load_params(path: str) -> dict:
    """ros__parameters of a trainer YAML (the '/**' or 'trainer' section)."""
    import yaml

    from corft_ros.core.paths import config_path
    from corft_ros.core.robot import ConfigError

    file = Path(path) if path else config_path("train")
    if not file.is_file():
        if path:
            raise ConfigError(f"training config not found: {file}")
        return {}
    try:
        data = yaml.safe_load(file.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{file}: not valid YAML ({str(exc).splitlines()[0]})") from None
    for section in ("/**", "trainer", "/trainer"):
        if isinstance(data.get(section), dict) and "ros__parameters" in data[section]:
            return dict(data[section]["ros__parameters"] or {})
    raise ConfigError(f"{file}: no '/**: ros__parameters:' (or 'trainer:') section")


def cmd_train(args: argparse.Namespace) -> int:
    from corft_ros.core.robot import ConfigError

    try:
        return _train(args)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _train(args: argparse.Namespace) -> int:
    from corft_ros.core.episodes.errors import EpisodeReadError
    from corft_ros.core.params import parse_sets
    from corft_ros.core.policy.model_files import ModelError
    from corft_ros.core.rl.corft import QDivergenceError
    from corft_ros.core.rl.trainer import config_from_params, train
    from corft_ros.core.robot import load_robot_config

    params = load_params(args.config)
    robot_path = args.robot_config or params.get("robot_config") or None
    for key in NODE_ONLY:
        params.pop(key, None)
    params.update(parse_sets(args.set))
    flags = {
        "stage": args.stage, "output": args.output, "name": args.name, "models_dir": args.models_dir,
        "init_checkpoint": args.init, "device": args.device,
    }
    params.update({k: v for k, v in flags.items() if v is not None})
    if args.strict:
        params["strict"] = True
    if args.no_resume:
        params["resume"] = False
    if args.no_export:
        params["export"] = False
    if args.no_progress:
        params["progress"] = False
    if args.cache:
        params.setdefault("dataset", {})
        params["dataset"] = {**params["dataset"], "cache_dir": args.cache} if isinstance(params["dataset"], dict) \
            else {"cache_dir": args.cache}
    if args.output is None and args.name:
        params["output"] = f"runs/{args.name}"
    cfg = config_from_params(params)
    if args.steps is not None and args.steps < 1:
        print("error: --steps must be >= 1", file=sys.stderr)
        return 2
    robot = load_robot_config(robot_path)
    try:
        summary = train(args.bags, cfg, robot, steps_cap=args.steps, log=lambda m: print(m, file=sys.stderr))
    except (EpisodeReadError, QDivergenceError, ModelError) as exc:
        print(f"error: {str(exc).splitlines()[0]}", file=sys.stderr)
        return 1
    finally:
        _shutdown_distributed()
    if int(os.environ.get("RANK", "0")) != 0:
        return 0  # under torchrun, rank 0 speaks for the job
    stages = summary.get("stages", {})
    for stage, info in stages.items():
        rate = info.get("steps_per_s")
        rate_txt = f", {rate:.2f} steps/s" if rate else ""
        print(f"{stage}: {info.get('steps')} steps{rate_txt}", file=sys.stderr)
    if summary.get("export"):
        print(summary["export"])
    return 0


def _shutdown_distributed() -> None:
    try:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()
    except Exception:
        pass
