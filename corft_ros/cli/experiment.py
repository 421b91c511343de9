"""`corft-ros experiment` (what `make experiment` runs): the end-to-end CO-RFT result in sim, from nothing.

  1. record N human-like demos with the scripted operator, seen region, real time        corft-ros record
  2. IL on them in segments of --il-screen-every steps                                  corft-ros train --stage il
  3. screen each segment's checkpoint (lockstep trials, dev seeds); IL trains on until    corft-ros benchmark
     --il-patience screens bring no new best (or --il-steps): the curve; the best is IL      --lockstep
  4. R rounds of the data flywheel, each:
       collect: N trials of the current policy through the real graph, every one logged   corft-ros benchmark
       (round 1 only) the critic's reward, chosen by diagnostic: one critic per candidate  corft-ros train --stage rl
          reward on the same data, the one whose V(s) best predicts success on held-out
          episodes (AUC at 3 s) is kept for every round
       CO-RFT from the IL checkpoint on the demos + every rollout so far: the chunk critic corft-ros train --stage rl
          weighs the action expert's supervised update (advantage-weighted regression on the
          successful chunks), and the model deploys with critic-guided best-of-8 among
          proposals around its own chunk
  5. the controls, from the IL checkpoint, the same number of steps, no critic:          corft-ros train --stage bc
       il_bc   BC on the demos (more supervised steps alone)
       il_fbc  filtered BC on the demos and every successful rollout of the rounds (self-imitation)
     and what each half of CO-RFT adds, the final round's model deployed two more ways:
       corft_rR_actor   its action expert alone (no selection): the critic's weighting vs il_fbc
       corft_rR_random  a random pick among the same proposals: the critic's choice vs chance
     and the other way to put the critic into supervised updates, on the final round's data:
       corft_rR_distill the critic's winners among the proposals distilled into the action expert
                        (rank_distill), deployed like CO-RFT
  6. final evaluation on fresh seeds, in lockstep (the same model on the same start gives the same outcome): IL,
     the controls, CO-RFT's final round and its two halves, and the bundled model, plus IL again as `il_repeat`
     (the noise floor), seen and unseen starts, interleaved, the same start positions for every arm
                                                                                  corft-ros benchmark --lockstep
  7. report in <output>/ (experiment.md/json, plots): paired counts and McNemar tests per pair of arms, the critic's
     held-out diagnostics per round; the best measured arm becomes models/default.

With --interventions, a second flywheel beside the first: each round collects with the sim's intervener taking over
a stuck policy (corft-ros benchmark --intervention scripted; the report gives the takeovers per trial), CO-RFT from
the IL checkpoint learns from the demos + those rounds (the operator's ticks imitated, the tick before a takeover
penalised), and its last round is evaluated without takeover as arm `interventions`.

Seeds never overlap: demos 1000+, IL screens 5000+, round r's collection 10000·r+, intervention round r's 50000·r+,
the final evaluation --eval-seed.
Nothing is tuned on the unseen region or on the final seeds. Each step is the command a user would run, in its own
process; a step whose result exists is skipped (record and benchmark resume by themselves), so an interrupted
experiment continues where it stopped when run again.
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from corft_ros.cli._experiment_steps import (
    COLLECT_SEED,
    CORFT_SETS,
    DEMO_SEED,
    DISTILL_SETS,
    INCUMBENT,
    REWARDS,
    as_sets,
    choose_reward,
    done_model,
    intervention_rounds,
    intervention_rounds_of,
    round_record,
    run_step,
    save_log,
    train_il,
)
from corft_ros.core.sim.scene import TASK


def register(commands: argparse._SubParsersAction) -> None:
    from corft_ros.cli._args import add_realtime_factor

    p = commands.add_parser(
        "experiment", help="end to end in sim: demos, IL, rounds of CO-RFT on the stack's own logs, evaluation",
        description=__doc__.split("\n\n")[0],
    )
    p.add_argument("--output", default="docs/results", help="report folder (default %(default)s)")
    p.add_argument("--work", default="out/experiment", help="data, runs, models and episodes (default "
                   "out/experiment)")
    p.add_argument("--demos", type=int, default=50, help="human-like demonstrations to record (default %(default)s)")
    p.add_argument("--rounds", type=int, default=2, help="collect → CO-RFT rounds (default %(default)s)")
    p.add_argument("--collect", type=int, default=50, help="logged trials per round (default %(default)s)")
    p.add_argument("--trials", type=int, default=100, help="final trials per arm and region (default %(default)s)")
    p.add_argument("--timeout", type=float, default=20.0, help="time limit of a trial, s of sim time (default 20)")
    p.add_argument("--il-steps", type=int, default=20000, help="most IL gradient steps (default %(default)s)")
    p.add_argument("--il-screen-every", type=int, default=2000, help="IL checkpoint screened every N steps")
    p.add_argument("--il-patience", type=int, default=3,
                   help="IL stops after this many screens without a new best (default 3: a 20-trial screen is noisy)")
    p.add_argument("--screen-trials", type=int, default=100,
                   help="lockstep trials per IL checkpoint (default 100: on 20, measured 2026-12-02, the screens read "
                        "4, 1, 10, 2, 5, 6/20 and picked a checkpoint that scored 30%% where a longer-trained IL "
                        "scored 58%% on the same final seeds)")
    p.add_argument("--workers", type=int, default=2, help="lockstep worker processes (default %(default)s)")
    p.add_argument("--rl-steps", type=int, default=0, help="CO-RFT steps per round (0: config/train.yaml's)")
    p.add_argument("--reward-steps", type=int, default=1500,
                   help="critic steps of each candidate reward's run in round 1 (default %(default)s)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="training parameter for every stage (as corft-ros train --set)")
    p.add_argument("--eval-seed", type=int, default=0, help="sim seed of the first final-evaluation round")
    p.add_argument("--interventions", action="store_true",
                   help="also run --rounds rounds with the sim's intervener taking over stuck policies, trained on "
                        "(arm 'interventions'; docs/interventions.md)")
    p.add_argument("--intervention-rounds", type=int, default=None, metavar="N",
                   help="rounds of the --interventions flywheel (default: --rounds)")
    p.add_argument("--no-bundle", action="store_true", help="do not copy the best arm to models/default")
    p.add_argument("--no-incumbent", action="store_true",
                   help=f"do not evaluate the model bundled before this run (models/default, as arm '{INCUMBENT}') "
                        "beside the new arms")
    add_realtime_factor(p, default=0.0)
    p.set_defaults(func=cmd_experiment)


def _speed(args: argparse.Namespace) -> list[str]:
    from corft_ros.cli._args import realtime_factor

    return ["--realtime-factor", repr(realtime_factor(args))]


@dataclass
class _Layout:
    """The experiment's folders, its log and the arguments every step shares."""

    work: Path
    out: Path
    data: Path
    runs: Path
    models: Path
    screens: Path
    log: dict
    sets: list[str]
    rl_steps: list[str]
    bench: list[str]
    il_run: Path
    incumbent: Path


