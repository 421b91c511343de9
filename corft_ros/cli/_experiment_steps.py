"""The steps of `corft-ros experiment` that are more than one command: each step as the `corft-ros` command a user
would run, in its own process, with its wall time logged (`run_step`); IL trained in segments and screened; the
critic's reward chosen by diagnostic; the rounds' records; the flywheel with the sim's intervener. The seeds and
training settings every step shares are here; corft_ros/cli/experiment.py puts the steps in order."""

from __future__ import annotations

import argparse
import json
import math
import shlex
import subprocess
import sys
import time
from pathlib import Path

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
def _corft(args: list[str]) -> list[str]:
    return [sys.executable, "-m", "corft_ros.cli", *args]


def run_step(step: str, args: list[str], log: dict, capture: bool = False) -> str:
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
        save_log(log)  # after every step: a killed experiment keeps the wall time of what it finished
    if rc != 0:
        raise RuntimeError(f"{step} failed (exit {rc}): {line}")
    return out


def save_log(log: dict) -> None:
    if log.get("log_file"):
        Path(log["log_file"]).write_text(json.dumps(log, indent=2))


def done_model(path: Path) -> bool:
    return (path / "policy.yaml").is_file()


def train_il(args: argparse.Namespace, demos: Path, run: Path, screens: Path, sets: list[str],
              log: dict) -> list[dict]:
    """IL in segments of --il-screen-every steps (each resumes the last), every checkpoint screened, until
    --il-patience screens in a row bring no new best or --il-steps is reached."""
    from corft_ros.core.trials.experiment import il_stopped_improving

    every, target = args.il_screen_every, min(args.il_screen_every, args.il_steps)
    while True:
        if not (run / "checkpoints" / f"il_{target:07d}.pt").is_file():
            run_step(f"2 train IL to step {target}", ["train", "--bags", str(demos), "--stage", "il", "--no-export",
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
            if not done_model(folder):
                run_step(f"3 screen IL {step}: export", ["export", str(ckpt), "--name", folder.name, "--models-dir",
                                                      str(screens)], log)
            text = run_step(f"3 screen IL {step}", ["benchmark", "--lockstep", "--workers", str(args.workers),
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


def intervention_rounds(args: argparse.Namespace, data: Path, il_ckpt: Path, runs: Path, models: Path,
                         bench: list[str], rl_steps: list[str], sets: list[str], reward: str, log: dict) -> Path:
    """The flywheel with the sim's intervener: each round collects with takeovers on, then CO-RFT from the IL
    checkpoint on the demos + those rounds; the last round's model, as arm 'interventions'."""
    current, bags = models / "il", [data / "demos"]
    rounds = log.setdefault("intervention_rounds", {})
    for r in range(1, intervention_rounds_of(args) + 1):
        name, folder = f"{INTERVENTION_ARM}_r{r}", data.parent / "data_interventions" / f"round{r}"
        run_step(f"4i.{r} collect with takeovers", [*bench, "--intervention", "scripted", "--models", str(current),
                                                "--trials", str(args.collect), "--regions", "seen", "--seed",
                                                str(INTERVENTION_SEED * r), "--output", str(folder)], log)
        bags.append(folder)
        if not done_model(models / name):
            run_step(f"4i.{r} train on takeovers", ["train", "--bags", *map(str, bags), "--stage", "rl", "--init",
                                                 str(il_ckpt), "--name", name, "--output", str(runs / name),
                                                 "--models-dir", str(models), *rl_steps,
                                                 *as_sets(CORFT_SETS + REWARDS[reward]), *sets], log)
        rounds[str(r)] = {**round_record(folder, current.name, runs / name), **_takeovers(folder)}
        current = models / name
    arm = models / INTERVENTION_ARM
    if not done_model(arm):
        from corft_ros.core.policy.export import copy_with_deploy

        copy_with_deploy(current, arm)
    return arm


def intervention_rounds_of(args: argparse.Namespace) -> int:
    return args.rounds if args.intervention_rounds is None else args.intervention_rounds


def _takeovers(folder: Path) -> dict:
    """What the intervener did in a collection: trials with a takeover, takeovers per trial, autonomous successes."""
    summary = json.loads((folder / "summary.json").read_text()) if (folder / "summary.json").is_file() else {}
    seen = next((a for a in summary.get("arms", []) if a.get("region") == "seen"), {})
    trials = seen.get("trials") or 0
    return {"autonomous_successes": seen.get("autonomous_successes"),
            "trials_with_takeover": seen.get("trials_with_takeover"),
            "takeovers_per_trial": (seen.get("takeovers") or 0) / trials if trials else None}


def as_sets(items: list[str]) -> list[str]:
    return [x for item in items for x in ("--set", item)]


def choose_reward(args: argparse.Namespace, data: Path, il_ckpt: Path, runs: Path, sets: list[str],
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
            run_step(f"4.1 reward {name}", ["train", "--bags", str(data), "--stage", "rl", "--init", str(il_ckpt),
                                        "--no-export", "--output", str(run), "--set", f"rl_steps={args.reward_steps}",
                                        *as_sets(["corft.extraction=none", f"corft.holdout={REWARD_HOLDOUT}",
                                                *reward_sets]), *sets], log)
        diag = json.loads((run / "train.json").read_text())["stages"]["rl"].get("diagnostics") or {}
        table[name] = {"sets": reward_sets, "diagnostics": diag,
                       "auc": ((diag.get("auc") or {}).get(REWARD_HORIZON) or {}).get("auc")}
    measured = {k: v["auc"] for k, v in table.items() if v["auc"] is not None}
    chosen = max(measured, key=lambda k: (measured[k], -list(REWARDS).index(k))) if measured else next(iter(REWARDS))
    log["reward"] = {"chosen": chosen, "by": f"held-out AUC of V(s) at {REWARD_HORIZON} for eventual success",
                     "candidates": table}
    save_log(log)
    print(f"reward: {chosen} (held-out AUC at {REWARD_HORIZON}: "
          + ", ".join(f"{k} {'n/a' if v is None else format(v, '.3f')}" for k, v in
                      ((k, t['auc']) for k, t in table.items())) + ")", flush=True)
    return chosen


def round_record(folder: Path, model: str, run: Path) -> dict:
    """What a round collected with which model, and what its CO-RFT run trained on."""
    summary = json.loads((folder / "summary.json").read_text()) if (folder / "summary.json").is_file() else {}
    seen = next((a for a in summary.get("arms", []) if a.get("region") == "seen"), {})
    train = json.loads((run / "train.json").read_text()) if (run / "train.json").is_file() else {}
    return {"collected_with": model, "trials": seen.get("trials"), "successes": seen.get("successes"),
            "cycle_time_mean_s": seen.get("cycle_time_mean_s"), "dataset": train.get("dataset", {}),
            "stages": train.get("stages", {}),
            "diagnostics": ((train.get("stages") or {}).get("rl") or {}).get("diagnostics")}
