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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from corft_ros.core.node_params.benchmark import BenchmarkParams
from corft_ros.core.node_params.executor import ExecutorParams
from corft_ros.core.node_params.policy import PolicyParams

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
    seed: int = BenchmarkParams.first_seed
    controller: str = ExecutorParams.output  # the executor's output kind: forward | jtc
    backend: str = PolicyParams.backend
    cameras: str = ""
    command: str = ""
    title: str = "Benchmark"
    quiet: bool = False
    intervention: str = ""  # a takeover source beside every arm (scripted: the sim's intervener); '' = none


def check_model(path: str, robot) -> None:
    """A one-line ConfigError when there is no usable model at `path` or its joints are not the robot's."""
    from corft_ros.core.policy.model_files import load_metadata
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


def _sayer(config: BenchConfig) -> Callable[[str], None]:
    """The run's printer: errors to stderr always, the rest to stdout unless quiet."""

    def say(text: str) -> None:
        if text.startswith("error:"):
            print(text, file=sys.stderr, flush=True)
        elif not config.quiet:
            print(text, flush=True)

    return say


def _resumed(out: Path, plan: list, say: Callable[[str], None]) -> tuple[list, list[dict]] | None:
    """(trials done, their loop rows) from an earlier run's report folder; None (after an error line) if unreadable."""
    from corft_ros.core.trials.report import read_trials_csv
    from corft_ros.core.trials.trials import in_plan

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
            return None
        if done:
            say(f"resuming {out}: {len(done)} of {len(plan)} trials already done")
    return done, loops


def _run_notes(config: BenchConfig) -> list[str]:
    """The report's notes on the clock and the sim speed."""
    notes = ["durations and loop periods are sim time (every node follows the sim's /clock: use_sim_time)"]
    if config.realtime_factor != 1.0:
        notes.append(f"sim speed: realtime_factor {config.realtime_factor:g} (0 = as fast as the renderer, policy and "
                     "executor allow); every node runs on sim time and the sim waits for its consumers, so results "
                     "compare with real time (docs/benchmark.md: consistency run)")
    return notes


def _persistent_graph(config: BenchConfig, out: Path):
    """(start time, the composed graph of the nodes that live for the whole run); raises ConfigError."""
    from corft_ros.core.graph import Graph, load_graph
    from corft_ros.nodes.compose import ComposedGraph

    base = load_graph("benchmark", _graph_overrides(config, None, out))
    persistent = Graph(name=base.name, source=base.source, arguments=base.arguments,
                       nodes=tuple(s for s in base.nodes if s.name not in ARM_NODES))
    started = time.monotonic()
    return started, ComposedGraph(persistent)


