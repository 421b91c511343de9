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
import math
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from corft_ros.core.sim.scene import TASK

DEMO_SEED, SCREEN_SEED, COLLECT_SEED, INTERVENTION_SEED = 1000, 5000, 10000, 50000
# The model bundled before this run, evaluated beside the new arms on the same start positions: models/default then
# stays the best measured arm by measurement, never by a comparison across runs.
INCUMBENT = "bundled"
# The critic's candidate rewards (training parameters), chosen in round 1 by the held-out AUC of V(s) at 3 s for
# eventual success (core/rl/diagnostics.py), never by the evaluation:
#   gamma0.99     the defaults: γ 0.99, −0.01 a tick, +1 on success, −1 (the value of failing forever) on failure
#   gamma0.995    a longer horizon (step cost halved so that failing forever is still −1)
#   steps_to_go   RECAP's: undiscounted −steps-to-go (−1 at the 20 s limit) and a failure worth −2, below any success
REWARDS = {
    "gamma0.99": [],
    "gamma0.995": ["corft.gamma=0.995", "rewards.step_cost=0.005"],
    "steps_to_go": ["corft.gamma=1.0", "rewards.step_cost=0.0025", "rewards.success_reward=0.0",
                    "rewards.failure_reward=-2.0"],
}
REWARD_HORIZON = "3s"
REWARD_HOLDOUT = 0.3  # more held-out failures for the choice than the rounds' 0.15
# CO-RFT as the rounds train and deploy it (Build 4 of issue 27): AWR extraction, critic-guided best-of-8 over the
# defaults' proposals (white noise of 0.1 action std). The diverse proposals (mixed: time-warped chunks and smooth
# offsets, 0.3 std) were measured in the 2026-12-07 round-1 run and dropped: best-of-8 26/200 and a random pick
# 32/200 against the same action expert alone 64/200 on the same final starts (docs/results/experiment_2026-12-07).
CORFT_SETS = ["corft.extraction=awr"]
DISTILL_SETS = ["corft.extraction=rank_distill"]
REPORT_FILES = ("report.md", "summary.json", "trials.csv", "success_rate.png", "cycle_time.png", "success_map.png",
                "loop_latency.png")


def register(commands: argparse._SubParsersAction) -> None:
    from corft_ros.cli._args import add_realtime_factor

    p = commands.add_parser(
        "experiment", help="end to end in sim: demos, IL, rounds of CO-RFT on the stack's own logs, evaluation",
        description=__doc__.split("\n\n")[0],
    )
    p.add_argument("--output", default="docs/results", help="report folder (default docs/results)")
    p.add_argument("--work", default="out/experiment", help="data, runs, models and episodes (default "
                   "out/experiment)")
    p.add_argument("--demos", type=int, default=50, help="human-like demonstrations to record (default 50)")
    p.add_argument("--rounds", type=int, default=2, help="collect → CO-RFT rounds (default 2)")
    p.add_argument("--collect", type=int, default=50, help="logged trials per round (default 50)")
    p.add_argument("--trials", type=int, default=100, help="final trials per arm and region (default 100)")
    p.add_argument("--timeout", type=float, default=20.0, help="time limit of a trial, s of sim time (default 20)")
    p.add_argument("--il-steps", type=int, default=20000, help="most IL gradient steps (default 20000)")
    p.add_argument("--il-screen-every", type=int, default=2000, help="IL checkpoint screened every N steps")
    p.add_argument("--il-patience", type=int, default=3,
                   help="IL stops after this many screens without a new best (default 3: a 20-trial screen is noisy)")
    p.add_argument("--screen-trials", type=int, default=100,
                   help="lockstep trials per IL checkpoint (default 100: on 20, measured 2026-12-02, the screens read "
                        "4, 1, 10, 2, 5, 6/20 and picked a checkpoint that scored 30%% where a longer-trained IL "
                        "scored 58%% on the same final seeds)")
    p.add_argument("--workers", type=int, default=2, help="lockstep worker processes (default 2)")
    p.add_argument("--rl-steps", type=int, default=0, help="CO-RFT steps per round (0: config/train.yaml's)")
    p.add_argument("--reward-steps", type=int, default=1500,
                   help="critic steps of each candidate reward's run in round 1 (default 1500)")
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


def _corft(args: list[str]) -> list[str]:
    return [sys.executable, "-m", "corft_ros.cli", *args]


