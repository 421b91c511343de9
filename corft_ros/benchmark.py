"""The trials benchmark over the real graph (`corft-ros benchmark`, `demo`, `experiment`): N trials per arm
(policy × executor mode, and the scripted operator) on the sim arm, interleaved and paired; success rate with
Wilson 95% intervals, cycle time, loop and inference statistics; a report folder (report.md, trials.csv,
summary.json rewritten after every trial; PNG plots every 10 trials and at the end).

The node set and parameters come from config/benchmark.yaml (what benchmark.launch.py runs). The sim, the cameras
and the benchmark node live for the whole run; the arm's nodes (policy + executor + episode_logger, or teleop +
episode_logger for the operator) are created from the same YAML for each arm and replaced when the next trial
belongs to another arm.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from corft_ros.core.node_params.benchmark import BenchmarkParams

DEFAULT_TIMEOUT_S = BenchmarkParams.timeout_s  # the benchmark node's own default (core/node_params/benchmark.py)
PLOT_EVERY = 10  # trials between plot redraws during a run (a redraw costs ~0.7 s; the final report draws them)


def _speed(factor: float) -> str:
    if factor == 1.0:
        return "real time"
    return "as fast as its consumers allow" if factor == 0 else f"{factor:g}x real time"


@dataclass
class Arm:
    name: str
    model: str = ""  # '' for the operator
    mode: str = ""

    @property
    def operator(self) -> bool:
        return not self.model


@dataclass
class BenchConfig:
    arms: list[Arm]
    trials: int = BenchmarkParams.trials
    regions: list[str] = field(default_factory=lambda: ["seen"])
    timeout_s: float = DEFAULT_TIMEOUT_S
    output: Path = Path("bench")
    realtime_factor: float = 1.0
    seed: int = 0
    controller: str = "forward"
    backend: str = "onnx"
    cameras: str = ""
    command: str = ""
    title: str = "Benchmark"
    quiet: bool = False
    intervention: str = ""  # a takeover source beside every arm (scripted: the sim's intervener); '' = none


def check_model(path: str, robot) -> None:
    """A one-line ConfigError when there is no usable model at `path` or its joints are not the robot's."""
    from corft_ros.core.policy.export import load_metadata
    from corft_ros.core.robot import ConfigError

    folder = Path(path)
    if not folder.exists():
        raise ConfigError(f"no model at {path} (export one with `corft-ros export`, or train one with "
                          "`corft-ros train`)")
    meta = load_metadata(folder)
    names = list(meta.config.joint_names)
    unknown = [j for j in names if j not in robot.joint_names]
    missing = [j for j in robot.joint_names if j not in names]
    if unknown or missing:
        what = f"has joint '{unknown[0]}'" if unknown else f"lacks joint '{missing[0]}'"
        raise ConfigError(f"model {path} does not fit robot '{robot.name}': it {what} "
                          f"(robot joints: {', '.join(robot.joint_names)})")


def make_arms(models: list[str], modes: list[str], operator: bool) -> list[Arm]:
    from corft_ros.core.trials.trials import OPERATOR_ARM, arm_names

    arms = [Arm(n, m, mode) for n, m, mode in arm_names(models, modes)] if models else []
    if operator:
        arms.append(Arm(OPERATOR_ARM))
    return arms


class _Samples:
    """Raw per-tick period errors and per-inference latencies of the arm's nodes, for the histograms (the
    /diagnostics the benchmark node reads carry only percentiles). Only samples new since the last take."""

    def __init__(self) -> None:
        self.period_error: dict[str, list[float]] = {}
        self.latency: dict[str, list[float]] = {}
        self._seen: dict[int, int] = {}

    def _new(self, key: int, total: int, window) -> list[float]:
        for _ in range(3):
            try:
                values = list(window)
                break
            except RuntimeError:  # mutated while copying
                time.sleep(0.001)
        else:
            return []
        fresh = max(0, total - self._seen.get(key, 0))
        self._seen[key] = total
        return values[-fresh:] if fresh else []

    def take(self, arm: str, nodes: dict) -> None:
        executor, policy = nodes.get("executor"), nodes.get("policy")
        if executor is not None:
            stats = executor.core.stats
            self.period_error.setdefault(arm, []).extend(
                self._new(id(executor), max(0, stats.ticks - 1), stats.period_errors))
        if policy is not None:
            self.latency.setdefault(arm, []).extend(
                self._new(id(policy), max(0, policy.counters["inferences"] - 1), policy.latencies))


