"""`corft-ros measure inference`: ONNX Runtime vs torch eager, and critic-guided best-of-N, on this CPU."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from corft_ros.measure._common import cpu_name


def register(benches: argparse._SubParsersAction) -> None:
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


def _stats(samples: list[float]) -> dict:
    import numpy as np

    ms = np.asarray(samples) * 1e3
    return {"p50_ms": round(float(np.percentile(ms, 50)), 4), "p95_ms": round(float(np.percentile(ms, 95)), 4),
            "max_ms": round(float(ms.max()), 4), "mean_ms": round(float(ms.mean()), 4)}


def cmd_bench_inference(args: argparse.Namespace) -> int:
    import tempfile

    import numpy as np
    import torch

    from corft_ros.core.policy.backends import load_runtime
    from corft_ros.core.policy.export import export_policy
    from corft_ros.core.policy.fresh import init_policy
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
        "cpu": cpu_name(), "onnxruntime_providers": onnx_rt.active_providers,
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