def _args_ok(args: argparse.Namespace) -> bool:
    """False (after an error line) when a count or the timeout is out of range."""
    if (min(args.demos, args.trials, args.collect, args.rounds + 1, args.il_steps, args.il_screen_every,
            args.il_patience, args.workers, args.screen_trials, args.reward_steps) < 1 or not args.timeout > 0
            or intervention_rounds_of(args) < 0):
        print("error: --demos, --trials, --collect, --workers, --screen-trials, --reward-steps and the --il-* options "
              "must be >= 1, "
              "--rounds and --intervention-rounds >= 0, --timeout positive", file=sys.stderr)
        return False
    if args.interventions and not args.rounds:
        print("error: --interventions needs --rounds >= 1 (round 1 chooses the critic's reward)", file=sys.stderr)
        return False
    return True


def _layout(args: argparse.Namespace) -> _Layout | None:
    """The folders (created) and the log (resumed); None (after an error line) if a folder cannot be created."""
    work, out = Path(args.work).expanduser(), Path(args.output).expanduser()
    data, runs, models, screens = work / "data", work / "runs", work / "models", work / "screens"
    try:
        for folder in (work, out, models, data, screens):
            folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        print(f"error: cannot create {exc.filename}: {exc.strerror}", file=sys.stderr)
        return None
    log_path = work / "experiment.json"
    log = json.loads(log_path.read_text()) if log_path.is_file() else {}
    log.setdefault("started", datetime.now().isoformat(timespec="seconds"))
    log["log_file"] = str(log_path)
    sets = [x for item in args.set for x in ("--set", item)]
    rl_steps = ["--set", f"rl_steps={args.rl_steps}"] if args.rl_steps else []
    speed = _speed(args)
    bench = ["benchmark", "--timeout", str(args.timeout), *speed]
    return _Layout(work, out, data, runs, models, screens, log, sets, rl_steps, bench, il_run=runs / "il",
                   incumbent=models / INCUMBENT)