class _BenchRun:
    """One run's state: the plan, the trials so far, the arm graph in place, and its report."""

    def __init__(self, config: BenchConfig, plan: list, done: list, loops: list[dict],
                 say: Callable[[str], None]) -> None:
        self.config = config
        self.out = config.output
        self.plan = plan
        self.arms = {a.name: a for a in config.arms}
        self.loops = loops
        self.compare = (config.arms[0].name, config.arms[1].name) if len(config.arms) >= 2 else None
        self.trials = list(done)
        self.notes = _run_notes(config)
        self.samples = _Samples()
        self.say = say
        self.composed = None
        self.bench = None
        self.current = None  # (arm name, its ComposedGraph)

    def report(self, plots: bool = True) -> dict:
        """Rewrite the report folder from the trials so far; returns the summary."""
        from corft_ros.core.trials.report import write_run_report

        config = self.config
        return write_run_report(self.out, self.trials, self.loops, plan_size=len(self.plan), title=config.title,
                                command=config.command, notes=self.notes, latency_samples=self.samples.latency,
                                period_error_samples=self.samples.period_error, compare=self.compare, plots=plots,
                                extra={"arms_config": [vars(a) for a in config.arms],
                                       "realtime_factor": config.realtime_factor,
                                       "clock": "sim time (use_sim_time): durations and loop periods"})

    def report_all_done(self) -> dict:
        """Nothing left to run: the report of the trials done, and its summary lines."""
        from corft_ros.core.trials.report import summary_lines

        summary = self.report()
        self.say(f"{self.out}: all {len(self.plan)} planned trials are done")
        for line in summary_lines(summary):
            self.say(line)
        self.say(f"report: {self.out / 'report.md'}")
        return summary

    def drop_arm(self) -> None:
        """Take the arm's samples, close its logger's episode and shut its nodes down."""
        if self.current is None:
            return
        name, graph = self.current
        self.samples.take(name, graph.nodes)
        logger = graph.nodes.get("episode_logger")
        if logger is not None:
            logger.close()  # a running episode (interrupted trial) is closed, not lost
        graph.shutdown()
        self.current = None

    def run_one(self, spec):
        """One trial, with its arm's nodes (started if the previous trial was another arm's)."""
        from corft_ros.core.robot import ConfigError
        from corft_ros.core.trials.run import StopRun
        from corft_ros.nodes.compose import ComposedGraph

        if self.current is None or self.current[0] != spec.arm:
            self.drop_arm()
            try:
                self.current = (spec.arm, ComposedGraph(_arm_graph(self.config, self.arms[spec.arm], self.out,
                                                                   spec.seed),
                                                        context=self.composed.context, threads=4))
            except ConfigError as exc:
                print(f"error: arm {spec.arm}: {exc}", file=sys.stderr)
                raise StopRun(f"arm {spec.arm} could not start: {exc}", 2) from None
            self.bench.forget_diagnostics()
        outcome = self.bench.run_trial(spec)
        self.samples.take(spec.arm, self.current[1].nodes)
        return outcome

    def counted(self, spec, outcome) -> None:
        """A counted trial: its loop row, and the report rewritten."""
        self.loops.append({"arm": spec.arm, "region": spec.region, "seed": spec.seed, "episode": outcome.episode,
                           **outcome.loop})
        # tables after every trial, plots every few and at the end
        self.report(plots=len(self.trials) % PLOT_EVERY == 0)

    def run(self, todo: list, composed) -> int:
        """Run the trials left on the persistent graph `composed`; returns the exit code (130 on Ctrl-C)."""
        from corft_ros.core.trials.run import run_trials

        self.composed = composed
        self.bench = composed.nodes["benchmark"]
        plan, trials = self.plan, self.trials
        try:
            return run_trials(todo, trials, self.notes, self.run_one, self.counted, self.say, self.bench.max_errors,
                              len(plan))
        except KeyboardInterrupt:
            self.notes.append(f"interrupted (Ctrl-C) after {len(trials)} of {len(plan)} trials; the interrupted trial "
                              "is not counted")
            self.say("\ninterrupted: writing the report of the trials done so far")
            return 130
        finally:
            self.drop_arm()
            composed.shutdown()


def run_benchmark(config: BenchConfig) -> tuple[int, dict | None]:
    """Run the schedule; returns (exit code, summary). The report is rewritten after every trial."""
    from corft_ros.core.robot import ConfigError
    from corft_ros.core.trials.report import summary_lines
    from corft_ros.core.trials.trials import remaining, schedule

    say = _sayer(config)
    out = config.output
    try:
        (out / "episodes").mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        print(f"error: cannot create the report folder {out}: {exc}", file=sys.stderr)
        return 1, None
    plan = schedule([a.name for a in config.arms], config.regions, config.trials, config.seed)
    resumed = _resumed(out, plan, say)
    if resumed is None:
        return 2, None
    done, loops = resumed
    todo = remaining(plan, done)
    run = _BenchRun(config, plan, done, loops, say)
    if not todo:
        return 0, run.report_all_done()
    try:
        started, composed = _persistent_graph(config, out)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2, None
    say(f"benchmark: {len(plan)} trials ({len(config.arms)} arms × {len(config.regions)} regions × {config.trials}), "
        f"{len(todo)} to run; sim at {_speed(config.realtime_factor)}; report in {out}")
    rc = run.run(todo, composed)
    trials = run.trials
    summary = run.report()
    wall = time.monotonic() - started
    say(f"\n{len(trials)} of {len(plan)} trials in {wall:.0f} s wall. Cycle time = sim time from the episode start "
        "to the first success signal, over successful trials.")
    for line in summary_lines(summary):
        say(line)
    say(f"report: {out / 'report.md'} (trials.csv, summary.json, plots; episodes in {out / 'episodes'})")
    if rc == 0 and len(trials) < len(plan):
        rc = 1
    return rc, summary