def _graph_overrides(config: BenchConfig, arm: Arm | None, out: Path) -> dict[str, str]:
    overrides = {
        "sim": "true", "realtime_factor": repr(float(config.realtime_factor)), "output": config.controller,
        "backend": config.backend, "trials": str(config.trials), "regions": ",".join(config.regions),
        "timeout": repr(float(config.timeout_s)), "report": str(out), "first_seed": str(config.seed),
        "autostart": "false", "output_dir": str((out / "episodes").resolve()),
    }
    if config.cameras:
        overrides["cameras"] = config.cameras
    if config.intervention:
        overrides["intervention"] = config.intervention
    if arm is not None:
        overrides["arm"] = arm.name
        overrides["operator"] = str(arm.operator).lower()
        if not arm.operator:
            overrides["model"] = str(Path(arm.model).resolve())
            overrides["mode"] = arm.mode
    return overrides


ARM_NODES = ("policy", "executor", "teleop", "episode_logger", "intervener")


def _arm_graph(config: BenchConfig, arm: Arm, out: Path, seed: int):
    from corft_ros.core.graph import Graph, load_graph

    graph = load_graph("benchmark", _graph_overrides(config, arm, out))
    specs = [spec for spec in graph.nodes if spec.name in ARM_NODES]
    for spec in specs:
        if spec.name == "episode_logger":
            spec.parameters["source"] = "scripted" if arm.operator else "policy"
            if arm.operator:  # no policy: its chunks are not expected
                from corft_ros.core.topics import ACTION_CHUNK, canonical

                wanted = spec.value("topics")
                spec.parameters["topics"] = [t for t in wanted if canonical(t) != canonical(ACTION_CHUNK)]
        if spec.name == "teleop":
            spec.parameters["seed"] = int(seed)
    return Graph(name=f"{graph.name}-{arm.name}", source=graph.source, arguments=graph.arguments, nodes=tuple(specs))


