"""`corft-ros measure executor`: per-tick cost of blending (+ safety) for every mode, and the control loop's
period error at the robot rate while other work loads the process."""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time

from corft_ros.measure._executor_costs import D, H, measure_costs
from corft_ros.measure._executor_load import _load_process, _spin_all, _start_episode, _stop_all, build_load


def register(benches: argparse._SubParsersAction) -> None:
    parser = benches.add_parser(
        "executor", help="executor: per-tick blending/safety cost (h=50, d=7, every mode) and loop period error"
    )
    parser.add_argument("--json", action="store_true", help="print JSON only")
    parser.add_argument("--ticks", type=int, default=4000, help="ticks per cost measurement")
    parser.add_argument("--seconds", type=float, default=8.0, help="loop measurement per configuration (s)")
    parser.add_argument("--no-loop", action="store_true", help="skip the ROS control-loop measurement")
    parser.add_argument("--runs", nargs="+", default=list(RUNS), choices=list(RUNS),
                        help="loop configurations to measure (timing, scheduling, load)")
    parser.set_defaults(func=bench_executor)


def measure_loop(seconds: float, timing: str, priority: int, load: tuple[str, ...], separate: bool = False,
                 switch_interval_ms: float = 0.25, workdir: str | None = None) -> dict:
    """Run the real ExecutorNode at the robot rate for `seconds` and report its own loop statistics.

    load: "deploy" = the real policy node (ONNX, 10 Hz) and episode logger (recording an episode), fed by
    camera + joint-state publishers as a robot would; "synthetic" = a pure-Python CPU-burning thread and a
    320x240 image flood (~200 Hz) with a subscriber. Without "deploy", a feeder publishes chunks at 10 Hz.
    separate: the load runs in a child process (one process per graph part, as with ros2 launch) instead
    of the executor's own process (as with `corft-ros deploy`'s composition).
    """
    import multiprocessing
    import tempfile
    from pathlib import Path

    import rclpy
    from rclpy.parameter import Parameter

    from corft_ros.core.chunking import LoopStats
    from corft_ros.nodes.executor import ExecutorNode

    temp = tempfile.TemporaryDirectory(prefix="corft_bench_executor_")
    context = rclpy.Context()
    rclpy.init(context=context)
    stop = threading.Event()
    child = None
    try:
        executor_node = ExecutorNode(context=context, parameter_overrides=[
            Parameter("timing", value=timing), Parameter("thread_priority", value=priority),
            Parameter("staleness_timeout", value=1.0), Parameter("gil_switch_interval_ms", value=switch_interval_ms)])
        nodes: list = [executor_node]
        threads: list[threading.Thread] = []
        extra: dict = {}
        if separate:
            spawn = multiprocessing.get_context("spawn")
            manager = spawn.Manager()
            child_stop, child_ready, child_report = spawn.Event(), spawn.Event(), manager.dict()
            child = spawn.Process(target=_load_process, args=(load, workdir or temp.name, child_stop, child_ready,
                                                              child_report),
                                  daemon=True)
            child.start()
        else:
            more_nodes, threads, extra = build_load(context, load, Path(workdir or temp.name), stop)
            nodes += more_nodes
        ros_executor = _spin_all(context, nodes, threads, stop)
        if separate:
            if not child_ready.wait(120.0):
                raise RuntimeError("the load process did not start within 120 s")
            extra["episode_started"] = child_report.get("episode_started")
        else:
            _start_episode(extra)
        time.sleep(3.0)  # discovery, first state, first chunks, warm inference
        with executor_node._lock:
            executor_node.core.stats = LoopStats(executor_node.core.config.control_period, window=100_000)
        load_before = os.getloadavg()[0]
        time.sleep(seconds)
        with executor_node._lock:
            report = executor_node.core.report()
            state = executor_node.core.state.value
        keep = ("ticks", "rate_hz", "period_error_p50_ms", "period_error_p99_ms", "period_error_max_ms", "overruns",
                "underruns", "chunks_accepted", "chunks_rejected")
        result = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in report.as_dict().items() if k in keep}
        result.update(state=state, scheduling=executor_node.scheduling,
                      loadavg_1min=round(max(load_before, os.getloadavg()[0]), 2))
        if extra.get("episode_started") is not None:
            result["episode_recording"] = extra["episode_started"]
        if "flood_received" in extra:
            result["flood_images_received"] = extra["flood_received"][0]
        _stop_all(ros_executor, nodes, threads, stop, context)
        return result
    finally:
        stop.set()
        if child is not None:
            child_stop.set()
            child.join(timeout=15.0)
            if child.is_alive():
                child.kill()
            manager.shutdown()
        rclpy.try_shutdown(context=context)
        temp.cleanup()


RUNS = {
    # name: (timing, SCHED_FIFO priority, load, load in a separate process)
    "timer_deploy": ("timer", 0, ("deploy",), False),
    "thread_normal_deploy": ("thread", 0, ("deploy",), False),
    "thread_fifo_idle": ("thread", 50, (), False),
    "thread_fifo_deploy": ("thread", 50, ("deploy",), False),
    "thread_fifo_deploy_synthetic": ("thread", 50, ("deploy", "synthetic"), False),
    "timer_deploy_processes": ("timer", 0, ("deploy",), True),
    "thread_fifo_deploy_processes": ("thread", 50, ("deploy",), True),
    "thread_fifo_deploy_synthetic_processes": ("thread", 50, ("deploy", "synthetic"), True),
}


def bench_executor(args: argparse.Namespace) -> int:
    result: dict = {
        "size": {"h": H, "d": D},
        "python": sys.version.split()[0],
        "cpus": os.cpu_count(),
        "gil_switch_interval_ms": sys.getswitchinterval() * 1e3,
        "costs": measure_costs(args.ticks),
        "reference": "LeRobot ACTTemporalEnsembler, torch, 1 thread: 37.8 us p50 per tick (from REFERENCES.md, "
                     "not re-measured here)",
    }
    if not args.no_loop:
        result["loop"] = {
            "rate_hz": 100.0,
            "clock": "system time (use_sim_time false)",
            "loads": {
                "deploy": "the real policy node (ONNX Runtime, 10 Hz, fresh small model unless models/default exists) "
                          "and episode_logger (recording an episode) in the executor's process, fed 2 cameras "
                          "64x64 at 10 Hz and /joint_states at 100 Hz",
                "synthetic": "plus a pure-Python CPU-burning thread and a 320x240 rgb8 image flood (~200 Hz) with a "
                             "subscriber, in the same process",
                "idle": "only a chunk feeder (h=50 at 10 Hz) and /joint_states at 100 Hz",
                "processes": "runs named *_processes put the load in a second process (as ros2 launch does); "
                             "the others compose everything in the executor's process (as corft-ros deploy does)",
            },
            "machine_note": "shared machine: other processes' load shows in loadavg_1min",
            "runs": {},
        }
        import tempfile

        shared = tempfile.TemporaryDirectory(prefix="corft_bench_executor_")  # one exported model for all runs
        for name in args.runs:
            timing, priority, load, separate = RUNS[name]
            result["loop"]["runs"][name] = measure_loop(args.seconds, timing, priority, load, separate,
                                                        workdir=shared.name)
            if not args.json:
                print(name, result["loop"]["runs"][name], file=sys.stderr)
    print(json.dumps(result, indent=2))
    return 0
