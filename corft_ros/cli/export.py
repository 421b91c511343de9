"""`corft-ros export`: a training checkpoint (or a fresh initialisation) → models/<name>/."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "export", help="export a policy checkpoint (or a freshly initialised policy) to models/<name>/",
        description="Writes actor.onnx, critic.onnx, weights.safetensors and policy.yaml (normalization, "
                    "instruction embeddings, versions, sha256 of every file), and checks ONNX against torch.",
    )
    p.add_argument("checkpoint", nargs="?", help="torch checkpoint written by the trainer (corft-ros train)")
    p.add_argument("--init", action="store_true", help="export a freshly initialised policy instead of a checkpoint")
    p.add_argument("--name", default="default", help="model name: models/<name>/ (default %(default)s)")
    p.add_argument("--models-dir", default="models", help="where models go (default: ./models)")
    p.add_argument("--instruction", action="append", default=[], metavar="TEXT",
                   help="instruction whose embedding is stored with the model (repeatable; --init default: "
                        "config/sim.yaml's instruction)")
    p.add_argument("--robot-config", default="", help="--init: robot description (default: config/robot.yaml)")
    p.add_argument("--cameras", nargs="+", help="--init: camera names (default: front wrist)")
    p.add_argument("--image-size", type=int, nargs="+", metavar="PX", help="--init: image side, or height width")
    p.add_argument("--chunk-size", type=int, help="--init: actions per chunk (default 10)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="--init: any PolicyConfig field, e.g. --set d_model=64 (YAML values)")
    p.add_argument("--seed", type=int, default=0, help="--init: weight initialisation seed")
    p.set_defaults(func=cmd_export)


def cmd_export(args: argparse.Namespace) -> int:
    from corft_ros.core.policy.text import InstructionError
    from corft_ros.core.robot import ConfigError

    try:
        return _export(args)
    except (ConfigError, InstructionError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _export(args: argparse.Namespace) -> int:

    from corft_ros.core.params import parse_sets
    from corft_ros.core.policy.checkpoint import load_checkpoint
    from corft_ros.core.policy.export import export_policy
    from corft_ros.core.policy.fresh import default_instruction, init_policy
    from corft_ros.core.policy.model_files import load_metadata
    from corft_ros.core.policy.text import InstructionEmbeddings
    from corft_ros.core.robot import ConfigError

    if bool(args.init) == bool(args.checkpoint):
        raise ConfigError("give a checkpoint or --init (not both)")
    if args.init:
        overrides = parse_sets(args.set)
        model = init_policy(args.robot_config, args.cameras, args.image_size, args.chunk_size, overrides, args.seed)
        known: dict = {}
        texts = args.instruction or default_instruction()
    else:
        if args.cameras or args.image_size or args.chunk_size or args.set or args.robot_config:
            raise ConfigError("--cameras/--image-size/--chunk-size/--set/--robot-config apply to --init only")
        model, known = load_checkpoint(args.checkpoint)
        texts = args.instruction
    table = InstructionEmbeddings(known)
    table.add(texts)
    target = Path(args.models_dir) / args.name
    start = time.monotonic()
    export_policy(model, target, table.table())
    meta = load_metadata(target)
    cfg = meta.config
    print(f"exported {target} in {time.monotonic() - start:.1f} s: {model.num_parameters() / 1e6:.2f} M parameters, "
          f"cameras {cfg.camera_names} {cfg.image_width}x{cfg.image_height}, h={cfg.chunk_size}, "
          f"dt={cfg.action_dt:g}s, {len(meta.instructions)} instruction(s)")
    return 0