def run_benchmark(config: BenchConfig) -> tuple[int, dict | None]:
    """Run the schedule; returns (exit code, summary). The report is rewritten after every trial."""
    from corft_ros.core.graph import Graph, load_graph
    from corft_ros.core.robot import ConfigError
    from corft_ros.core.trials.report import read_trials_csv, summary_lines, write_run_report
    from corft_ros.core.trials.run import StopRun, run_trials
    from corft_ros.core.trials.trials import in_plan, remaining, schedule
    from corft_ros.nodes.compose import ComposedGraph

    def say(text: str) -> None:
        if text.startswith("error:"):
            print(text, file=sys.stderr, flush=True)
        elif not config.quiet:
            print(text, flush=True)

    out = config.output
    try:
        (out / "episodes").mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        print(f"error: cannot create the report folder {out}: {exc}", file=sys.stderr)
        return 1, None
    plan = schedule([a.name for a in config.arms], config.regions, config.trials, config.seed)
    arms = {a.name: a for a in config.arms}
    done, loops = [], []
    if (out / "trials.csv").is_file():
        try:
            done = in_plan(plan, read_trials_csv(out / "trials.csv"))
            old = json.loads((out / "summary.json").read_text()) if (out / "summary.json").is_file() else {}
            keys = {(t.arm, t.region, t.seed) for t in done}
            loops = [r for r in old.get("trial_loop", [])
                     if (r.get("arm"), r.get("region"), r.get("seed")) in keys]
        except (OSError, ValueError, KeyError) as exc:
            print(f"error: cannot resume from {out / 'trials.csv'}: {exc}", file=sys.stderr)
            return 2, None
        if done:
            say(f"resuming {out}: {len(done)} of {len(plan)} trials already done")
    todo = remaining(plan, done)
    compare = (config.arms[0].name, config.arms[1].name) if len(config.arms) >= 2 else None
    trials = list(done)
    notes = ["durations and loop periods are sim time (every node follows the sim's /clock: use_sim_time)"]
    if config.realtime_factor != 1.0:
        notes.append(f"sim speed: realtime_factor {config.realtime_factor:g} (0 = as fast as the renderer, policy and "
                     "executor allow); every node runs on sim time and the sim waits for its consumers, so results "
                     "compare with real time (docs/benchmark.md: consistency run)")
    samples = _Samples()

    def report(plots: bool = True) -> dict:
        return write_run_report(out, trials, loops, plan_size=len(plan), title=config.title, command=config.command,
                                notes=notes, latency_samples=samples.latency,
                                period_error_samples=samples.period_error, compare=compare, plots=plots,
                                extra={"arms_config": [vars(a) for a in config.arms],
                                       "realtime_factor": config.realtime_factor,
                                       "clock": "sim time (use_sim_time): durations and loop periods"})

    if not todo:
        summary = report()
        say(f"{out}: all {len(plan)} planned trials are done")
        for line in summary_lines(summary):
            say(line)
        say(f"report: {out / 'report.md'}")
        return 0, summary
    try:
        base = load_graph("benchmark", _graph_overrides(config, None, out))
        persistent = Graph(name=base.name, source=base.source, arguments=base.arguments,
                           nodes=tuple(s for s in base.nodes if s.name not in ARM_NODES))
        started = time.monotonic()
        composed = ComposedGraph(persistent)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2, None
    bench = composed.nodes["benchmark"]
    say(f"benchmark: {len(plan)} trials ({len(config.arms)} arms × {len(config.regions)} regions × {config.trials}), "
        f"{len(todo)} to run; sim at {_speed(config.realtime_factor)}; report in {out}")
    current: tuple[str, ComposedGraph] | None = None
    rc = 0

    def drop_arm() -> None:
        nonlocal current
        if current is None:
            return
        name, graph = current
        samples.take(name, graph.nodes)
        logger = graph.nodes.get("episode_logger")
        if logger is not None:
            logger.close()  # a running episode (interrupted trial) is closed, not lost
        graph.shutdown()
        current = None

    def run_one(spec):
        nonlocal current
        if current is None or current[0] != spec.arm:
            drop_arm()
            try:
                current = (spec.arm, ComposedGraph(_arm_graph(config, arms[spec.arm], out, spec.seed),
                                                   context=composed.context, threads=4))
            except ConfigError as exc:
                print(f"error: arm {spec.arm}: {exc}", file=sys.stderr)
                raise StopRun(f"arm {spec.arm} could not start: {exc}", 2) from None
            bench.forget_diagnostics()
        outcome = bench.run_trial(spec)
        samples.take(spec.arm, current[1].nodes)
        return outcome

    def counted(spec, outcome) -> None:
        loops.append({"arm": spec.arm, "region": spec.region, "seed": spec.seed, "episode": outcome.episode,
                      **outcome.loop})
        report(plots=len(trials) % PLOT_EVERY == 0)  # tables after every trial, plots every few and at the end

    try:
        rc = run_trials(todo, trials, notes, run_one, counted, say, bench.max_errors, len(plan))
    except KeyboardInterrupt:
        notes.append(f"interrupted (Ctrl-C) after {len(trials)} of {len(plan)} trials; the interrupted trial is "
                     "not counted")
        say("\ninterrupted: writing the report of the trials done so far")
        rc = 130
    finally:
        drop_arm()
        composed.shutdown()
    summary = report()
    wall = time.monotonic() - started
    say(f"\n{len(trials)} of {len(plan)} trials in {wall:.0f} s wall. Cycle time = sim time from the episode start "
        "to the first success signal, over successful trials.")
    for line in summary_lines(summary):
        say(line)
    say(f"report: {out / 'report.md'} (trials.csv, summary.json, plots; episodes in {out / 'episodes'})")
    if rc == 0 and len(trials) < len(plan):
        rc = 1
    return rc, summary