def _run(step: str, args: list[str], log: dict, capture: bool = False) -> str:
    """Run one `corft-ros` command in its own process, streaming its output; record its wall time."""
    line = "corft-ros " + " ".join(shlex.quote(a) for a in args)
    print(f"\n=== {step}: {line}", flush=True)
    started = time.monotonic()
    try:
        if capture:
            proc = subprocess.run(_corft(args), stdout=subprocess.PIPE, text=True)
            rc, out = proc.returncode, proc.stdout
        else:
            rc, out = subprocess.call(_corft(args)), ""
    finally:  # also when interrupted (Ctrl-C): the time spent counts toward the step, which resumes on the next run
        entry = log.setdefault("steps", {}).setdefault(step, {"command": line, "wall_s": 0.0})
        entry["wall_s"] += time.monotonic() - started
        entry["command"] = line
        _save(log)  # after every step: a killed experiment keeps the wall time of what it finished
    if rc != 0:
        raise RuntimeError(f"{step} failed (exit {rc}): {line}")
    return out


def _save(log: dict) -> None:
    if log.get("log_file"):
        Path(log["log_file"]).write_text(json.dumps(log, indent=2))


def _done_model(path: Path) -> bool:
    return (path / "policy.yaml").is_file()


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
            or _intervention_rounds_of(args) < 0):
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
    if not args.no_incumbent and not _done_model(x.incumbent):
        from corft_ros.core.paths import models_dir

        if _done_model(models_dir() / "default"):
            shutil.copytree(models_dir() / "default", x.incumbent)
            x.log["incumbent"] = {"arm": INCUMBENT, "copied_from": str(models_dir() / "default"),
                                  "at": datetime.now().isoformat(timespec="seconds")}
            _save(x.log)


def _demos_and_il(args: argparse.Namespace, x: _Layout) -> Path:
    """Steps 1-3: the demos, IL screened segment by segment, the best checkpoint exported; returns that checkpoint."""
    _run("1 record demos", ["record", "--sim", "--episodes", str(args.demos), "--task", TASK, "--output",
                            str(x.data / "demos"), "--seed", str(DEMO_SEED), "--operator", "scripted"], x.log)
    curve = _train_il(args, x.data / "demos", x.il_run, x.screens, x.sets, x.log)
    best = max(curve, key=lambda row: (row["successes"], row["step"]))
    il_ckpt = x.il_run / "checkpoints" / f"il_{best['step']:07d}.pt"
    x.log["il"] = {"curve": curve, "chosen_step": best["step"], "checkpoint": str(il_ckpt),
                   "patience": args.il_patience, "max_steps": args.il_steps}
    if not _done_model(x.models / "il"):
        _run("3 export IL", ["export", str(il_ckpt), "--name", "il", "--models-dir", str(x.models)], x.log)
    return il_ckpt


def _flywheel(args: argparse.Namespace, x: _Layout, il_ckpt: Path) -> tuple[Path, str | None]:
    """Step 4: the rounds of collect → CO-RFT; returns (the last round's model, the reward chosen in round 1)."""
    current, reward = x.models / "il", None
    rounds = x.log.setdefault("rounds", {})
    for r in range(1, args.rounds + 1):
        name = f"corft_r{r}"
        _run(f"4.{r} collect", [*x.bench, "--models", str(current), "--trials", str(args.collect), "--regions",
                                 "seen", "--seed", str(COLLECT_SEED * r), "--output", str(x.data / f"round{r}")],
             x.log)
        reward = _choose_reward(args, x.data, il_ckpt, x.runs, x.sets, x.log)
        if not _done_model(x.models / name):
            _run(f"4.{r} train CO-RFT", ["train", "--bags", str(x.data), "--stage", "rl", "--init", str(il_ckpt),
                                         "--name", name, "--output", str(x.runs / name), "--models-dir",
                                         str(x.models), *x.rl_steps, *_sets(CORFT_SETS + REWARDS[reward]), *x.sets],
                 x.log)
        rounds[str(r)] = _round_record(x.data / f"round{r}", current.name, x.runs / name)
        current = x.models / name
    return current, reward


