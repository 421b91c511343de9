"""`corft-ros export` (checkpoint or fresh init → models/<name>/) and `corft-ros bench inference`."""

from __future__ import annotations

import argparse
import json
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
    p.add_argument("--name", default="default", help="model name: models/<name>/ (default: default)")
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


def register_bench(benches: argparse._SubParsersAction) -> None:
    p = benches.add_parser(
        "inference", help="policy inference: ONNX Runtime vs torch eager p50/p95, speed-up, max |difference|",
    )
    p.add_argument("--model", default="", help="exported model directory (default: a fresh bundled-size model)")
    p.add_argument("--iters", type=int, default=300, help="timed inferences per backend")
    p.add_argument("--warmup", type=int, default=20, help="untimed inferences per backend first")
    p.add_argument("--threads", type=int, default=1, help="intra-op threads for both backends")
    p.add_argument("--best-of-n", type=int, default=8, help="critic-guided selection: N candidate chunks scored "
                   "in one batched call, timed beside plain inference (1: skip)")
    p.add_argument("--head", choices=["regression", "flow"], default="flow",
                   help="fresh model's action expert (without --model)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_bench_inference)


# ---------------------------------------------------------------------------------------------------- export
def _default_instruction() -> list[str]:
    """The sim's task instruction (config/sim.yaml), so a fresh model needs no encoder at deploy in the sim."""
    import yaml

    from corft_ros.core.paths import config_path

    try:
        data = yaml.safe_load(config_path("sim").read_text()) or {}
        text = data["sim_arm"]["ros__parameters"]["instruction"]
    except (OSError, KeyError, TypeError, yaml.YAMLError):
        return []
    return [str(text)] if str(text).strip() else []


def init_policy(robot_config: str = "", cameras: list[str] | None = None, image_size: list[int] | None = None,
                chunk_size: int | None = None, overrides: dict | None = None, seed: int = 0):
    """A freshly initialised ChunkPolicy for a robot/camera config. Normalization: state and action means at the
    robot's home pose; action std 0.05 rad so the untrained policy's chunks stay near home."""
    import numpy as np
    import torch

    from corft_ros.core.policy.config import PolicyConfig
    from corft_ros.core.policy.model import ChunkPolicy
    from corft_ros.core.robot import ConfigError, load_robot_config

    robot = load_robot_config(robot_config or None)
    fields = dict(overrides or {})
    if image_size:
        if len(image_size) not in (1, 2):
            raise ConfigError("--image-size takes one side or height width")
        fields["image_height"], fields["image_width"] = image_size[0], image_size[-1]
    if chunk_size is not None:
        fields["chunk_size"] = chunk_size
    try:
        config = PolicyConfig.for_robot(robot, camera_names=cameras, **fields)
    except TypeError as exc:
        raise ConfigError(f"--set: {exc}") from None
    torch.manual_seed(seed)
    model = ChunkPolicy(config)
    home = robot.home_array
    model.set_normalization(home, np.ones_like(home), home, np.full_like(home, 0.05))
    return model.eval()


def cmd_export(args: argparse.Namespace) -> int:
    from corft_ros.core.policy.text import InstructionError
    from corft_ros.core.robot import ConfigError

    try:
        return _export(args)
    except (ConfigError, InstructionError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _export(args: argparse.Namespace) -> int:
    import yaml

    from corft_ros.core.policy.export import export_policy, load_checkpoint, load_metadata
    from corft_ros.core.policy.text import InstructionEmbeddings
    from corft_ros.core.robot import ConfigError

    if bool(args.init) == bool(args.checkpoint):
        raise ConfigError("give a checkpoint or --init (not both)")
    if args.init:
        overrides = {}
        for item in args.set:
            if "=" not in item:
                raise ConfigError(f"--set expects KEY=VALUE, got {item!r}")
            key, value = item.split("=", 1)
            overrides[key.strip()] = yaml.safe_load(value)
        model = init_policy(args.robot_config, args.cameras, args.image_size, args.chunk_size, overrides, args.seed)
        known: dict = {}
        texts = args.instruction or _default_instruction()
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


# ---------------------------------------------------------------------------------------------------- bench
def _stats(samples: list[float]) -> dict:
    import numpy as np

    ms = np.asarray(samples) * 1e3
    return {"p50_ms": round(float(np.percentile(ms, 50)), 4), "p95_ms": round(float(np.percentile(ms, 95)), 4),
            "max_ms": round(float(ms.max()), 4), "mean_ms": round(float(ms.mean()), 4)}


def cmd_bench_inference(args: argparse.Namespace) -> int:
    import tempfile

    import numpy as np
    import torch

    from corft_ros.core.policy.export import export_policy
    from corft_ros.core.policy.runtime import load_runtime
    from corft_ros.core.sim.scene import TASK

    if args.iters < 1 or args.warmup < 0 or args.threads < 1 or args.best_of_n < 1:
        print("error: --iters, --threads, --best-of-n must be >= 1 and --warmup >= 0", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="corft-bench-") as tmp:
        model_dir = Path(args.model) if args.model else None
        instruction = TASK
        if model_dir is None:
            rng = np.random.default_rng(0)
            emb = rng.standard_normal(384).astype(np.float32)
            model_dir = export_policy(init_policy(overrides={"action_head": args.head}), Path(tmp) / "bench",
                                      {instruction: emb / np.linalg.norm(emb)})
        common = {"threads": args.threads, "best_of_n": 1, "seed": 0}
        runtimes = {"onnx": load_runtime(model_dir, "onnx", **common),
                    "torch_eager": load_runtime(model_dir, "torch", device="cpu", **common)}
        onnx_rt = runtimes["onnx"]
        if args.model:
            instruction = (onnx_rt.instructions.instructions or [instruction])[0]
        cfg = onnx_rt.config
        rng = np.random.default_rng(1)
        scenes = [{c: rng.integers(0, 256, (*cfg.image_size, 3), dtype=np.uint8) for c in cfg.camera_names}
                  for _ in range(8)]
        mean, std = onnx_rt.meta.normalization["state_mean"], onnx_rt.meta.normalization["state_std"]
        states = [mean + 0.1 * std * rng.standard_normal(cfg.action_dim) for _ in range(8)]
        cold = {}
        for name, rt in runtimes.items():
            start = time.perf_counter()
            rt.predict(scenes[0], states[0], instruction)
            cold[name] = round((time.perf_counter() - start) * 1e3, 3)
            for i in range(args.warmup):
                rt.predict(scenes[i % 8], states[i % 8], instruction)
        times: dict[str, list[float]] = {name: [] for name in runtimes}
        max_diff = 0.0
        for i in range(args.iters):  # interleaved, so background load hits both backends alike
            outputs = {}
            for name, rt in runtimes.items():
                rt.rng = np.random.default_rng(i)  # same best-of-N candidates for both backends
                start = time.perf_counter()
                outputs[name] = rt.predict(scenes[i % 8], states[i % 8], instruction)
                times[name].append(time.perf_counter() - start)
            max_diff = max(max_diff, float(np.abs(outputs["onnx"] - outputs["torch_eager"]).max()))
        selection = None
        if args.best_of_n > 1:  # critic-guided selection as the policy node runs it: one batched sampler call
            select = load_runtime(model_dir, "onnx", threads=args.threads, best_of_n=args.best_of_n, seed=0, prefix=2)
            for i in range(args.warmup):
                select.predict(scenes[i % 8], states[i % 8], instruction)
            samples = []
            for i in range(args.iters):
                start = time.perf_counter()
                select.predict(scenes[i % 8], states[i % 8], instruction)
                samples.append(time.perf_counter() - start)
            selection = {"n": args.best_of_n, "onnx": _stats(samples), "one_batched_call": select.has_sampler,
                         "over_plain_p50": round(_stats(samples)["p50_ms"] / _stats(times["onnx"])["p50_ms"], 3)}
    result = {
        "bench": "inference",
        "what": "PolicyRuntime.predict end to end (uint8 images -> absolute chunk), same weights, same inputs",
        "model": {"path": args.model or "fresh bundled-size model", "parameters": runtimes["torch_eager"].model
                  .num_parameters(), "cameras": cfg.camera_names, "image": f"{cfg.image_width}x{cfg.image_height}",
                  "chunk": [cfg.chunk_size, cfg.action_dim], "num_critics": cfg.num_critics,
                  "action_head": cfg.action_head},
        "threads": args.threads, "iters": args.iters,
        "cpu": _cpu_name(), "onnxruntime_providers": onnx_rt.active_providers,
        "onnx": _stats(times["onnx"]), "torch_eager": _stats(times["torch_eager"]),
        "cold_start_ms": cold,
        "best_of_n": selection,
    }
    result["torch_over_onnx_p50"] = round(result["torch_eager"]["p50_ms"] / result["onnx"]["p50_ms"], 3)
    result["max_abs_diff"] = max_diff
    result["goals"] = {
        "onnx_p50_le_10ms": result["onnx"]["p50_ms"] <= 10.0,
        "onnx_1.5x_faster_than_torch": result["torch_over_onnx_p50"] >= 1.5,
        "outputs_equal_within_1e-4": max_diff <= 1e-4,
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"onnx p50 {result['onnx']['p50_ms']:.3f} ms p95 {result['onnx']['p95_ms']:.3f} ms | torch eager p50 "
              f"{result['torch_eager']['p50_ms']:.3f} ms p95 {result['torch_eager']['p95_ms']:.3f} ms | "
              f"torch/onnx {result['torch_over_onnx_p50']:.2f}x | max |diff| {max_diff:.2e}")
        if selection:
            print(f"best-of-{selection['n']} (onnx, one call): p50 {selection['onnx']['p50_ms']:.3f} ms p95 "
                  f"{selection['onnx']['p95_ms']:.3f} ms ({selection['over_plain_p50']:.2f}x plain)")
    return 0


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or "unknown"