def _keep_incumbent(args: argparse.Namespace, x: _Layout) -> None:
    """Copy the model bundled before this run (models/default) to be evaluated beside the new arms, once."""
    if not args.no_incumbent and not done_model(x.incumbent):
        from corft_ros.core.paths import models_dir

        if done_model(models_dir() / "default"):
            shutil.copytree(models_dir() / "default", x.incumbent)
            x.log["incumbent"] = {"arm": INCUMBENT, "copied_from": str(models_dir() / "default"),
                                  "at": datetime.now().isoformat(timespec="seconds")}
            save_log(x.log)


def _demos_and_il(args: argparse.Namespace, x: _Layout) -> Path:
    """Steps 1-3: the demos, IL screened segment by segment, the best checkpoint exported; returns that checkpoint."""
    run_step("1 record demos", ["record", "--sim", "--episodes", str(args.demos), "--task", TASK, "--output",
                            str(x.data / "demos"), "--seed", str(DEMO_SEED), "--operator", "scripted"], x.log)
    curve = train_il(args, x.data / "demos", x.il_run, x.screens, x.sets, x.log)
    best = max(curve, key=lambda row: (row["successes"], row["step"]))
    il_ckpt = x.il_run / "checkpoints" / f"il_{best['step']:07d}.pt"
    x.log["il"] = {"curve": curve, "chosen_step": best["step"], "checkpoint": str(il_ckpt),
                   "patience": args.il_patience, "max_steps": args.il_steps}
    if not done_model(x.models / "il"):
        run_step("3 export IL", ["export", str(il_ckpt), "--name", "il", "--models-dir", str(x.models)], x.log)
    return il_ckpt


def _flywheel(args: argparse.Namespace, x: _Layout, il_ckpt: Path) -> tuple[Path, str | None]:
    """Step 4: the rounds of collect → CO-RFT; returns (the last round's model, the reward chosen in round 1)."""
    current, reward = x.models / "il", None
    rounds = x.log.setdefault("rounds", {})
    for r in range(1, args.rounds + 1):
        name = f"corft_r{r}"
        run_step(f"4.{r} collect", [*x.bench, "--models", str(current), "--trials", str(args.collect), "--regions",
                                 "seen", "--seed", str(COLLECT_SEED * r), "--output", str(x.data / f"round{r}")],
             x.log)
        reward = choose_reward(args, x.data, il_ckpt, x.runs, x.sets, x.log)
        if not done_model(x.models / name):
            run_step(f"4.{r} train CO-RFT", ["train", "--bags", str(x.data), "--stage", "rl", "--init", str(il_ckpt),
                                         "--name", name, "--output", str(x.runs / name), "--models-dir",
                                         str(x.models), *x.rl_steps, *as_sets(CORFT_SETS + REWARDS[reward]), *x.sets],
                 x.log)
        rounds[str(r)] = round_record(x.data / f"round{r}", current.name, x.runs / name)
        current = x.models / name
    return current, reward


