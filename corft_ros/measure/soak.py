"""`corft-ros measure soak --minutes M`: the deploy graph (config/deploy.yaml, sim) for M minutes, episodes in a row.

Every node of the graph runs in its own process (what `ros2 launch` does), started from the graph's resolved
parameters, so psutil can measure each node's resident memory over time. A driver in this process resets the
sim, starts and stops logged episodes back to back, watches every command the executor sends (limit violations)
and the nodes' /diagnostics (loop period error, underruns, overruns, stale holds, rejected chunks), and reads each
episode's metadata (messages, drops) when it ends. It prints only what it measured.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from corft_ros.core import topics as topic_names
from corft_ros.core.topics import canonical
from corft_ros.measure._soak_driver import _Driver

DEPLOY_GRAPH = "deploy"


def register(benches: argparse._SubParsersAction) -> None:
    p = benches.add_parser("soak", help="run the deploy graph in sim for M minutes: RSS per node, loop error, "
                                        "drops, underruns, limit violations")
    p.add_argument("--minutes", type=float, default=30.0, help="how long to run (default 30)")
    p.add_argument("--episode-s", type=float, default=20.0, help="length of each logged episode (default 20 s)")
    p.add_argument("--sample-s", type=float, default=5.0, help="RSS sampling interval (default 5 s)")
    p.add_argument("--warmup-s", type=float, default=60.0,
                   help="RSS growth is measured from the first sample after this (default 60 s)")
    p.add_argument("--model", default="", help="exported model ('' = models/default, else a fresh stand-in)")
    p.add_argument("--output-dir", default="", help="where episodes go ('' = a temporary folder, removed)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=bench_soak)


# ---- the graph, one process per node ---------------------------------------------------------------------------
def _write_params(graph, folder: Path) -> dict[str, Path]:
    import yaml

    files = {}
    for spec in graph.nodes:
        path = folder / f"{spec.name}.params.yaml"
        path.write_text(yaml.safe_dump({spec.name: {"ros__parameters": spec.parameters}}, sort_keys=False))
        files[spec.name] = path
    return files


def _start_nodes(graph, params: dict[str, Path], logs: Path) -> dict[str, subprocess.Popen]:
    procs = {}
    for spec in graph.nodes:
        code = f"import sys; from corft_ros.nodes.{spec.executable} import main; sys.exit(main())"
        log = open(logs / f"{spec.name}.log", "wb")  # noqa: SIM115 - lives as long as the process
        procs[spec.name] = subprocess.Popen(
            [sys.executable, "-c", code, "--ros-args", "-r", f"__node:={spec.name}",
             "--params-file", str(params[spec.name])],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    return procs


def _stop_nodes(procs: dict[str, subprocess.Popen]) -> dict[str, int | None]:
    for proc in procs.values():
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
    codes = {}
    for name, proc in procs.items():
        try:
            codes[name] = proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            codes[name] = proc.wait(timeout=5)
    return codes


# ---- the run -----------------------------------------------------------------------------------------------------
def run_soak(minutes: float, episode_s: float, sample_s: float, warmup_s: float, model: str, output_dir: Path,
             workdir: Path, progress=print) -> dict:
    from corft_ros.core.graph import load_graph
    from corft_ros.core.robot import load_robot_config

    robot = load_robot_config()
    model, overrides = _deploy_overrides(model, output_dir, workdir)
    graph = load_graph(DEPLOY_GRAPH, overrides)
    params = _write_params(graph, workdir)
    logs = workdir / "logs"
    logs.mkdir(exist_ok=True)
    driver = _Driver(robot)
    procs = _start_nodes(graph, params, logs)
    started = time.monotonic()
    run = _SoakRun(driver, procs, logs, progress)
    try:
        _wait_until_tracking(driver, procs, logs)
        ready_s = time.monotonic() - started
        progress(f"graph up in {ready_s:.1f} s: {', '.join(procs)}")
        elapsed = run.episodes_until(minutes, episode_s, sample_s)
    finally:
        codes = _stop_nodes(procs)
        final = driver.executor_values()
        seen = driver.snapshot()
        driver.close()
    return _soak_report(run, seen, final, codes, rss=_rss_summary(procs, run.samples, warmup_s),
                        elapsed=elapsed, ready_s=ready_s, episode_s=episode_s, model=model)


def _deploy_overrides(model: str, output_dir: Path, workdir: Path) -> tuple[str, dict[str, str]]:
    """(the model, the deploy graph's overrides): sim, episodes into `output_dir`, the model (models/default, else a
    fresh stand-in exported into `workdir`, with the instruction it knows)."""
    from corft_ros.measure._executor_load import BENCH_INSTRUCTION, _bench_model

    overrides = {"sim": "true", "output_dir": str(output_dir)}
    if model:
        overrides["model"] = model
    else:
        model = _bench_model(workdir)
        overrides["model"] = model
        if "bench_policy" in model:
            overrides["instruction"] = BENCH_INSTRUCTION
    return model, overrides


def _first_dead(procs: dict[str, subprocess.Popen]) -> str | None:
    dead = [n for n, p in procs.items() if p.poll() is not None]
    return dead[0] if dead else None


def _wait_until_tracking(driver: _Driver, procs: dict[str, subprocess.Popen], logs: Path) -> None:
    """The graph is ready when the executor tracks chunks (180 s at most); RuntimeError when a node exits first."""
    deadline = time.monotonic() + 180
    while driver.executor_values().get("state") != "tracking":
        dead = _first_dead(procs)
        if dead:
            raise RuntimeError(f"node {dead} exited with {procs[dead].returncode} during start-up "
                               f"(log: {logs / (dead + '.log')})")
        if time.monotonic() > deadline:
            raise RuntimeError(f"the executor did not start tracking within 180 s "
                               f"(state {driver.executor_values().get('state', 'unknown')})")
        time.sleep(0.2)


class _SoakRun:
    """Logged episodes back to back through the driver's service calls, each node's RSS sampled meanwhile; what each
    episode's metadata says, and the problems met on the way."""

    def __init__(self, driver: _Driver, procs: dict[str, subprocess.Popen], logs: Path, progress) -> None:
        self.driver = driver
        self.procs = procs
        self.logs = logs
        self.progress = progress
        self.samples: list[dict] = []
        self.episodes: list[dict] = []
        self.problems: list[str] = []
        self.t0 = 0.0
        self.next_sample = 0.0
        self.handles: dict = {}

    def episodes_until(self, minutes: float, episode_s: float, sample_s: float) -> float:
        """Episodes of `episode_s` for `minutes` (the last one cut short); the seconds they took."""
        import psutil

        self.t0 = time.monotonic()
        end = self.t0 + minutes * 60.0
        self.handles = {name: psutil.Process(p.pid) for name, p in self.procs.items()}
        self.next_sample = self.t0
        while time.monotonic() < end:
            folder = self._reset_and_start()
            if folder is None:
                break
            self._record_until(min(time.monotonic() + episode_s, end), sample_s)
            self._stop(folder)
            self.progress(f"{time.monotonic() - self.t0:7.1f} s  episode {len(self.episodes)}: "
                          f"{self.episodes[-1] if self.episodes else '-'}")
        self._sample()
        return time.monotonic() - self.t0

    def _sample(self) -> None:
        import psutil

        row = {"t_s": round(time.monotonic() - self.t0, 1)}
        for name, handle in self.handles.items():
            try:
                row[name] = handle.memory_info().rss
            except psutil.Error:
                row[name] = None
        self.samples.append(row)

    def _reset_and_start(self) -> Path | None:
        """Resets the sim and starts an episode: its folder, None when the logger refused."""
        from std_srvs.srv import Trigger

        reply = self.driver.call(Trigger, topic_names.SIM_RESET, Trigger.Request())
        if not reply.success:
            self.problems.append(f"reset refused: {reply.message}")
        reply = self.driver.call(Trigger, topic_names.EPISODE_START, Trigger.Request())
        if not reply.success:
            self.problems.append(f"episode start refused: {reply.message}")
            return None
        return Path(reply.message)

    def _record_until(self, episode_end: float, sample_s: float) -> None:
        """Samples RSS every `sample_s` until `episode_end`; RuntimeError when a node dies."""
        while time.monotonic() < episode_end:
            if time.monotonic() >= self.next_sample:
                self._sample()
                self.next_sample += sample_s
            dead = _first_dead(self.procs)
            if dead:
                raise RuntimeError(f"node {dead} died (exit {self.procs[dead].returncode}; "
                                   f"log: {self.logs / (dead + '.log')})")
            time.sleep(min(0.2, max(0.0, episode_end - time.monotonic())))

    def _stop(self, folder: Path) -> None:
        """Stops the episode and reads its metadata (messages, drops, chunks)."""
        from std_srvs.srv import Trigger

        from corft_ros.core.episodes import load_episode_metadata

        reply = self.driver.call(Trigger, topic_names.EPISODE_STOP, Trigger.Request())
        if not reply.success:
            self.problems.append(f"episode stop: {reply.message}")
        try:
            meta = load_episode_metadata(folder)
            topics = meta.get("topics") or {}
            self.episodes.append({
                "episode": folder.name, "status": meta.get("status"),
                "messages": sum(int(t.get("count", 0)) for t in topics.values()),
                "dropped": sum(int(t.get("dropped", 0)) for t in topics.values()),
                "chunks": int((topics.get(canonical(topic_names.ACTION_CHUNK)) or {}).get("count", 0)),
            })
        except Exception as exc:  # a broken episode is a finding, not a crash of the soak
            self.problems.append(f"{folder}: metadata unreadable: {exc}")


