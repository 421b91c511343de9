"""`corft-ros measure rollouts`: a fast screen of exported policies in the sim, without ROS.

Closed-loop trials in one thread on sim time (corft_ros.core.sim.rollout): the deployed timing (cameras and policy
at 10 Hz, the chunk executor at the control rate) without transport, so a 20 s trial costs a few seconds of CPU.
Use it to pick checkpoints and recipes; report numbers from `corft-ros benchmark` (the real graph over DDS).
"""

from __future__ import annotations

import argparse
import json
import sys

from corft_ros.core.sim.scene import TASK


def register(benches: argparse._SubParsersAction) -> None:
    p = benches.add_parser("rollouts", help="fast sim screen of exported models without ROS (success, cycle time)",
                           description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", required=True, metavar="DIR", help="exported model folders")
    p.add_argument("--trials", type=int, default=20, help="trials per model and region (default 20)")
    p.add_argument("--regions", nargs="+", default=["seen"], help="seen and/or unseen (default seen)")
    p.add_argument("--seed", type=int, default=0, help="sim seed of the first trial (trial i: seed + i)")
    p.add_argument("--timeout", type=float, default=20.0, help="time limit per trial, s of sim time")
    p.add_argument("--mode", default="temporal_ensembling", help="executor mode")
    p.add_argument("--instruction", default=TASK,
                   help="task instruction (default: the sim's)")
    p.add_argument("--best-of-n", type=int, default=0, help="critic-guided selection: N candidates (0: what each "
                   "model's policy.yaml asks for; 1: none)")
    p.add_argument("--json", action="store_true", help="print JSON only")
    p.set_defaults(func=cmd_rollouts)


def cmd_rollouts(args: argparse.Namespace) -> int:
    import numpy as np

    from corft_ros.core.chunking import MODES
    from corft_ros.core.policy.backends import load_runtime
    from corft_ros.core.policy.config import executed_prefix
    from corft_ros.core.policy.model_files import ModelError
    from corft_ros.core.robot import ConfigError, load_robot_config
    from corft_ros.core.sim.regions import REGIONS
    from corft_ros.core.sim.rollout import RolloutConfig, rollout
    from corft_ros.core.sim.scene import CubeScene, SceneConfig
    from corft_ros.core.trials.stats import wilson_interval

    bad = [r for r in args.regions if r not in REGIONS]
    if bad or args.mode not in MODES or args.trials < 1 or not args.timeout > 0:
        what = (f"unknown region '{bad[0]}'" if bad else f"unknown mode '{args.mode}'" if args.mode not in MODES
                else "--trials must be >= 1 and --timeout positive")
        print(f"error: {what}", file=sys.stderr)
        return 2
    robot = load_robot_config(None)
    try:
        # deployed as the node deploys them: best-of-N as the model asks, ranked by the prefix that executes
        runtimes = {}
        for m in args.models:
            rt = load_runtime(m, "onnx", threads=1, best_of_n=args.best_of_n or None, seed=args.seed)
            rt.prefix = executed_prefix(RolloutConfig().policy_rate_hz, rt.action_dt, rt.chunk_size)
            runtimes[m] = rt
    except (ModelError, ConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    cameras = sorted({c for rt in runtimes.values() for c in rt.camera_names})
    scene = CubeScene(robot, SceneConfig(cameras=tuple(cameras)))
    config = RolloutConfig(timeout_s=args.timeout, mode=args.mode)
    results = []
    try:
        for model, runtime in runtimes.items():
            for region in args.regions:
                trials = [rollout(scene, runtime, robot, args.seed + i, region, args.instruction, config)
                          for i in range(args.trials)]
                wins = [t for t in trials if t.success]
                lo, hi = wilson_interval(len(wins), len(trials))
                row = {"model": model, "region": region, "best_of_n": runtime.best_of_n, "trials": len(trials),
                       "successes": len(wins),
                       "success_rate": len(wins) / len(trials), "success_ci95": [lo, hi],
                       "cycle_time_mean_s": float(np.mean([t.duration_s for t in wins])) if wins else None,
                       "wall_s": float(sum(t.wall_s for t in trials))}
                results.append(row)
                if not args.json:
                    cycle = f"{row['cycle_time_mean_s']:.2f} s" if wins else "-"
                    print(f"{model} {region}: {len(wins)}/{len(trials)} ({100 * lo:.0f}-{100 * hi:.0f}%), "
                          f"cycle time {cycle}, {row['wall_s']:.0f} s wall", flush=True)
    finally:
        scene.close()
    out = {"bench": "rollouts", "command": "corft-ros " + " ".join(sys.argv[1:]), "timeout_s": args.timeout,
           "mode": args.mode, "note": "ROS-free screen on sim time; report numbers from corft-ros benchmark",
           "results": results}
    if args.json:
        print(json.dumps(out, indent=2))
    return 0
