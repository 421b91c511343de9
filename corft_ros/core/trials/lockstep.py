"""Lockstep trials: arms compared on the same starts with an evaluation whose only noise is the policy's.

Each trial is `corft_ros.core.sim.rollout.rollout`: sim, policy and executor advancing in a fixed order on sim time,
the chunk reaching the executor a fixed inference latency after its observation, every random source seeded by the
trial's seed. The same model on the same start therefore gives the same outcome wherever and whenever it runs, so
two arms that differ on a start differ because of the arms. (Over the real graph in real time the same model on the
same starts disagreed with itself on 15% of them: docs/results.) The real-time graph (`corft-ros benchmark`
without --lockstep) stays what measures latency and the control loop.

Trials run in `workers` processes (`python -m corft_ros.core.trials.lockstep`: one JSON job on stdin, one JSON line
per finished trial on stdout, no pickle across the process boundary); each loads every arm's model once and takes
every `workers`-th trial of the plan. In lockstep the outcome of a trial does not depend on which worker ran it.
"""

from __future__ import annotations

import contextlib
import json
import math
import selectors
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

from corft_ros.core.sim.rollout import DEFAULT_INFERENCE_LATENCY_S
from corft_ros.core.trials.stats import Trial
from corft_ros.core.trials.trials import TrialSpec


class LockstepError(RuntimeError):
    """A worker failed: its one-line reason (and the tail of what it printed)."""


@dataclass(frozen=True)
class LockstepArm:
    name: str
    model: str  # exported model folder
    mode: str = "temporal_ensembling"  # executor mode
    best_of_n: int | None = None  # None: what the model's policy.yaml asks for


@dataclass(frozen=True)
class LockstepConfig:
    timeout_s: float = 20.0
    inference_latency_s: float = DEFAULT_INFERENCE_LATENCY_S
    instruction: str = ""  # '' = the sim's task
    workers: int = 1


def trial_from_row(row: dict) -> Trial:
    return Trial(arm=row["arm"], region=row["region"], seed=int(row["seed"]), success=bool(row["success"]),
                 duration_s=float(row["duration_s"]), timeout_s=float(row["timeout_s"]),
                 start_x=float(row["start_x"]), start_y=float(row["start_y"]), end_reason=row["end_reason"])


def run_job(job: dict, emit: Callable[[dict], None]) -> None:
    """A worker's work: every trial of `job` in order, each reported through `emit` as a JSON-able row."""
    from corft_ros.core.policy.backends import load_runtime
    from corft_ros.core.policy.config import executed_prefix
    from corft_ros.core.robot import load_robot_config
    from corft_ros.core.sim.rollout import RolloutConfig, rollout
    from corft_ros.core.sim.scene import TASK, CubeScene, SceneConfig

    robot = load_robot_config(None)
    arms = {a["name"]: LockstepArm(**a) for a in job["arms"]}
    runtimes = {}
    for arm in arms.values():
        rt = load_runtime(arm.model, "onnx", threads=1, best_of_n=arm.best_of_n, seed=0)
        rt.prefix = executed_prefix(RolloutConfig().policy_rate_hz, rt.action_dt, rt.chunk_size)
        runtimes[arm.name] = rt
    cameras = sorted({c for rt in runtimes.values() for c in rt.camera_names})
    scene = CubeScene(robot, SceneConfig(cameras=tuple(cameras)))
    instruction = job.get("instruction") or TASK
    for arm_name, region, seed, index in job["trials"]:
        arm = arms[arm_name]
        config = RolloutConfig(timeout_s=float(job["timeout_s"]), mode=arm.mode,
                               inference_latency_s=float(job["inference_latency_s"]))
        result = rollout(scene, runtimes[arm_name], robot, int(seed), region, instruction, config)
        emit({"index": int(index), "arm": arm_name, "region": region, "seed": int(seed),
              "success": bool(result.success), "duration_s": float(result.duration_s),
              "timeout_s": float(job["timeout_s"]), "start_x": float(result.cube_xy[0]),
              "start_y": float(result.cube_xy[1]), "end_reason": "success" if result.success else "timeout",
              "failure": result.failure, "max_cube_height": float(result.max_cube_height),
              "min_cube_goal_distance": float(result.min_cube_goal_distance),
              "final_cube_goal_distance": _finite(result.final_cube_goal_distance), "wall_s": float(result.wall_s)})