def _rss_summary(procs: dict, samples: list[dict], warmup_s: float) -> dict:
    rss = {}
    for name in procs:
        series = [(s["t_s"], s[name]) for s in samples if s.get(name)]
        if not series:
            continue
        after = [v for t, v in series if t >= warmup_s] or [series[-1][1]]
        rss[name] = {
            "first_mb": round(series[0][1] / 1e6, 1), "after_warmup_mb": round(after[0] / 1e6, 1),
            "last_mb": round(series[-1][1] / 1e6, 1), "max_mb": round(max(v for _, v in series) / 1e6, 1),
            "growth_after_warmup_pct": round(100.0 * (series[-1][1] - after[0]) / after[0], 2),
        }
    return rss


def _soak_report(run: _SoakRun, seen: dict, final: dict, codes: dict, *, rss: dict, elapsed: float, ready_s: float,
                 episode_s: float, model: str) -> dict:
    """The report: `seen` is what the driver saw (its snapshot), `final` the executor's last diagnostics."""
    episodes, rtf, policy = run.episodes, seen["rtf"], seen["policy"]
    return {
        "minutes": round(elapsed / 60.0, 2), "graph_start_s": round(ready_s, 1), "episodes": len(episodes),
        "episode_s": episode_s, "model": model,
        "rss": rss,
        "rss_samples": run.samples,
        "executor": {
            "commands_seen": seen["commands"], "limit_violations": seen["violations"],
            "nonfinite_or_malformed_commands": seen["nonfinite"],
            "period_error_p99_ms_worst_window": round(seen["p99_max"], 3),
            "period_error_max_ms": round(seen["max_period_error"], 3),
            **{k: final.get(k) for k in ("rate_hz", "underruns", "overruns", "stale_holds", "chunks_accepted",
                                         "chunks_rejected", "position_clamps", "velocity_clamps", "state",
                                         "last_error")},
        },
        "sim_real_time_factor": {"min": round(min(rtf), 3) if rtf else None,
                                 "mean": round(sum(rtf) / len(rtf), 3) if rtf else None},
        "policy": {k: policy.get(k) for k in ("chunks_published", "overruns", "nonfinite_outputs",
                                              "skipped_missing_input", "unchanged_inputs", "latency_p95_ms")},
        "chunks_seen_by_driver": seen["chunks_seen"],
        "logger": {
            "messages": sum(e["messages"] for e in episodes), "dropped": sum(e["dropped"] for e in episodes),
            "statuses": sorted({str(e["status"]) for e in episodes}),
        },
        "episode_list": episodes,
        "exit_codes": codes,
        "problems": run.problems,
    }


