"""`corft-ros measure executor`: per-tick cost of blending (+ safety) for every mode, and the control loop's
period error at the robot rate while other work loads the process."""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time

H, D = 50, 7  # the reference size: chunk horizon 50, 7 joints


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


def _percentiles(samples_ns: list[int]) -> dict[str, float]:
    import numpy as np

    us = np.asarray(samples_ns, dtype=np.float64) / 1e3
    return {"p50_us": round(float(np.percentile(us, 50)), 3), "p99_us": round(float(np.percentile(us, 99)), 3)}


def _chunk_stream(robot, n: int, dt: float, every: int, period: float, seed: int = 0):
    """(tick index, Chunk or None) for n ticks: a smooth random walk near home, a new chunk every `every` ticks,
    stamped 3.1 ms before its tick (inference latency), so chunks never line up with the grid."""
    import numpy as np

    from corft_ros.core.chunking import Chunk

    rng = np.random.default_rng(seed)
    home = robot.home_array
    t0 = 1_700_000_000.0
    offsets = np.cumsum(rng.normal(0.0, 0.002, size=(n // every + 2, D)), axis=0)
    ramp = np.linspace(0.0, 1.0, H)[:, None]
    stream = []
    for i in range(n):
        now = t0 + i * period
        chunk = None
        if i % every == 0:
            target = home + offsets[i // every] + 0.05 * ramp * rng.normal(0.0, 1.0, D)
            stamp = now - 0.0031
            chunk = Chunk(stamp=stamp, dt=dt, positions=target, start=stamp)
        stream.append((now, chunk))
    return stream


def measure_costs(ticks: int) -> dict:
    from corft_ros.core.chunking import MODES, ChunkExecutor, ExecutorConfig, make_chunk
    from corft_ros.core.robot import load_robot_config

    robot = load_robot_config()
    period = robot.control_dt
    scenarios = {
        # ACT-style (what LeRobot's ACTTemporalEnsembler measures): a new chunk every tick, dt = control period
        "chunk_every_tick": dict(dt=period, every=1),
        # this robot's rates: dt = 1 / action_rate_hz, a chunk every 100 ms (10 Hz inference)
        "robot_rates": dict(dt=robot.action_dt, every=round(0.1 / period)),
    }
    out: dict = {}
    warmup = min(500, ticks // 5)
    for scenario, spec in scenarios.items():
        stream = _chunk_stream(robot, ticks, spec["dt"], spec["every"], period)
        rows: dict = {}
        for mode in MODES:
            timings: dict[str, list[int]] = {"blend": [], "blend_safety": [], "tick": [], "submit": []}
            for what in ("blend", "blend_safety", "tick"):
                core = ChunkExecutor(robot, ExecutorConfig(control_period=period, mode=mode, k=10))
                core.measured(robot.home)
                blender, safety = core.blender, core.safety
                clock = time.perf_counter_ns
                for i, (now, chunk) in enumerate(stream):
                    slot = core.grid.slot_of(now)
                    core.buffer.prune(slot)
                    if chunk is not None:
                        a = clock()
                        core.submit(chunk, now)
                        b = clock()
                        if what == "tick" and i >= warmup:
                            timings["submit"].append(b - a)
                    if what == "blend":
                        a = clock()
                        blender.action(slot)
                        b = clock()
                    elif what == "blend_safety":
                        a = clock()
                        found = blender.action(slot)
                        if found is not None:
                            safety.apply(found[0].tolist())
                        b = clock()
                    else:
                        a = clock()
                        core.tick(slot, now)
                        b = clock()
                    if i >= warmup:
                        timings[what].append(b - a)
            rows[mode] = {name: _percentiles(samples) for name, samples in timings.items()}
        out[scenario] = {"chunk_dt_s": spec["dt"], "chunk_every_ticks": spec["every"], "modes": rows}

    # what the node pays per message before submit: validation + name mapping from message-shaped lists
    chunk = _chunk_stream(robot, 1, robot.action_dt, 1, period)[0][1]
    names, times = robot.joint_names, [i * robot.action_dt for i in range(H)]
    lists = chunk.positions.tolist()
    samples = []
    for _ in range(2000):
        a = time.perf_counter_ns()
        make_chunk(robot, chunk.stamp, names, times, lists)
        samples.append(time.perf_counter_ns() - a)
    out["validate_chunk_message"] = _percentiles(samples[200:])
    return out


def _burn(stop: threading.Event) -> None:
    """Pure-Python CPU load: holds the GIL in short slices, as a busy in-process Python node would."""
    while not stop.is_set():
        sum(i * i for i in range(2000))


def _bench_model(workdir) -> str:
    """models/default when present; otherwise a freshly initialised small policy exported to `workdir` (once)."""
    from corft_ros.core.paths import models_dir
    from corft_ros.core.policy.model_files import META_FILE

    default = models_dir() / "default"
    if (default / META_FILE).is_file():
        return str(default)
    if (workdir / "bench_policy" / META_FILE).is_file():
        return str(workdir / "bench_policy")
    import numpy as np

    from corft_ros.core.policy.export import export_policy
    from corft_ros.core.policy.fresh import init_policy

    model = init_policy()
    embedding = np.random.default_rng(0).standard_normal(384).astype(np.float32)
    table = {BENCH_INSTRUCTION: embedding / np.linalg.norm(embedding)}
    return str(export_policy(model, workdir / "bench_policy", table))


BENCH_INSTRUCTION = "pick up the cube"


def build_load(context, load: tuple[str, ...], workdir, stop: threading.Event) -> tuple[list, list, dict]:
    """The nodes and threads that load a run (see measure_loop); returns (nodes, threads, extra)."""
    from rclpy.node import Node
    from sensor_msgs.msg import JointState

    from corft_ros.core import topics
    from corft_ros.core.robot import load_robot_config

    robot = load_robot_config()
    home = robot.home_array
    feeder = Node("bench_feeder", context=context)
    js_pub = feeder.create_publisher(JointState, topics.JOINT_STATES, 10)

    def publish_state() -> None:  # a robot's joint_state_broadcaster
        msg = JointState(name=robot.joint_names, position=home.tolist())
        msg.header.stamp = feeder.get_clock().now().to_msg()
        js_pub.publish(msg)

    feeder.create_timer(0.01, publish_state)
    nodes: list = [feeder]
    threads: list[threading.Thread] = []
    extra: dict = {}
    if "deploy" in load:
        nodes += _deploy_load(context, feeder, workdir, extra)
    else:
        _feed_chunks(feeder, robot)
    if "synthetic" in load:
        nodes.append(_synthetic_load(context, stop, threads, extra))
    return nodes, threads, extra


def _deploy_load(context, feeder, workdir, extra: dict) -> list:
    """The real policy node and episode logger, fed the instruction and 2 cameras (64x64 at 10 Hz) by `feeder`;
    the logger's episode-start client goes into `extra`. Returns the two nodes."""
    import numpy as np
    from rclpy.parameter import Parameter
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image
    from std_msgs.msg import String
    from std_srvs.srv import Trigger

    from corft_ros.core import topics
    from corft_ros.nodes.episode_logger import EpisodeLoggerNode
    from corft_ros.nodes.policy import PolicyNode
    from corft_ros.nodes.qos import LATCHED

    policy = PolicyNode(context=context, parameter_overrides=[
        Parameter("model_path", value=_bench_model(workdir)), Parameter("rate_hz", value=10.0),
        Parameter("instruction", value=BENCH_INSTRUCTION), Parameter("threads", value=1)])
    (workdir / "episodes").mkdir(exist_ok=True)
    logger = EpisodeLoggerNode(context=context, parameter_overrides=[
        Parameter("output_dir", value=str(workdir / "episodes"))])
    instruction_pub = feeder.create_publisher(String, topics.INSTRUCTION, LATCHED)
    instruction_pub.publish(String(data=BENCH_INSTRUCTION))
    camera_pubs = [feeder.create_publisher(Image, topics.camera_image(name), qos_profile_sensor_data)
                   for name in policy.cameras]
    pixels = np.random.default_rng(0).integers(0, 255, size=(64, 64, 3), dtype=np.uint8).tobytes()

    def publish_cameras() -> None:
        stamp = feeder.get_clock().now().to_msg()
        for pub in camera_pubs:
            msg = Image(height=64, width=64, encoding="rgb8", step=192, data=pixels)
            msg.header.stamp = stamp
            pub.publish(msg)

    feeder.create_timer(0.1, publish_cameras)
    extra["episode_client"] = feeder.create_client(Trigger, topics.EPISODE_START)
    return [policy, logger]


def _feed_chunks(feeder, robot) -> None:
    """Without the policy: `feeder` publishes a chunk (h=50, a slow sine around home) at 10 Hz."""
    import numpy as np
    from builtin_interfaces.msg import Duration
    from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

    from corft_ros.core import topics
    from corft_ros.nodes.qos import RELIABLE

    home = robot.home_array
    chunk_pub = feeder.create_publisher(JointTrajectory, topics.ACTION_CHUNK, RELIABLE)

    def publish_chunk() -> None:
        now = feeder.get_clock().now()
        t = now.nanoseconds * 1e-9
        msg = JointTrajectory()
        msg.header.stamp = now.to_msg()
        msg.joint_names = robot.joint_names
        for i in range(H):
            ns = round(i * robot.action_dt * 1e9)
            msg.points.append(JointTrajectoryPoint(
                positions=(home + 0.2 * np.sin(0.5 * (t + i * robot.action_dt))).tolist(),
                time_from_start=Duration(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)))
        chunk_pub.publish(msg)

    feeder.create_timer(0.1, publish_chunk)


def _synthetic_load(context, stop: threading.Event, threads: list[threading.Thread], extra: dict):
    """A 320x240 image flood (~200 Hz) with a subscriber counting into extra["flood_received"], and a CPU-burning
    thread; both threads are appended to `threads` (started later). Returns the flood's node."""
    from rclpy.node import Node
    from sensor_msgs.msg import Image

    flood = Node("bench_flood", context=context)
    image_pub = flood.create_publisher(Image, "/bench/flood", 10)
    received = [0]
    flood.create_subscription(Image, "/bench/flood", lambda _m: received.__setitem__(0, received[0] + 1), 10)
    frame = Image(height=240, width=320, encoding="rgb8", step=960, data=bytes(320 * 240 * 3))

    def flood_loop() -> None:
        while not stop.is_set():
            image_pub.publish(frame)
            time.sleep(0.005)

    threads += [threading.Thread(target=flood_loop, daemon=True),
                threading.Thread(target=_burn, args=(stop,), daemon=True)]
    extra["flood_received"] = received
    return flood


def _start_episode(extra: dict) -> None:
    client = extra.get("episode_client")
    if client is None:
        return
    from std_srvs.srv import Trigger

    extra["episode_started"] = False
    if client.wait_for_service(timeout_sec=10.0):
        future = client.call_async(Trigger.Request())
        deadline = time.monotonic() + 10.0
        while not future.done() and time.monotonic() < deadline:
            time.sleep(0.02)
        extra["episode_started"] = bool(future.done() and future.result().success)


def _spin_all(context, nodes: list, threads: list[threading.Thread], stop: threading.Event):
    from corft_ros.nodes.common import make_executor, spin

    ros_executor = make_executor(context, threads=6)
    for node in nodes:
        ros_executor.add_node(node)
    threads.append(threading.Thread(target=spin, args=(ros_executor, context, stop), daemon=True))
    for thread in threads:
        thread.start()
    return ros_executor


def _stop_all(ros_executor, nodes: list, threads: list[threading.Thread], stop: threading.Event, context) -> None:
    import rclpy

    stop.set()
    ros_executor.shutdown(timeout_sec=2.0)
    for node in nodes:
        close = getattr(node, "close", None)
        if close is not None:
            close()
    rclpy.try_shutdown(context=context)
    for thread in threads:
        thread.join(timeout=2.0)


def _load_process(load: tuple[str, ...], workdir: str, stop, ready, report) -> None:
    """Child process: the load graph in its own process, as `ros2 launch` runs one process per node."""
    from pathlib import Path

    import rclpy

    context = rclpy.Context()
    rclpy.init(context=context)
    local_stop = threading.Event()
    nodes, threads, extra = build_load(context, load, Path(workdir), local_stop)
    ros_executor = _spin_all(context, nodes, threads, local_stop)
    _start_episode(extra)
    report["episode_started"] = extra.get("episode_started")
    ready.set()
    stop.wait()
    _stop_all(ros_executor, nodes, threads, local_stop, context)


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