def _controls(args: argparse.Namespace, x: _Layout, il_ckpt: Path, current: Path, reward: str | None) -> list[Path]:
    """Step 5: the control arms and CO-RFT's halves; returns the arms to evaluate (IL first)."""
    models, data, runs = x.models, x.data, x.runs
    if not done_model(models / "il_bc"):
        run_step("5 train the control arm", ["train", "--bags", str(data / "demos"), "--stage", "bc", "--init",
                                         str(il_ckpt), "--name", "il_bc", "--output", str(runs / "il_bc"),
                                         "--models-dir", str(models), *x.rl_steps, *x.sets], x.log)
    arms = [models / "il", models / "il_bc"]
    if args.rounds and not done_model(models / "il_fbc"):
        # filtered BC: the same steps on the demos and every successful rollout of the rounds (stage bc imitates
        # the successful episodes of --bags): what self-imitation alone gives, without the critic
        run_step("5 train filtered BC", ["train", "--bags", str(data), "--stage", "bc", "--init", str(il_ckpt),
                                     "--name", "il_fbc", "--output", str(runs / "il_fbc"), "--models-dir",
                                     str(models), *x.rl_steps, *x.sets], x.log)
    if args.rounds:
        distill = models / f"{current.name}_distill"
        if not done_model(distill):
            run_step("5 train distilled best-of-N", ["train", "--bags", str(data), "--stage", "rl", "--init",
                                                 str(il_ckpt), "--name", distill.name, "--output",
                                                 str(runs / distill.name), "--models-dir", str(models),
                                                 *x.rl_steps, *as_sets(DISTILL_SETS + REWARDS[reward]), *x.sets],
                 x.log)
        arms.append(models / "il_fbc")
        arms.append(distill)
        # CO-RFT's two halves: the action expert alone, and a random pick among the same proposals
        from corft_ros.core.policy.export import copy_with_deploy

        for suffix, change in (("actor", {"best_of_n": 1}), ("random", {"selection": "random"})):
            variant = models / f"{current.name}_{suffix}"
            if not done_model(variant):
                copy_with_deploy(current, variant, **change)
            arms.append(variant)
        arms.append(current)
        x.log["candidate"] = current.name
    return arms


def _run_steps(args: argparse.Namespace, x: _Layout) -> None:
    """Steps 1-6, each skipped where its result exists; raises RuntimeError when a step's command fails."""
    il_ckpt = _demos_and_il(args, x)
    current, reward = _flywheel(args, x, il_ckpt)
    arms = _controls(args, x, il_ckpt, current, reward)
    if args.interventions and intervention_rounds_of(args):
        arms.append(intervention_rounds(args, x.data, il_ckpt, x.runs, x.models, x.bench, x.rl_steps, x.sets,
                                         reward, x.log))
    if not args.no_incumbent and done_model(x.incumbent):
        arms.append(x.incumbent)
    run_step("6 final evaluation", ["benchmark", "--lockstep", "--workers", str(args.workers), "--repeat-arm",
                                "il", "--timeout", str(args.timeout), "--models", *map(str, arms), "--trials",
                                str(args.trials), "--regions", "seen", "unseen", "--seed", str(args.eval_seed),
                                "--output", str(x.work / "eval")], x.log)


def _report(args: argparse.Namespace, x: _Layout) -> None:
    """Step 7: the report, and the best measured arm bundled as models/default (unless --no-bundle)."""
    print("\n=== 7 report", flush=True)
    from corft_ros.core.trials.experiment import write_experiment_report

    command = "make experiment  # = corft-ros experiment " + " ".join(shlex.quote(a) for a in sys.argv[2:])
    best_arm, lines = write_experiment_report(x.work, x.out, x.log, command, TASK)
    if best_arm == INCUMBENT:
        print(f"models/default stays: the model bundled before this run ('{INCUMBENT}') measured best")
    elif not args.no_bundle and best_arm:
        from corft_ros.core.paths import models_dir

        bundled = models_dir() / "default"
        if bundled.exists():
            shutil.rmtree(bundled)
        shutil.copytree(x.models / best_arm, bundled)
        print(f"bundled the best measured arm: {x.models / best_arm} -> {bundled}")
    for line in lines:
        print(line)
    print(f"report: {x.out / 'experiment.md'}")


def cmd_experiment(args: argparse.Namespace) -> int:
    if not _args_ok(args):
        return 2
    x = _layout(args)
    if x is None:
        return 1
    _keep_incumbent(args, x)
    try:
        _run_steps(args, x)
    except RuntimeError as exc:
        print(f"error: {exc}; run the same command again to continue", file=sys.stderr)
        return 1
    finally:
        save_log(x.log)
    x.log["finished"] = datetime.now().isoformat(timespec="seconds")
    save_log(x.log)
    _report(args, x)
    return 0


