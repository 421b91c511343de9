"""`corft-ros bag ls|info|repair`, `corft-ros record`, `corft-ros bench logger`."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def register(commands: argparse._SubParsersAction) -> None:
    bag = commands.add_parser("bag", help="list, inspect and repair recorded episodes")
    sub = bag.add_subparsers(dest="bag_command", required=True, metavar="BAG_COMMAND")
    ls = sub.add_parser("ls", help="list the episodes under a folder")
    ls.add_argument("root", nargs="?", default="episodes", help="episodes folder (default: ./episodes)")
    ls.add_argument("--json", action="store_true", help="print JSON")
    ls.set_defaults(func=cmd_bag_ls)
    info = sub.add_parser("info", help="metadata, durations, message counts per topic, drops of episodes")
    info.add_argument("paths", nargs="+", help="episode folders (or their bag folders)")
    info.add_argument("--json", action="store_true", help="print JSON")
    info.set_defaults(func=cmd_bag_info)
    repair = sub.add_parser("repair", help="rebuild a killed recording's MCAP index and metadata.yaml")
    repair.add_argument("paths", nargs="+", help="episode folders, or an episodes folder with --all")
    repair.add_argument("--all", action="store_true", help="repair every episode under the given folders")
    repair.add_argument("--force", action="store_true", help="rewrite even bags that look intact")
    repair.set_defaults(func=cmd_bag_repair)

    record = commands.add_parser("record", help="record demonstration episodes (teleop; unattended in sim)")
    record.add_argument("--episodes", type=int, default=10, help="number of episodes to record")
    record.add_argument("--task", default="", help="task instruction (stored in every episode)")
    record.add_argument("--output", default="", help="dataset folder (default: ./episodes/<task slug>); resumes")
    record.add_argument("--sim", action=argparse.BooleanOptionalAction, default=None,
                        help="use the bundled MuJoCo arm and the scripted operator (default when no robot is found)")
    record.add_argument("--source", choices=["keyboard", "leader", "joy", "scripted"], default="",
                        help="teleop source (default: scripted in sim, leader otherwise)")
    record.add_argument("--operator", default="", help="operator id stored in the metadata")
    record.add_argument("--max-seconds", type=float, default=60.0, help="end an episode after this long")
    record.add_argument("--seed", type=int, default=0, help="sim: first reset seed (episode i uses seed+i)")
    record.add_argument("--compression", choices=["none", "zstd"], default="none")
    record.add_argument("--cameras", default="", help="sim: comma-separated cameras to render (default front,wrist)")
    record.add_argument("--expert", action="store_true", help="sim: scripted operator at the expert's pace")
    record.add_argument("--config", default="", help="graph YAML (default: config/record.yaml)")
    record.add_argument("--realtime-factor", type=float, default=1.0, metavar="K",
                        help="sim: sim seconds per wall second (1 = real time; 0 = as fast as the graph allows); "
                             "episode lengths and --max-seconds are sim time")
    record.set_defaults(func=cmd_record)


def register_bench(benches: argparse._SubParsersAction) -> None:
    bench = benches.add_parser("logger", help="episode_logger throughput: drops at the nominal load, max rate")
    bench.add_argument("--seconds", type=float, default=60.0, help="duration of the nominal-load phase")
    bench.add_argument("--ramp-seconds", type=float, default=3.0, help="duration of each ramp step (0 = no ramp)")
    bench.add_argument("--width", type=int, default=640)
    bench.add_argument("--height", type=int, default=480)
    bench.add_argument("--compression", choices=["none", "zstd"], default="none")
    bench.add_argument("--js-depth", type=int, default=0,
                       help="/joint_states publisher history depth (default 0: SystemDefaultsQoS, as ros2_control's "
                            "joint_state_broadcaster publishes: reliable, keep-last, the middleware's default depth)")
    bench.add_argument("--runs", type=int, default=1, help="nominal-load runs (default 1)")
    bench.add_argument("--hog", type=int, default=0, metavar="K",
                       help="K busy processes on the same cores during the nominal runs (default 0)")
    bench.add_argument("--camera-qos", choices=["reliable", "best_effort"], default="reliable",
                       help="QoS the simulated cameras publish with (the logger adapts to it)")
    bench.add_argument("--output", default="", help="where bags go (default: a temporary folder, deleted)")
    bench.add_argument("--json", action="store_true", help="print JSON")
    bench.set_defaults(func=cmd_bench_logger)


# --------------------------------------------------------------------------- bag tools
def _fmt_duration(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:.1f}s"


def _info_dict(info) -> dict:
    return {
        "path": str(info.path),
        "episode_id": info.episode_id,
        "instruction": info.instruction,
        "label": info.label,
        "status": info.status,
        "operator": info.operator,
        "duration_s": info.duration_s,
        "messages": info.message_total,
        "dropped": info.dropped_total,
        "needs_repair": info.needs_repair,
        "error": info.error,
        "topics": {t: {"type": s.msgtype, "count": s.count, "dropped": s.dropped} for t, s in info.topics.items()},
    }


def cmd_bag_ls(args: argparse.Namespace) -> int:
    from corft_ros.core.episodes import EpisodeReadError, list_episodes

    try:
        infos = list_episodes(args.root)
    except EpisodeReadError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps([_info_dict(i) for i in infos], indent=2))
        return 0
    if not infos:
        print(f"no episodes under {args.root}")
        return 0
    print(f"{'episode':<48} {'label':<10} {'duration':>9} {'messages':>9} {'dropped':>8}  status")
    for i in infos:
        print(f"{i.path.name:<48} {i.label:<10} {_fmt_duration(i.duration_s):>9} {i.message_total:>9} "
              f"{i.dropped_total:>8}  {i.status}{'  ' + i.error if i.error else ''}")
    n_ok = sum(1 for i in infos if i.success)
    print(f"{len(infos)} episodes, {n_ok} successful, {sum(i.dropped_total for i in infos)} messages dropped")
    return 0


def cmd_bag_info(args: argparse.Namespace) -> int:
    from corft_ros.core.episodes import episode_info, load_episode_metadata

    rc = 0
    out = []
    for path in args.paths:
        if not Path(path).exists():
            print(f"error: {path} does not exist", file=sys.stderr)
            rc = 1
            continue
        info = episode_info(path)
        data = _info_dict(info)
        try:
            data["metadata"] = load_episode_metadata(path)
        except OSError as exc:
            data["metadata"] = None
            data["error"] = data["error"] or str(exc)
        out.append(data)
        if args.json:
            continue
        meta = data["metadata"] or {}
        print(f"episode:      {info.path}")
        print(f"instruction:  {info.instruction!r}")
        print(f"label:        {info.label}    status: {info.status}")
        print(f"operator:     {meta.get('operator', '')}  source: {meta.get('source', '')}  "
              f"robot: {meta.get('robot', '')}")
        print(f"duration:     {_fmt_duration(info.duration_s)}  cycle time: {meta.get('cycle_time_s')}")
        print(f"software:     corft_ros {meta.get('software_version', '?')}  "
              f"compression: {meta.get('compression', '?')}")
        if info.needs_repair:
            print("bag:          NOT CLOSED (writer killed?) - run `corft-ros bag repair` ")
        if info.error:
            print(f"error:        {info.error}")
        print(f"{'topic':<44} {'type':<38} {'count':>8} {'dropped':>8}")
        for topic, s in sorted(info.topics.items()):
            print(f"{topic:<44} {s.msgtype:<38} {s.count:>8} {s.dropped:>8}")
        print()
    if args.json:
        print(json.dumps(out, indent=2, default=str))
    return rc


def cmd_bag_repair(args: argparse.Namespace) -> int:
    from corft_ros.core.episodes import EpisodeReadError, list_episodes, repair_episode

    targets: list[Path] = []
    for path in args.paths:
        p = Path(path)
        if not p.exists():
            print(f"error: {p} does not exist", file=sys.stderr)
            return 1
        targets.extend([i.path for i in list_episodes(p)] if args.all else [p])
    rc = 0
    for target in targets:
        try:
            print(repair_episode(target, force=args.force).summary())
        except (EpisodeReadError, OSError, ValueError) as exc:
            print(f"error: {target}: {exc}", file=sys.stderr)
            rc = 1
    return rc


# --------------------------------------------------------------------------- record
def cmd_record(args: argparse.Namespace) -> int:
    return run_record(args)


RECORD_KEYS = "enter/space = end episode (then label), s = success, f = failure, d = discard & redo, q = quit"


def _robot_present(seconds: float = 2.0) -> bool:
    """True when something already publishes /joint_states (a real arm or another sim)."""
    import rclpy

    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        node = rclpy.create_node("record_probe", context=context)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if node.count_publishers("/joint_states"):
                return True
            time.sleep(0.1)
        return False
    finally:
        rclpy.try_shutdown(context=context)


class _Keys:
    """Single key presses from a terminal (cbreak mode); nothing when stdin is not a terminal."""

    def __init__(self) -> None:
        import queue
        import threading

        self.queue: queue.Queue[str] = queue.Queue()
        self.interactive = sys.stdin.isatty()
        self._stop = threading.Event()
        self._thread = None
        if self.interactive:
            self._thread = threading.Thread(target=self._run, daemon=True)
            self._thread.start()

    def _run(self) -> None:
        import select
        import termios
        import tty

        fd = sys.stdin.fileno()
        saved = termios.tcgetattr(fd)
        try:
            tty.setcbreak(fd)
            while not self._stop.is_set():
                if select.select([sys.stdin], [], [], 0.1)[0]:
                    self.queue.put(sys.stdin.read(1))
        finally:
            termios.tcsetattr(fd, termios.TCSADRAIN, saved)

    def get(self, timeout: float = 0.0) -> str | None:
        import queue

        try:
            return self.queue.get(timeout=timeout) if timeout else self.queue.get_nowait()
        except queue.Empty:
            return None

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=1.0)


def run_record(args: argparse.Namespace) -> int:
    import shutil

    from corft_ros.core.episodes import list_episodes, slugify
    from corft_ros.core.graph import load_graph
    from corft_ros.core.robot import ConfigError

    if args.episodes < 1:
        print("error: --episodes must be at least 1", file=sys.stderr)
        return 2
    sim = args.sim if args.sim is not None else not _robot_present()
    source = args.source or ("scripted" if sim else "leader")
    if source == "scripted" and not sim:
        print("error: --source scripted needs the sim (--sim)", file=sys.stderr)
        return 2
    out = Path(args.output or Path("episodes") / slugify(args.task or "demos")).expanduser()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        print(f"error: cannot create output folder {out}: {exc}", file=sys.stderr)
        return 1
    existing = list_episodes(out)
    broken = [i for i in existing if i.needs_repair]
    if broken:
        print(f"note: {len(broken)} episode(s) in {out} were not closed; `corft-ros bag repair --all {out}`")
    if len(existing) >= args.episodes:
        print(f"{out}: already holds {len(existing)} episodes (asked for {args.episodes}); nothing to record")
        return 0
    if existing:
        print(f"resuming {out}: {len(existing)} of {args.episodes} episodes already recorded")

    overrides = {
        "sim": str(sim).lower(), "source": source, "output_dir": str(out.resolve()), "operator": args.operator,
        "compression": args.compression, "seed": str(args.seed + len(existing)),
        "human_like": "false" if args.expert else "true", "realtime_factor": repr(float(args.realtime_factor)),
    }
    if args.task:
        overrides["task"] = args.task
    if args.cameras:
        overrides["cameras"] = args.cameras
    try:
        graph = load_graph(args.config or "record", overrides)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    logger_params = graph.node("episode_logger").parameters
    logger_params["source"] = "scripted" if source == "scripted" else "teleop"
    if sim and args.cameras:
        from corft_ros.core.topics import camera_image, canonical

        cams = {canonical(camera_image(c.strip())) for c in args.cameras.split(",")}
        logger_params["topics"] = [t for t in logger_params["topics"]
                                   if not canonical(t).startswith("/camera/") or canonical(t) in cams]
    task = args.task or str(logger_params.get("instruction", ""))
    return _record_loop(args, graph, sim, source, out, task, len(existing), shutil)


def _record_loop(args, graph, sim: bool, source: str, out: Path, task: str, done_before: int, shutil) -> int:
    import rclpy
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    from std_msgs.msg import Bool, String
    from std_srvs.srv import Trigger

    from corft_ros.core.robot import ConfigError
    from corft_ros.nodes.compose import ComposedGraph

    print(f"record: {'sim' if sim else 'robot'}, source {source}, task {task!r} -> {out}")
    try:
        composed = ComposedGraph(graph)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    logger = composed.nodes["episode_logger"]
    teleop = composed.nodes["teleop"]
    helper = rclpy.create_node("record_cli", context=composed.context)
    success = {"value": False}
    helper.create_subscription(Bool, "/sim/success", lambda m: success.__setitem__("value", bool(m.data)), 10)
    latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    helper.create_publisher(String, "/corft/instruction", latched).publish(String(data=task))
    reset = helper.create_client(Trigger, "/sim/reset")
    composed.executor.add_node(helper)
    keys = _Keys()
    if not sim and not keys.interactive:
        print(f"note: stdin is not a terminal: episodes end after --max-seconds ({args.max_seconds:g} s)")
    elif keys.interactive:
        print(f"keys: {RECORD_KEYS}")
    wanted = args.episodes - done_before
    kept = successes = 0
    index = done_before + 1
    rc = 0
    try:
        while kept < wanted:
            if sim:
                success["value"] = False
                if not reset.wait_for_service(timeout_sec=10.0):
                    raise RuntimeError("/sim/reset is not available")
                future = reset.call_async(Trigger.Request())
                deadline = time.monotonic() + 30
                while not future.done() and time.monotonic() < deadline:
                    time.sleep(0.02)
                if not future.done() or not future.result().success:
                    raise RuntimeError(f"/sim/reset failed: {future.result().message if future.done() else 'timeout'}")
                time.sleep(0.3)  # let the post-reset state reach every node
                success["value"] = False
            else:
                print(f"episode {index}/{args.episodes}: press enter to start (q = quit)", flush=True)
                key = None
                while keys.interactive and key not in ("\n", " ", "q"):
                    key = keys.get(0.2)
                if key == "q":
                    break
            ok, message = logger.start_episode()
            if not ok:
                raise RuntimeError(message)
            episode = logger.current_episode
            clock = logger.get_clock()  # sim time in the sim (any realtime_factor), wall time on a robot
            start = clock.now().nanoseconds * 1e-9
            outcome: str | None = None
            success_since = done_since = None
            while outcome is None:
                now = clock.now().nanoseconds * 1e-9
                elapsed = now - start
                stats = logger.writer_stats()
                if stats is None:  # the logger stopped on its own (disk full, write error): already logged
                    raise RuntimeError(f"recording of {episode} stopped: see the episode_logger error above")
                frames = sum(t.count for name, t in stats.topics.items() if name.startswith("/camera/"))
                print(f"\repisode {index}/{args.episodes}  {elapsed:5.1f}s  frames {frames:5d}  "
                      f"messages {stats.messages:6d}  drops {stats.dropped}   ", end="", flush=True)
                key = keys.get(0.1)
                if key in ("s", "f", "d", "q"):
                    outcome = {"s": "success", "f": "failure", "d": "discard", "q": "quit"}[key]
                elif key in ("\n", " "):
                    print(f"\nlabel episode {index}: s = success, f = failure, d = discard", flush=True)
                    while outcome is None:
                        key = keys.get(0.2)
                        outcome = {"s": "success", "f": "failure", "d": "discard"}.get(key or "")
                elif sim:
                    if success["value"]:
                        success_since = success_since or now
                        if now - success_since >= 0.5:  # the cube stays on the target
                            outcome = "success"
                    else:
                        success_since = None
                    if teleop.demo_done:
                        done_since = done_since or now
                        if now - done_since >= 3.0 and success_since is None:
                            outcome = "failure"
                if outcome is None and elapsed >= args.max_seconds:
                    outcome = "failure" if sim else "timeout"
            if outcome == "success":
                cycle = (success_since - start) if success_since is not None else None
                logger.label_episode(True, cycle_time_s=cycle)
            elif outcome == "failure":
                logger.label_episode(False)
            ok, summary = logger.stop_episode()
            if sim:
                # The teleop also hears "stop" over DDS, but on a loaded machine only after the next reset: until
                # then the rest of the demo would drive the reset arm back (one demo of 50 started 0.88 rad away).
                teleop.end_demo()
                time.sleep(0.2)  # commands already sent land before the reset
            print()
            if outcome == "discard":
                shutil.rmtree(episode, ignore_errors=True)
                print(f"episode {index}: discarded, recording it again")
                continue
            kept += 1
            successes += outcome == "success"
            print(f"episode {index}/{args.episodes}: {outcome}  ({summary})")
            index += 1
            if outcome == "quit":
                break
            if not ok:
                rc = 1
                break
    except RuntimeError as exc:
        print(f"\nerror: {exc}", file=sys.stderr)
        rc = 1
    except KeyboardInterrupt:
        print("\ninterrupted: stopping the current episode")
        rc = 130
    finally:
        if logger.current_episode is not None:
            logger.stop_episode()
        keys.close()
        composed.executor.remove_node(helper)
        helper.destroy_node()
        composed.shutdown()
    print(f"{kept} episodes recorded ({successes} successful) in {out}; dataset: {done_before + kept} episodes")
    return rc


# --------------------------------------------------------------------------- bench
def cmd_bench_logger(args: argparse.Namespace) -> int:
    if args.runs < 1 or args.hog < 0 or not args.seconds > 0:
        print("error: --runs must be >= 1, --hog >= 0 and --seconds positive", file=sys.stderr)
        return 2
    result = run_bench(args)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for key, value in result.items():
            print(f"{key}: {value}")
    return 0



# --------------------------------------------------------------------------- logger benchmark
_PUBLISHER = """
import json, sys, time
import rclpy
from rclpy.qos import qos_profile_sensor_data, qos_profile_system_default
from sensor_msgs.msg import Image, JointState
cfg = json.loads(sys.argv[1])
rclpy.init()
node = rclpy.create_node("bench_publisher")
pubs, msgs, periods = {}, {}, {}
w, h = cfg["width"], cfg["height"]
for topic, rate in cfg["rates"].items():
    if topic == "/joint_states":
        # depth 0: joint_state_broadcaster's rclcpp::SystemDefaultsQoS() (reliable, keep-last, middleware depth)
        js_qos = cfg["js_depth"] or qos_profile_system_default
        pubs[topic] = node.create_publisher(JointState, topic, js_qos)
        m = JointState(name=[f"j{i}" for i in range(7)], position=[0.0] * 7, velocity=[0.0] * 7, effort=[0.0] * 7)
    else:
        # usb_cam's default is reliable, depth 100; best_effort is SensorDataQoS.
        qos = 100 if cfg["image_qos"] == "reliable" else qos_profile_sensor_data
        pubs[topic] = node.create_publisher(Image, topic, qos)
        m = Image(height=h, width=w, encoding="rgb8", step=3 * w)
        m.data = bytes(range(256)) * (h * w * 3 // 256) + bytes(h * w * 3 % 256)
    msgs[topic] = m
    periods[topic] = 1.0 / rate if rate > 0 else 0.0
deadline = time.monotonic() + 20
while any(p.get_subscription_count() < cfg["subscribers"] for p in pubs.values()):
    if time.monotonic() > deadline:
        print(json.dumps({"error": "no subscriber"}), flush=True)
        sys.exit(1)
    time.sleep(0.01)
time.sleep(cfg["warmup"])
counts = {t: 0 for t in pubs}
failed = {t: 0 for t in pubs}
start = time.monotonic()
nxt = {t: start for t in pubs}
end = start + cfg["seconds"]
while True:
    now = time.monotonic()
    if now >= end:
        break
    topic = min(nxt, key=nxt.get)
    if nxt[topic] > now:
        time.sleep(min(nxt[topic] - now, end - now))
        continue
    m = msgs[topic]
    ns = time.time_ns()
    m.header.stamp.sec, m.header.stamp.nanosec = ns // 10**9, ns % 10**9
    try:
        pubs[topic].publish(m)
        counts[topic] += 1
    except Exception:  # a reliable writer whose history is full (reader too slow): a lost frame
        failed[topic] += 1
    # Fixed schedule (no drift); a flood (period 0) publishes back to back.
    nxt[topic] = max(nxt[topic] + periods[topic], now - 0.05) if periods[topic] else now
elapsed = time.monotonic() - start
print(json.dumps({"counts": counts, "failed": failed, "elapsed": elapsed}), flush=True)
time.sleep(3.0)  # stay up for reliable resends (a real camera or robot does not exit after its last frame)
"""


def _publish(
    rates: dict[str, float], seconds: float, width: int, height: int, subscribers: int = 1, image_qos: str = "reliable",
    warmup: float = 1.5, js_depth: int = 0,
) -> dict:
    """Publish each topic from its own process (its own DDS participant), as the real drivers do: each camera
    driver and ros2_control's joint_state_broadcaster run apart and do not share a transport."""
    import subprocess

    procs = {}
    for topic, rate in rates.items():
        cfg = {"rates": {topic: rate}, "seconds": seconds, "width": width, "height": height,
               "subscribers": subscribers, "image_qos": image_qos, "warmup": warmup, "js_depth": js_depth}
        procs[topic] = subprocess.Popen([sys.executable, "-c", _PUBLISHER, json.dumps(cfg)], stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True)
    result: dict = {"counts": {}, "failed": {}, "elapsed": 0.0}
    problems = []
    for topic, proc in procs.items():
        try:
            stdout, stderr = proc.communicate(timeout=seconds + 60)
        except subprocess.TimeoutExpired:
            proc.kill()
            stdout, stderr = proc.communicate()
        lines = [x for x in stdout.splitlines() if x.startswith("{")]
        if not lines:
            problems.append(f"{topic}: {stderr.strip()[-300:]}")
            continue
        one = json.loads(lines[-1])
        if "error" in one:
            problems.append(f"{topic}: {one['error']}")
            continue
        result["counts"].update(one["counts"])
        result["failed"].update(one["failed"])
        result["elapsed"] = max(result["elapsed"], one["elapsed"])
    if problems:
        raise RuntimeError("bench publisher failed: " + "; ".join(problems))
    return result


def run_bench(args: argparse.Namespace) -> dict:
    import os
    import random
    import shutil
    import struct
    import subprocess
    import tempfile
    import threading

    import numpy as np

    # Isolated DDS domain on loopback, shared with the publisher subprocesses through the environment.
    os.environ["ROS_DOMAIN_ID"] = str(random.SystemRandom().randint(150, 230))
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    import rclpy
    from rclpy.parameter import Parameter
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image

    from corft_ros.nodes._common import make_executor
    from corft_ros.nodes.episode_logger import SENSOR_RELIABLE_QOS, EpisodeLoggerNode

    cams = ["/camera/front/image_raw", "/camera/wrist/image_raw"]
    w, h = args.width, args.height
    image_bytes = w * h * 3
    out_root = Path(args.output) if args.output else Path(tempfile.mkdtemp(prefix="corft_bench_logger_"))
    out_root.mkdir(parents=True, exist_ok=True)
    context = rclpy.Context()
    rclpy.init(context=context)
    result: dict = {
        "bench": "logger", "image": f"{w}x{h} rgb8", "compression": args.compression, "cpu_count": os.cpu_count(),
        "joint_states_publisher_qos": (f"reliable, keep-last {args.js_depth}" if args.js_depth else
                                       "SystemDefaultsQoS (joint_state_broadcaster's)"),
        "camera_qos": "reliable, depth 100 (usb_cam's default)" if args.camera_qos == "reliable" else "SensorDataQoS",
    }

    def spin(executor, stop: threading.Event) -> None:
        from corft_ros.nodes._common import spin as spin_until

        spin_until(executor, context, stop)

    latencies: dict[str, list[int]] = {}

    class TimedLogger(EpisodeLoggerNode):
        """The logger as it runs, plus each message's receive latency: the time its callback ran minus the header
        stamp the publisher set just before publishing (one machine, one wall clock)."""

        def _enqueue(self, topic: str, data: bytes) -> None:
            now = time.time_ns()
            sec, nanosec = struct.unpack_from("<iI", data, 4)  # CDR: 4-byte encapsulation, then header.stamp
            latencies.setdefault(topic, []).append(now - (sec * 1_000_000_000 + nanosec))
            super()._enqueue(topic, data)

    def with_logger(topics: list[str], rates: dict[str, float], seconds: float) -> dict:
        latencies.clear()
        node = TimedLogger(context=context, parameter_overrides=[
            Parameter("output_dir", value=str(out_root)), Parameter("topics", value=topics),
            Parameter("compression", value=args.compression), Parameter("min_free_bytes", value=1 << 30),
            Parameter("instruction", value="bench logger"),
        ])
        executor = make_executor(context, threads=1)  # as episode_logger's main()
        executor.add_node(node)
        stop = threading.Event()
        thread = threading.Thread(target=spin, args=(executor, stop), daemon=True)
        thread.start()
        try:
            ok, message = node.start_episode()
            if not ok:
                raise RuntimeError(message)
            pub = _publish(rates, seconds, w, h, image_qos=args.camera_qos, js_depth=args.js_depth)
            # Let DDS deliver what is in flight (a reliable resend can wait for the next heartbeat, ~3 s).
            deadline = time.monotonic() + 6
            while time.monotonic() < deadline:
                s = node._writer.stats()  # noqa: SLF001
                counts = {t: v.count + v.dropped for t, v in s.topics.items()}
                if all(counts.get(t, 0) >= n for t, n in pub["counts"].items()):
                    break
                time.sleep(0.1)
            ep = node._writer.episode_dir  # noqa: SLF001
            ok, message = node.stop_episode()
            from corft_ros.core.episodes import load_episode_metadata

            meta = load_episode_metadata(ep)
        finally:
            stop.set()
            thread.join()
            executor.remove_node(node)
            node.destroy_node()
            executor.shutdown()
        topics_meta = meta["topics"]
        per_topic = {t: {"published": n + pub["failed"][t], "recorded": topics_meta.get(t, {}).get("count", 0),
                         "publish_failed": pub["failed"][t], "queue_dropped": topics_meta.get(t, {}).get("dropped", 0)}
                     for t, n in pub["counts"].items()}
        shutil.rmtree(ep, ignore_errors=True)
        for topic, values in latencies.items():
            if topic in per_topic and values:
                ms = np.asarray(values, dtype=np.float64) / 1e6
                per_topic[topic]["receive_latency_ms"] = {
                    "p50": round(float(np.percentile(ms, 50)), 2), "p99": round(float(np.percentile(ms, 99)), 2),
                    "max": round(float(ms.max()), 2)}
        return {"elapsed": pub["elapsed"], "topics": per_topic}

    def bare(topic: str, seconds: float, rate: float) -> dict:
        """A bare raw subscriber (count only) under one camera publisher at `rate` (0 = flood)."""
        node = rclpy.create_node("bench_bare_subscriber", context=context)
        count = [0]

        def cb(data: bytes) -> None:
            count[0] += 1

        qos = SENSOR_RELIABLE_QOS if args.camera_qos == "reliable" else qos_profile_sensor_data
        node.create_subscription(Image, topic, cb, qos, raw=True)
        executor = make_executor(context, threads=1)
        executor.add_node(node)
        stop = threading.Event()
        thread = threading.Thread(target=spin, args=(executor, stop), daemon=True)
        thread.start()
        try:
            pub = _publish({topic: rate}, seconds, w, h, image_qos=args.camera_qos)
            deadline = time.monotonic() + (0.5 if rate == 0 else 6.0)
            while count[0] < pub["counts"][topic] and time.monotonic() < deadline:
                time.sleep(0.1)
        finally:
            stop.set()
            thread.join()
            executor.remove_node(node)
            node.destroy_node()
            executor.shutdown()
        return {"published": pub["counts"][topic] + pub["failed"][topic], "received": count[0],
                "elapsed": pub["elapsed"]}

    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.hog)]
    try:
        # 1. Nominal load: 2 cameras x 30 fps + /joint_states at 500 Hz, --runs times (--hog busy processes beside).
        runs = []
        for run in range(args.runs):
            nominal = with_logger(cams + ["/joint_states"], {cams[0]: 30.0, cams[1]: 30.0, "/joint_states": 500.0},
                                  args.seconds)
            t = nominal["topics"]
            runs.append({
                "run": run + 1,
                "seconds": round(nominal["elapsed"], 2),
                "published": sum(v["published"] for v in t.values()),
                "recorded": sum(v["recorded"] for v in t.values()),
                "dropped": sum(v["published"] - v["recorded"] for v in t.values()),
                "queue_dropped": sum(v["queue_dropped"] for v in t.values()),
                "topics": t,
            })
            if not args.json:
                print(f"nominal run {run + 1}/{args.runs}: {runs[-1]['dropped']} of {runs[-1]['published']} lost "
                      + ", ".join(f"{k} {v['published'] - v['recorded']}" for k, v in t.items()), flush=True)
        result["nominal"] = {"runs": args.runs, "hog": args.hog,
                             "dropped": sum(r["dropped"] for r in runs),
                             "runs_with_loss": sum(r["dropped"] > 0 for r in runs), "per_run": runs}
        for hog in hogs:
            hog.kill()
        if args.ramp_seconds <= 0:
            return result
        # 2. Reference: a bare raw subscriber under a publisher flooding one camera topic.
        flood = bare(cams[0], args.ramp_seconds, 0.0)
        flood_rate = flood["received"] / flood["elapsed"]
        result["bare_subscriber_flood"] = {
            "received_per_s": round(flood_rate, 1),
            "mb_per_s": round(flood_rate * image_bytes / 1e6, 1),
            "published_per_s": round(flood["published"] / flood["elapsed"], 1),
        }
        # 3. The same paced rates through a bare raw subscriber and through the logger, rate by rate
        # (x1.15 per step): each one's highest rate with nothing lost. Paced, not flooded, because a flooding
        # publisher takes a whole core from the subscriber it measures.
        steps = []
        best = {"bare": 0.0, "logger": 0.0}
        alive = {"bare": True, "logger": True}
        rate = 60.0
        while any(alive.values()) and rate <= 5000:
            step: dict = {"target_per_s": round(rate, 1)}
            for who in ("bare", "logger"):
                if not alive[who]:
                    continue
                if who == "bare":
                    r = bare(cams[0], args.ramp_seconds, rate)
                    lost, achieved = r["published"] - r["received"], r["published"] / r["elapsed"]
                else:
                    out = with_logger([cams[0]], {cams[0]: rate}, args.ramp_seconds)
                    r = out["topics"][cams[0]]
                    lost, achieved = r["published"] - r["recorded"], r["published"] / out["elapsed"]
                step[who] = {"published_per_s": round(achieved, 1), "lost": lost}
                if lost == 0:
                    best[who] = max(best[who], achieved)
                else:
                    alive[who] = False
            steps.append(step)
            rate *= 1.15
        result["ramp"] = steps
        result["bare_max_zero_drop_images_per_s"] = round(best["bare"], 1)
        result["max_zero_drop_images_per_s"] = round(best["logger"], 1)
        result["max_zero_drop_mb_per_s"] = round(best["logger"] * image_bytes / 1e6, 1)
        result["ratio_to_bare_subscriber"] = round(best["logger"] / best["bare"], 3) if best["bare"] else None
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
        rclpy.shutdown(context=context)
        if not args.output:
            shutil.rmtree(out_root, ignore_errors=True)
    return result