def bench_soak(args: argparse.Namespace) -> int:
    if args.minutes <= 0 or args.episode_s <= 0 or args.sample_s <= 0:
        print("error: --minutes, --episode-s and --sample-s must be positive", file=sys.stderr)
        return 2
    os.environ.setdefault("MUJOCO_GL", "egl")
    os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
    with tempfile.TemporaryDirectory(prefix="corft_soak_") as tmp:
        workdir = Path(tmp)
        output = Path(args.output_dir).expanduser() if args.output_dir else workdir / "episodes"
        output.mkdir(parents=True, exist_ok=True)
        say = (lambda _m: None) if args.json else print
        try:
            report = run_soak(args.minutes, args.episode_s, args.sample_s, args.warmup_s, args.model, output,
                              workdir, progress=say)
        except RuntimeError as exc:
            print(f"error: soak: {exc}", file=sys.stderr)
            for log in sorted((workdir / "logs").glob("*.log")):
                tail = log.read_text(errors="replace").strip().splitlines()[-3:]
                if tail:
                    print(f"  {log.stem}: " + " | ".join(tail), file=sys.stderr)
            return 1
    if args.json:
        print(json.dumps(report))
        return 0
    print(f"soak: {report['minutes']} min, {report['episodes']} episodes of {report['episode_s']:g} s "
          f"(graph up in {report['graph_start_s']} s)")
    for name, r in report["rss"].items():
        print(f"  RSS {name:15s} {r['after_warmup_mb']:8.1f} MB after warm-up → {r['last_mb']:8.1f} MB "
              f"({r['growth_after_warmup_pct']:+.2f}%), max {r['max_mb']:.1f} MB")
    e = report["executor"]
    print(f"  executor: {e['commands_seen']} commands, {e['limit_violations']} limit violations, "
          f"period error p99 (worst 1000-tick window) {e['period_error_p99_ms_worst_window']} ms, "
          f"max {e['period_error_max_ms']} ms, underruns {e['underruns']}, overruns {e['overruns']}, "
          f"stale holds {e['stale_holds']}, chunks rejected {e['chunks_rejected']}")
    lg = report["logger"]
    if e.get("last_error"):
        print(f"  executor last error: {e['last_error']}")
    print(f"  sim real-time factor: mean {report['sim_real_time_factor']['mean']}, "
          f"min {report['sim_real_time_factor']['min']}")
    print(f"  logger: {lg['messages']} messages recorded, {lg['dropped']} dropped, statuses {lg['statuses']}")
    for problem in report["problems"]:
        print(f"  problem: {problem}")
    return 0
