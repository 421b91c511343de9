"""`corft-ros benchmark`: the product benchmark, N sim trials per arm (policies × executor modes, the scripted
operator as reference) on the same start positions, over the real graph (corft_ros/benchmark.py) or in lockstep
(core/trials/lockstep.py): success, cycle time, paired comparisons, a report. (`corft-ros benchmark`: the old
spelling.) The stack's own measurements are `corft-ros measure` (cli/measure.py)."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from datetime import datetime
from pathlib import Path


def register(commands: argparse._SubParsersAction) -> None:
    from corft_ros import benchmark
    from corft_ros.benchmark import DEFAULT_TIMEOUT_S, BenchConfig
    from corft_ros.cli._args import add_realtime_factor

    p = commands.add_parser(
        "benchmark", help="benchmark policies (and the scripted operator) over N sim trials on the same starts: "
                          "success, cycle time, paired comparisons, report",
        description=benchmark.__doc__.split("\n\n")[0],
    )
    p.add_argument("--models", nargs="+", default=[], metavar="DIR", help="exported model folders (models/a ...)")
    p.add_argument("--modes", nargs="+", default=["temporal_ensembling"], metavar="MODE",
                   help="executor modes to compare (temporal_ensembling open_loop receding_horizon latest)")
    p.add_argument("--trials", type=int, default=BenchConfig.trials,
                   help=f"trials per arm and region (default {BenchConfig.trials})")
    p.add_argument("--regions", nargs="+", default=["seen"], help="start regions: seen unseen (default seen)")
    p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, help="time limit per trial, s of sim time")
    p.add_argument("--output", default="", help="report folder (default bench/<date-time>); an existing one with "
                   "trials.csv is resumed")
    p.add_argument("--operator", action="store_true", help="add the scripted human-like operator as a reference arm")
    add_realtime_factor(p, default=0.0)
    p.add_argument("--seed", type=int, default=BenchConfig.seed,
                   help="reset seed of the first round (round r: seed + r)")
    p.add_argument("--controller", choices=("forward", "jtc"), default=BenchConfig.controller,
                   help="executor output kind: forward (forward_command_controller) | jtc (joint_trajectory_"
                        "controller)")
    p.add_argument("--backend", choices=("onnx", "torch"), default=BenchConfig.backend, help="policy inference backend")
    p.add_argument("--cameras", default="", help="comma-separated sim cameras (default: the YAML's)")
    p.add_argument("--json", action="store_true", help="print summary.json at the end")
    p.add_argument("--intervention", choices=("scripted", "joy", "leader"), default=None,
                   help="a takeover source beside every arm (scripted: the sim's intervener takes over a stuck "
                        "policy); the report splits autonomous from assisted success")
    p.add_argument("--lockstep", action="store_true",
                   help="compare the arms in lockstep (ROS-free, deterministic: the same model on the same start gives "
                        "the same outcome; what the experiment compares arms with) instead of over the real-time graph")
    p.add_argument("--workers", type=int, default=1, help="lockstep: worker processes (default %(default)s)")
    p.add_argument("--repeat-arm", default="", metavar="ARM",
                   help="lockstep: run ARM twice on the same starts (as ARM and ARM_repeat): the noise floor")
    p.add_argument("--latency", type=float, default=None, metavar="S",
                   help="lockstep: sim seconds from an observation to its chunk at the executor (default 0.02)")
    p.set_defaults(func=cmd_trials)


def cmd_trials_lockstep(args: argparse.Namespace) -> int:
    from corft_ros.benchmark import check_model
    from corft_ros.core.robot import ConfigError, load_robot_config
    from corft_ros.core.sim.rollout import DEFAULT_INFERENCE_LATENCY_S
    from corft_ros.core.trials.lockstep import LockstepArm, LockstepConfig, lockstep_benchmark, with_repeat
    from corft_ros.core.trials.trials import arm_names

    latency = DEFAULT_INFERENCE_LATENCY_S if args.latency is None else args.latency
    try:
        if args.operator:
            raise ConfigError("--lockstep compares exported models; the scripted operator runs over the real graph "
                              "(drop --operator or --lockstep)")
        if args.workers < 1 or not latency >= 0:
            raise ConfigError("--workers must be >= 1 and --latency >= 0")
        robot = load_robot_config(None)
        for model in args.models:
            check_model(model, robot)
        arms = with_repeat([LockstepArm(name, model, mode) for name, model, mode in arm_names(args.models, args.modes)],
                           args.repeat_arm)
    except (ConfigError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = Path(args.output or Path("bench") / datetime.now().strftime("%Y%m%d-%H%M%S")).expanduser()
    config = LockstepConfig(timeout_s=args.timeout, inference_latency_s=latency, workers=args.workers)
    rc, summary = lockstep_benchmark(
        arms, list(args.regions), args.trials, args.seed, out, config,
        title="Benchmark (lockstep): " + " vs ".join(a.name for a in arms),
        command="corft-ros " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
        say=(lambda line: print(line, file=sys.stderr, flush=True)) if args.json else print)
    if summary and args.json:
        print(json.dumps(summary, indent=2, default=float))
    return rc


def cmd_trials(args: argparse.Namespace) -> int:
    from corft_ros.benchmark import BenchConfig, check_model, make_arms, run_benchmark
    from corft_ros.cli._args import realtime_factor
    from corft_ros.core.chunking import MODES
    from corft_ros.core.robot import ConfigError, load_robot_config
    from corft_ros.core.sim.regions import REGIONS

    try:
        if not args.models and not args.operator:
            raise ConfigError("nothing to benchmark: give --models DIR [DIR ...] and/or --operator")
        if not args.lockstep and (args.repeat_arm or args.workers != 1 or args.latency is not None):
            raise ConfigError("--workers, --repeat-arm and --latency apply to --lockstep runs")
        bad = [m for m in args.modes if m not in MODES]
        if bad:
            raise ConfigError(f"unknown executor mode '{bad[0]}' (known: {', '.join(MODES)})")
        bad = [r for r in args.regions if r not in REGIONS]
        if bad:
            raise ConfigError(f"unknown region '{bad[0]}' (known: {', '.join(REGIONS)})")
        if args.trials < 1:
            raise ConfigError(f"--trials must be >= 1, got {args.trials}")
        if not args.timeout > 0:
            raise ConfigError(f"--timeout must be positive, got {args.timeout}")
        if args.lockstep:
            if args.intervention:
                raise ConfigError("--intervention needs the real graph: lockstep trials have no takeover")
            return cmd_trials_lockstep(args)
        robot = load_robot_config(None)
        for model in args.models:
            check_model(model, robot)
        arms = make_arms(args.models, args.modes, args.operator)
    except (ConfigError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = Path(args.output or Path("bench") / datetime.now().strftime("%Y%m%d-%H%M%S")).expanduser()
    config = BenchConfig(arms=arms, trials=args.trials, regions=list(args.regions), timeout_s=args.timeout,
                         output=out, realtime_factor=realtime_factor(args), seed=args.seed, controller=args.controller,
                         backend=args.backend, cameras=args.cameras, intervention=args.intervention or "",
                         command="corft-ros " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
                         title="Benchmark: " + " vs ".join(a.name for a in arms))
    rc, summary = run_benchmark(config)
    if summary is not None and args.json:
        print(json.dumps(summary, indent=2, default=float))
    return rc