def _controls(args: argparse.Namespace, x: _Layout, il_ckpt: Path, current: Path, reward: str | None) -> list[Path]:
    """Step 5: the control arms and CO-RFT's halves; returns the arms to evaluate (IL first)."""
    models, data, runs = x.models, x.data, x.runs
    if not _done_model(models / "il_bc"):
        _run("5 train the control arm", ["train", "--bags", str(data / "demos"), "--stage", "bc", "--init",
                                         str(il_ckpt), "--name", "il_bc", "--output", str(runs / "il_bc"),
                                         "--models-dir", str(models), *x.rl_steps, *x.sets], x.log)
    arms = [models / "il", models / "il_bc"]
    if args.rounds and not _done_model(models / "il_fbc"):
        # filtered BC: the same steps on the demos and every successful rollout of the rounds (stage bc imitates
        # the successful episodes of --bags): what self-imitation alone gives, without the critic
        _run("5 train filtered BC", ["train", "--bags", str(data), "--stage", "bc", "--init", str(il_ckpt),
                                     "--name", "il_fbc", "--output", str(runs / "il_fbc"), "--models-dir",
                                     str(models), *x.rl_steps, *x.sets], x.log)
    if args.rounds:
        distill = models / f"{current.name}_distill"
        if not _done_model(distill):
            _run("5 train distilled best-of-N", ["train", "--bags", str(data), "--stage", "rl", "--init",
                                                 str(il_ckpt), "--name", distill.name, "--output",
                                                 str(runs / distill.name), "--models-dir", str(models),
                                                 *x.rl_steps, *_sets(DISTILL_SETS + REWARDS[reward]), *x.sets],
                 x.log)
        arms.append(models / "il_fbc")
        arms.append(distill)
        # CO-RFT's two halves: the action expert alone, and a random pick among the same proposals
        from corft_ros.core.policy.export import copy_with_deploy

        for suffix, change in (("actor", {"best_of_n": 1}), ("random", {"selection": "random"})):
            variant = models / f"{current.name}_{suffix}"
            if not _done_model(variant):
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
    if args.interventions and _intervention_rounds_of(args):
        arms.append(_intervention_rounds(args, x.data, il_ckpt, x.runs, x.models, x.bench, x.rl_steps, x.sets,
                                         reward, x.log))
    if not args.no_incumbent and _done_model(x.incumbent):
        arms.append(x.incumbent)
    _run("6 final evaluation", ["benchmark", "--lockstep", "--workers", str(args.workers), "--repeat-arm",
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
        _save(x.log)
    x.log["finished"] = datetime.now().isoformat(timespec="seconds")
    _save(x.log)
    _report(args, x)
    return 0


def _train_il(args: argparse.Namespace, demos: Path, run: Path, screens: Path, sets: list[str],
              log: dict) -> list[dict]:
    """IL in segments of --il-screen-every steps (each resumes the last), every checkpoint screened, until
    --il-patience screens in a row bring no new best or --il-steps is reached."""
    from corft_ros.core.trials.experiment import il_stopped_improving

    every, target = args.il_screen_every, min(args.il_screen_every, args.il_steps)
    while True:
        if not (run / "checkpoints" / f"il_{target:07d}.pt").is_file():
            _run(f"2 train IL to step {target}", ["train", "--bags", str(demos), "--stage", "il", "--no-export",
                                                  "--output", str(run), "--set", f"il_steps={target}", "--set",
                                                  f"checkpoint_every={every}", *sets], log)
        curve = _screen_il(args, run, screens, log, target)
        if il_stopped_improving(curve, args.il_patience) or target >= args.il_steps:
            return curve
        target = min(target + every, args.il_steps)


def _screen_il(args: argparse.Namespace, run: Path, screens: Path, log: dict, last: int) -> list[dict]:
    """Every IL checkpoint up to step `last` screened with ROS-free rollouts on the same dev seeds (seen region)."""
    done = {row["step"]: row for row in (log.get("il") or {}).get("curve", [])}
    curve = []
    for ckpt in sorted((run / "checkpoints").glob("il_*.pt")):
        step = int(ckpt.stem.split("_")[1])
        if step > last:
            continue
        if step not in done:
            folder = screens / f"il_{step}"
            if not _done_model(folder):
                _run(f"3 screen IL {step}: export", ["export", str(ckpt), "--name", folder.name, "--models-dir",
                                                      str(screens)], log)
            text = _run(f"3 screen IL {step}", ["benchmark", "--lockstep", "--workers", str(args.workers),
                                                 "--models", str(folder), "--trials", str(args.screen_trials),
                                                 "--regions", "seen", "--seed", str(SCREEN_SEED), "--timeout",
                                                 str(args.timeout), "--output", str(screens / f"eval_il_{step}"),
                                                 "--json"], log, capture=True)
            row = next(r for r in json.loads(text)["arms"] if r["region"] == "seen")
            cycle = row["cycle_time_mean_s"]
            done[step] = {"step": step, "successes": row["successes"], "trials": row["trials"],
                          "cycle_time_mean_s": cycle if cycle is not None and math.isfinite(cycle) else None}
            log.setdefault("il", {})["curve"] = sorted(done.values(), key=lambda r: r["step"])
        curve.append(done[step])
        print(f"IL step {step}: {done[step]['successes']}/{done[step]['trials']} (screen, seen)", flush=True)
    if not curve:
        raise RuntimeError(f"no IL checkpoint in {run / 'checkpoints'}")
    return curve


INTERVENTION_ARM = "interventions"


def _intervention_rounds(args: argparse.Namespace, data: Path, il_ckpt: Path, runs: Path, models: Path,
                         bench: list[str], rl_steps: list[str], sets: list[str], reward: str, log: dict) -> Path:
    """The flywheel with the sim's intervener: each round collects with takeovers on, then CO-RFT from the IL
    checkpoint on the demos + those rounds; the last round's model, as arm 'interventions'."""
    current, bags = models / "il", [data / "demos"]
    rounds = log.setdefault("intervention_rounds", {})
    for r in range(1, _intervention_rounds_of(args) + 1):
        name, folder = f"{INTERVENTION_ARM}_r{r}", data.parent / "data_interventions" / f"round{r}"
        _run(f"4i.{r} collect with takeovers", [*bench, "--intervention", "scripted", "--models", str(current),
                                                "--trials", str(args.collect), "--regions", "seen", "--seed",
                                                str(INTERVENTION_SEED * r), "--output", str(folder)], log)
        bags.append(folder)
        if not _done_model(models / name):
            _run(f"4i.{r} train on takeovers", ["train", "--bags", *map(str, bags), "--stage", "rl", "--init",
                                                 str(il_ckpt), "--name", name, "--output", str(runs / name),
                                                 "--models-dir", str(models), *rl_steps,
                                                 *_sets(CORFT_SETS + REWARDS[reward]), *sets], log)
        rounds[str(r)] = {**_round_record(folder, current.name, runs / name), **_takeovers(folder)}
        current = models / name
    arm = models / INTERVENTION_ARM
    if not _done_model(arm):
        from corft_ros.core.policy.export import copy_with_deploy

        copy_with_deploy(current, arm)
    return arm


def _intervention_rounds_of(args: argparse.Namespace) -> int:
    return args.rounds if args.intervention_rounds is None else args.intervention_rounds


def _takeovers(folder: Path) -> dict:
    """What the intervener did in a collection: trials with a takeover, takeovers per trial, autonomous successes."""
    summary = json.loads((folder / "summary.json").read_text()) if (folder / "summary.json").is_file() else {}
    seen = next((a for a in summary.get("arms", []) if a.get("region") == "seen"), {})
    trials = seen.get("trials") or 0
    return {"autonomous_successes": seen.get("autonomous_successes"),
            "trials_with_takeover": seen.get("trials_with_takeover"),
            "takeovers_per_trial": (seen.get("takeovers") or 0) / trials if trials else None}


def _sets(items: list[str]) -> list[str]:
    return [x for item in items for x in ("--set", item)]


def _choose_reward(args: argparse.Namespace, data: Path, il_ckpt: Path, runs: Path, sets: list[str],
                   log: dict) -> str:
    """The critic's reward, chosen once (on round 1's data) by the held-out AUC of V(s) at 3 s: one critic-only run
    per candidate in REWARDS; ties and unmeasurable AUCs keep the first (the defaults)."""
    chosen = (log.get("reward") or {}).get("chosen")
    if chosen in REWARDS:
        return chosen
    table = {}
    for name, reward_sets in REWARDS.items():
        run = runs / f"reward_{name}"
        if not (run / "train.json").is_file():
            _run(f"4.1 reward {name}", ["train", "--bags", str(data), "--stage", "rl", "--init", str(il_ckpt),
                                        "--no-export", "--output", str(run), "--set", f"rl_steps={args.reward_steps}",
                                        *_sets(["corft.extraction=none", f"corft.holdout={REWARD_HOLDOUT}",
                                                *reward_sets]), *sets], log)
        diag = json.loads((run / "train.json").read_text())["stages"]["rl"].get("diagnostics") or {}
        table[name] = {"sets": reward_sets, "diagnostics": diag,
                       "auc": ((diag.get("auc") or {}).get(REWARD_HORIZON) or {}).get("auc")}
    measured = {k: v["auc"] for k, v in table.items() if v["auc"] is not None}
    chosen = max(measured, key=lambda k: (measured[k], -list(REWARDS).index(k))) if measured else next(iter(REWARDS))
    log["reward"] = {"chosen": chosen, "by": f"held-out AUC of V(s) at {REWARD_HORIZON} for eventual success",
                     "candidates": table}
    _save(log)
    print(f"reward: {chosen} (held-out AUC at {REWARD_HORIZON}: "
          + ", ".join(f"{k} {'n/a' if v is None else format(v, '.3f')}" for k, v in
                      ((k, t['auc']) for k, t in table.items())) + ")", flush=True)
    return chosen


def _round_record(folder: Path, model: str, run: Path) -> dict:
    """What a round collected with which model, and what its CO-RFT run trained on."""
    summary = json.loads((folder / "summary.json").read_text()) if (folder / "summary.json").is_file() else {}
    seen = next((a for a in summary.get("arms", []) if a.get("region") == "seen"), {})
    train = json.loads((run / "train.json").read_text()) if (run / "train.json").is_file() else {}
    return {"collected_with": model, "trials": seen.get("trials"), "successes": seen.get("successes"),
            "cycle_time_mean_s": seen.get("cycle_time_mean_s"), "dataset": train.get("dataset", {}),
            "stages": train.get("stages", {}),
            "diagnostics": ((train.get("stages") or {}).get("rl") or {}).get("diagnostics")}
