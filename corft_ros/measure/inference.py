"""`corft-ros measure inference`: ONNX Runtime vs torch eager, and critic-guided best-of-N, on this CPU."""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
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

    import torch

    from corft_ros.core.sim.scene import TASK

    if args.iters < 1 or args.warmup < 0 or args.threads < 1 or args.best_of_n < 1:
        print("error: --iters, --threads, --best-of-n must be >= 1 and --warmup >= 0", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="corft-bench-") as tmp:
        model_dir = Path(args.model) if args.model else _fresh_model(args.head, Path(tmp) / "bench", TASK)
        runtimes = _runtimes(model_dir, args.threads)
        onnx_rt = runtimes["onnx"]
        instruction = (onnx_rt.instructions.instructions or [TASK])[0] if args.model else TASK
        inputs = _Inputs.drawn(onnx_rt)
        cold = _cold_start_and_warm_up(runtimes, inputs, instruction, args.warmup)
        times, max_diff = _timed_interleaved(runtimes, inputs, instruction, args.iters)
        selection = None
        if args.best_of_n > 1:  # critic-guided selection as the policy node runs it: one batched sampler call
            selection = _best_of_n(args, model_dir, inputs, instruction, times["onnx"])
    result = _result(args, runtimes, cold, times, max_diff, selection)
    _print_inference(result, args.json)
    return 0


def _fresh_model(head: str, folder: Path, instruction: str) -> Path:
    """A fresh bundled-size model (action expert `head`) exported into `folder`, knowing `instruction`."""
    import numpy as np

    from corft_ros.core.policy.export import export_policy
    from corft_ros.core.policy.fresh import init_policy

    rng = np.random.default_rng(0)
    emb = rng.standard_normal(384).astype(np.float32)
    return export_policy(init_policy(overrides={"action_head": head}), folder, {instruction: emb / np.linalg.norm(emb)})


def _runtimes(model_dir: Path, threads: int) -> dict:
    """The model under ONNX Runtime and under torch eager (CPU), plain inference (best-of-1), same seed."""
    from corft_ros.core.policy.backends import load_runtime

    common = {"threads": threads, "best_of_n": 1, "seed": 0}
    return {"onnx": load_runtime(model_dir, "onnx", **common),
            "torch_eager": load_runtime(model_dir, "torch", device="cpu", **common)}


@dataclass
class _Inputs:
    """8 random scenes (uint8 images per camera) and joint states near the model's state mean, used round robin."""

    scenes: list
    states: list

    @classmethod
    def drawn(cls, rt) -> _Inputs:
        import numpy as np

        cfg = rt.config
        rng = np.random.default_rng(1)
        scenes = [{c: rng.integers(0, 256, (*cfg.image_size, 3), dtype=np.uint8) for c in cfg.camera_names}
                  for _ in range(8)]
        mean, std = rt.meta.normalization["state_mean"], rt.meta.normalization["state_std"]
        states = [mean + 0.1 * std * rng.standard_normal(cfg.action_dim) for _ in range(8)]
        return cls(scenes, states)

    def predict(self, rt, i: int, instruction: str):
        return rt.predict(self.scenes[i % 8], self.states[i % 8], instruction)


def _cold_start_and_warm_up(runtimes: dict, inputs: _Inputs, instruction: str, warmup: int) -> dict[str, float]:
    """Each backend's first inference (ms), then its `warmup` untimed ones."""
    cold = {}
    for name, rt in runtimes.items():
        start = time.perf_counter()
        inputs.predict(rt, 0, instruction)
        cold[name] = round((time.perf_counter() - start) * 1e3, 3)
        for i in range(warmup):
            inputs.predict(rt, i, instruction)
    return cold


def _timed_interleaved(runtimes: dict, inputs: _Inputs, instruction: str,
                       iters: int) -> tuple[dict[str, list[float]], float]:
    """`iters` timed inferences per backend (s), interleaved, and the largest |difference| between their outputs."""
    import numpy as np

    times: dict[str, list[float]] = {name: [] for name in runtimes}
    max_diff = 0.0
    for i in range(iters):  # interleaved, so background load hits both backends alike
        outputs = {}
        for name, rt in runtimes.items():
            rt.rng = np.random.default_rng(i)  # same best-of-N candidates for both backends
            start = time.perf_counter()
            outputs[name] = inputs.predict(rt, i, instruction)
            times[name].append(time.perf_counter() - start)
        max_diff = max(max_diff, float(np.abs(outputs["onnx"] - outputs["torch_eager"]).max()))
    return times, max_diff


def _best_of_n(args: argparse.Namespace, model_dir: Path, inputs: _Inputs, instruction: str,
               plain: list[float]) -> dict:
    """Critic-guided best-of-N under ONNX Runtime, timed like plain inference (`plain`: its times, s)."""
    from corft_ros.core.policy.backends import load_runtime

    select = load_runtime(model_dir, "onnx", threads=args.threads, best_of_n=args.best_of_n, seed=0, prefix=2)
    for i in range(args.warmup):
        inputs.predict(select, i, instruction)
    samples = []
    for i in range(args.iters):
        start = time.perf_counter()
        inputs.predict(select, i, instruction)
        samples.append(time.perf_counter() - start)
    return {"n": args.best_of_n, "onnx": _stats(samples), "one_batched_call": select.has_sampler,
            "over_plain_p50": round(_stats(samples)["p50_ms"] / _stats(plain)["p50_ms"], 3)}


def _result(args: argparse.Namespace, runtimes: dict, cold: dict, times: dict, max_diff: float,
            selection: dict | None) -> dict:
    onnx_rt = runtimes["onnx"]
    cfg = onnx_rt.config
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
    return result


def _print_inference(result: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(result, indent=2))
        return
    selection = result["best_of_n"]
    print(f"onnx p50 {result['onnx']['p50_ms']:.3f} ms p95 {result['onnx']['p95_ms']:.3f} ms | torch eager p50 "
          f"{result['torch_eager']['p50_ms']:.3f} ms p95 {result['torch_eager']['p95_ms']:.3f} ms | "
          f"torch/onnx {result['torch_over_onnx_p50']:.2f}x | max |diff| {result['max_abs_diff']:.2e}")
    if selection:
        print(f"best-of-{selection['n']} (onnx, one call): p50 {selection['onnx']['p50_ms']:.3f} ms p95 "
              f"{selection['onnx']['p95_ms']:.3f} ms ({selection['over_plain_p50']:.2f}x plain)")