def _finite(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def run_lockstep(arms: Sequence[LockstepArm], todo: Sequence[TrialSpec], config: LockstepConfig,
                 on_result: Callable[[TrialSpec, dict], None]) -> None:
    """Run `todo` in `config.workers` worker processes; `on_result(spec, row)` is called in this thread as each trial
    finishes (rows as `run_job` emits them). Raises LockstepError when a worker fails."""
    if not todo:
        return
    by_index = {spec.index: spec for spec in todo}
    workers = max(1, min(config.workers, len(todo)))
    procs: list[tuple[subprocess.Popen, object]] = []
    with contextlib.ExitStack() as stack:
        selector = stack.enter_context(selectors.DefaultSelector())
        stack.callback(_kill_all, procs)
        for w in range(workers):
            job = {"arms": [asdict(a) for a in arms], "timeout_s": config.timeout_s,
                   "inference_latency_s": config.inference_latency_s, "instruction": config.instruction,
                   "trials": [[s.arm, s.region, s.seed, s.index] for s in todo[w::workers]]}
            # stderr to a file, not a pipe: a worker's warnings can never fill it and block the worker
            err = stack.enter_context(tempfile.TemporaryFile(mode="w+"))
            proc = subprocess.Popen([sys.executable, "-m", "corft_ros.core.trials.lockstep"], stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE, stderr=err, text=True)
            procs.append((proc, err))
            proc.stdin.write(json.dumps(job))
            proc.stdin.close()
            selector.register(proc.stdout, selectors.EVENT_READ, proc)
        open_streams = len(procs)
        while open_streams:
            for key, _ in selector.select():
                line = key.fileobj.readline()
                if not line:
                    selector.unregister(key.fileobj)
                    open_streams -= 1
                    continue
                row = json.loads(line)
                on_result(by_index[row["index"]], row)
        for proc, err in procs:
            if proc.wait() != 0:
                err.seek(0)
                last = [ln for ln in err.read().strip().splitlines() if ln.strip()]
                raise LockstepError(f"a lockstep worker failed (exit {proc.returncode}): "
                                    f"{last[-1] if last else 'no message'}")


def _kill_all(procs: list) -> None:
    for proc, _ in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


REPEAT_SUFFIX = "_repeat"
EXTRA_FILE = "lockstep.jsonl"  # one row per finished trial, with what trials.csv has no column for


def with_repeat(arms: Sequence[LockstepArm], repeat: str) -> list[LockstepArm]:
    """The arms plus a second copy of arm `repeat` (named <repeat>_repeat): the same model on the same starts, whose
    discordance with the original is the evaluation's own noise floor."""
    arms = list(arms)
    if not repeat:
        return arms
    found = [a for a in arms if a.name == repeat]
    if not found:
        raise ValueError(f"--repeat-arm {repeat}: no such arm (arms: {', '.join(a.name for a in arms)})")
    return [*arms, LockstepArm(f"{repeat}{REPEAT_SUFFIX}", found[0].model, found[0].mode, found[0].best_of_n)]


def failure_counts(rows: Sequence[dict]) -> dict[str, dict[str, dict[str, int]]]:
    """arm -> region -> failure kind -> count (rollout.failure_kind), over the failed trials of `rows`."""
    out: dict[str, dict[str, dict[str, int]]] = {}
    for row in rows:
        if row.get("success") or not row.get("failure"):
            continue
        kinds = out.setdefault(row["arm"], {}).setdefault(row["region"], {})
        kinds[row["failure"]] = kinds.get(row["failure"], 0) + 1
    return out


def lockstep_benchmark(arms: Sequence[LockstepArm], regions: Sequence[str], trials_per_region: int, first_seed: int,
                       out, config: LockstepConfig, *, title: str, command: str,
                       say: Callable[[str], None] = print) -> tuple[int, dict]:
    """The interleaved schedule of `arms` × `regions` × `trials_per_region` (the same starts for every arm), run in
    lockstep; trials.csv and the report (with the paired comparisons) are rewritten as trials finish, and a run
    whose folder holds trials.csv resumes. Returns (exit code, summary)."""
    from pathlib import Path

    from corft_ros.core.trials.report import read_trials_csv, summary_lines, write_run_report
    from corft_ros.core.trials.trials import in_plan, remaining, schedule

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    plan = schedule([a.name for a in arms], regions, trials_per_region, first_seed)
    keys = {spec.key for spec in plan}
    trials = in_plan(plan, read_trials_csv(out / "trials.csv")) if (out / "trials.csv").is_file() else []
    done = {(t.arm, t.region, int(t.seed)) for t in trials}
    rows = []
    if (out / EXTRA_FILE).is_file():
        for line in (out / EXTRA_FILE).read_text().splitlines():
            row = json.loads(line)
            if (row["arm"], row["region"], row["seed"]) in keys & done:
                rows.append(row)
    todo = remaining(plan, trials)
    notes = [f"lockstep (ROS-free, one thread per trial): sim, policy and executor advance in a fixed order on sim "
             f"time; each chunk reaches the executor {config.inference_latency_s * 1000:g} ms of sim time after its "
             "observation; the reset and the policy's random draws are seeded by the trial's seed, so a model gives "
             "the same outcome on the same start wherever it runs",
             "no transport, no loop statistics: the real-time graph (benchmark without --lockstep) measures those"]

    def report(plots: bool) -> dict:
        return write_run_report(out, trials, [], plan_size=len(plan), title=title, command=command, notes=notes,
                                plots=plots, extra={"lockstep": {**asdict(config), "arms": [asdict(a) for a in arms]},
                                                    "failures": failure_counts(rows)})

    if done:
        say(f"resuming {out}: {len(trials)} of {len(plan)} trials already done")
    say(f"lockstep: {len(plan)} trials ({len(arms)} arms x {len(regions)} regions x {trials_per_region}), "
        f"{len(todo)} to run in {max(1, min(config.workers, len(todo) or 1))} worker(s); report in {out}")
    width = max(len(a.name) for a in arms)
    with (out / EXTRA_FILE).open("a") as extra:
        def on_result(spec: TrialSpec, row: dict) -> None:
            trials.append(trial_from_row(row))
            rows.append(row)
            extra.write(json.dumps(row) + "\n")
            extra.flush()
            say(f"trial {len(trials)}/{len(plan)} {spec.arm:>{width}} {spec.region:>6} seed {spec.seed:<5} "
                + ("success " if row["success"] else f"{row['failure'] or 'failure':<8}")
                + f" {row['duration_s']:6.2f} s")
            if len(trials) % 20 == 0:
                report(plots=False)

        try:
            run_lockstep(arms, todo, config, on_result)
        except LockstepError as exc:
            report(plots=True)
            say(f"error: {exc}")
            return 1, {}
    order = {spec.key: spec.index for spec in plan}
    trials.sort(key=lambda t: order[(t.arm, t.region, t.seed)])
    summary = report(plots=True)
    for line in summary_lines(summary):
        say(line)
    say(f"report: {out / 'report.md'}")
    return 0, summary


def main() -> int:
    """Worker entry: one JSON job on stdin, one JSON line per trial on stdout; an error is one line on stderr."""
    import os

    os.environ.setdefault("MUJOCO_GL", "egl")
    os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
    job = json.loads(sys.stdin.read())

    def emit(row: dict) -> None:
        sys.stdout.write(json.dumps(row) + "\n")
        sys.stdout.flush()

    try:
        run_job(job, emit)
    except Exception as exc:
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
