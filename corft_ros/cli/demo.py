"""`corft-ros demo` (what `make demo` runs): the sim arm, the bundled model deployed through the sim's rendered cameras
→ policy → executor → sim, every episode logged, ~10 benchmark trials, the measured summary and where the report is.

Without a bundled model (models/default) it says so and benchmarks the scripted human-like operator instead: real
measured numbers of the same pipeline (sim, logger, benchmark), never made-up ones.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from datetime import datetime
from pathlib import Path

NO_MODEL = "not yet: no bundled model at models/default (issue 7: `make experiment` trains it)"


def register(commands: argparse._SubParsersAction) -> None:
    from corft_ros.benchmark import BenchConfig
    from corft_ros.cli._args import add_realtime_factor

    p = commands.add_parser("demo", help="the sim arm + the bundled model: ~10 benchmark trials, measured summary")
    p.add_argument("--trials", type=int, default=BenchConfig.trials, help=f"trials (default {BenchConfig.trials})")
    p.add_argument("--timeout", type=float, default=15.0, help="time limit per trial, s of sim time (default 15)")
    add_realtime_factor(p, default=0.0)
    p.add_argument("--output", default="", help="report folder (default bench/demo-<date-time>)")
    p.set_defaults(func=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    from corft_ros.benchmark import BenchConfig, check_model, make_arms, run_benchmark
    from corft_ros.cli._args import realtime_factor
    from corft_ros.core.paths import models_dir
    from corft_ros.core.robot import ConfigError, load_robot_config

    if args.trials < 1 or not args.timeout > 0:
        print("error: --trials must be >= 1 and --timeout positive", file=sys.stderr)
        return 2
    model = models_dir() / "default"
    if model.exists():
        try:
            check_model(str(model), load_robot_config(None))
        except ConfigError as exc:
            print(f"error: the bundled model is not usable: {exc}", file=sys.stderr)
            return 2
        arms = make_arms([str(model)], ["temporal_ensembling"], operator=False)
        what = f"the bundled model ({model})"
    else:
        print(NO_MODEL, flush=True)
        arms = make_arms([], [], operator=True)
        what = "the scripted human-like operator (no bundled model yet)"
    out = Path(args.output or Path("bench") / f"demo-{datetime.now().strftime('%Y%m%d-%H%M%S')}")
    print(f"demo: sim arm (MuJoCo, rendered cameras) + {what}: {args.trials} trials, episodes logged", flush=True)
    config = BenchConfig(arms=arms, trials=args.trials, regions=["seen"], timeout_s=args.timeout, output=out,
                         realtime_factor=realtime_factor(args),
                         command="corft-ros " + " ".join(shlex.quote(a) for a in sys.argv[1:] or ["demo"]),
                         title=f"Demo: {arms[0].name} on the sim arm")
    rc, _summary = run_benchmark(config)
    return rc
