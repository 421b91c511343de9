"""The load of `corft-ros measure executor`'s control-loop runs: the real policy node (with models/default or a
fresh stand-in model) and episode logger fed cameras and /joint_states as a robot would, or a chunk feeder alone,
plus an optional synthetic load (a CPU-burning thread, an image flood); built in the executor's process or in a
child process of its own, spun and stopped."""

from __future__ import annotations

import threading
import time

from corft_ros.measure._executor_costs import H


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

