"""policy: VLA chunk inference. Latest image per camera + joint state + instruction → corft/action_chunk.

Callbacks only store the newest messages; a dedicated thread runs inference at `rate_hz` (never inside an executor
callback, so a slow model never delays message handling). Images arrive raw (sensor_msgs/Image on
camera/<name>/image_raw) or, with `image_transport: compressed`, as JPEG/PNG sensor_msgs/CompressedImage on
camera/<name>/image_raw/compressed (a policy on another machine): either way they are converted/decoded lazily in
the inference thread, only the frames inference uses, once each. /joint_states may be split over several publishers
(arm driver + gripper driver): the latest value per joint is kept (JointStateCache) and a joint older than
`max_observation_age` counts as missing. Each chunk is a trajectory_msgs/JointTrajectory: header.stamp = the NEWEST
stamp among the inputs it used (the camera images and the joints' stamps), points[i] = absolute joint targets for
header.stamp + i·dt, time_from_start = i·dt. The observation age on /diagnostics is measured from the OLDEST input it
used (the worst case). Topic names are relative (they resolve in the node's namespace); /diagnostics is absolute.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass

import numpy as np
from builtin_interfaces.msg import Duration, Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rclpy.clock import ClockType
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import CompressedImage, Image, JointState
from std_msgs.msg import Float64MultiArray, MultiArrayDimension, MultiArrayLayout, String
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from corft_ros.core import topics
from corft_ros.core.images import ImageError, message_rgb
from corft_ros.core.joint_states import JointStateCache, JointStateError
from corft_ros.core.node_params.policy import PolicyParams
from corft_ros.core.policy.inputs import input_problem
from corft_ros.core.policy.loading import check_node_settings, load_checked_runtime
from corft_ros.core.policy.rate import wait_for_step
from corft_ros.core.policy.runtime import SELECTION_FIELDS, NonFiniteOutputError
from corft_ros.core.policy.text import InstructionError, clean_instruction
from corft_ros.core.robot import load_robot_config
from corft_ros.nodes.common import ClosesOnDestroy, declare_params, diagnostic_status, run_node, stamp_to_sec
from corft_ros.nodes.qos import LATCHED, RECORDED, RELIABLE


@dataclass
class _Stamped:
    value: object
    stamp: Time


SELECTION_LAYOUT = MultiArrayLayout(dim=[MultiArrayDimension(label=",".join(SELECTION_FIELDS),
                                                             size=len(SELECTION_FIELDS), stride=len(SELECTION_FIELDS))])


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


class PolicyNode(ClosesOnDestroy, Node):
    def __init__(self, **kwargs) -> None:
        super().__init__("policy", **kwargs)
        p = self.params = declare_params(self, PolicyParams)
        self.robot = load_robot_config(p.robot_config or None)
        self._read_params(p)
        self._load_model(p)
        self._init_state(p)
        self._make_subscriptions(p)
        self._make_publishers(p)
        self.create_timer(1.0, self._publish_diagnostics)
        self._start_inference()

    def _read_params(self, p: PolicyParams) -> None:
        """The node's settings from the parameters, checked (the model's come with it: _load_model)."""
        self.backend, self.rate_hz, self.best_of_n = p.backend, p.rate_hz, p.best_of_n
        self.max_age = p.max_observation_age
        self.camera_topic_format, self.image_transport = p.camera_topic_format, p.image_transport
        check_node_settings(p.noise_std, p.selection_beta, self.camera_topic_format)

    def _load_model(self, p: PolicyParams) -> None:
        """The policy runtime (default: models/default), checked against the robot's joints and the cameras
        (core/policy/loading.py)."""
        self.model_path, self.runtime = load_checked_runtime(p, self.robot, self.backend, self.best_of_n, self.rate_hz)
        self.best_of_n = self.runtime.best_of_n
        self.joint_names = self.runtime.joint_names
        self.cameras = self.runtime.camera_names
        self.chunk_size, self.dt = self.runtime.chunk_size, self.runtime.action_dt

    def _init_state(self, p: PolicyParams) -> None:
        """The latest inputs, counters and statistics, the warmed-up model and the initial instruction embedded."""
        self._lock = threading.Lock()
        self._images: dict[str, _Stamped] = {}
        self._joints = JointStateCache(self.joint_names, self.max_age)
        self._joint_stamps: dict[str, Time] = {}  # per joint: the exact header stamp of its latest value
        self._tracked_joints = frozenset(self.joint_names)
        self.missing_joints: list[str] = []
        self._instruction: str | None = None
        if p.instruction.strip():
            self._instruction = clean_instruction(p.instruction)
        # camera → (msg, rgb or the ImageError it gave): the msg reference is kept so identity, not a reusable id(),
        # marks the cache as valid; a frame is converted (or found bad, and counted) once
        self._converted: dict[str, tuple[Image | CompressedImage, np.ndarray | ImageError]] = {}
        self.counters = {
            "inferences": 0, "chunks_published": 0, "nonfinite_outputs": 0, "rejected_images": 0, "resized_images": 0,
            "joint_state_errors": 0, "instruction_errors": 0, "skipped_missing_input": 0, "overruns": 0,
            "unchanged_inputs": 0, "decoded_images": 0,
        }
        self.decode_times: deque[float] = deque(maxlen=200)
        self._last_chunk_stamp: float | None = None  # newest input stamp of the last published chunk
        self.missing_camera: dict[str, int] = dict.fromkeys(self.cameras, 0)
        self.latencies: deque[float] = deque(maxlen=500)
        self.ages: deque[float] = deque(maxlen=500)
        self.cold_start_s: float | None = None
        self.warmup_s = self.runtime.warmup()
        if self._instruction is not None:
            # An instruction the model was not trained on is embedded now, not at the first inference: loading the
            # sentence encoder takes seconds (13 s measured on 2 busy cores), during which no chunk would come.
            try:
                self.runtime.instructions.add([self._instruction])
            except InstructionError as exc:
                self.get_logger().error(str(exc))
        self.problem = ""  # the last thing that kept a chunk from being published ('' = none)
        # the last rejected /joint_states and instruction messages, with when (monotonic s)
        self.input_errors: dict[str, tuple[str, float]] = {}
        self.problem_level = DiagnosticStatus.OK

    def _make_subscriptions(self, p: PolicyParams) -> None:
        """One image subscription per camera (raw or compressed), joint states and the instruction."""
        self.camera_topics: dict[str, str] = {}  # camera → resolved topic name (for messages and diagnostics)
        image_type = CompressedImage if self.image_transport == "compressed" else Image
        for name in self.cameras:
            topic = self.camera_topic_format.format(name=name)
            if self.image_transport == "compressed":
                topic = topics.compressed(topic)
            sub = self.create_subscription(image_type, topic, lambda msg, n=name: self._on_image(n, msg),
                                           qos_profile_sensor_data)
            self.camera_topics[name] = sub.topic_name
        self.joint_topic = self.create_subscription(JointState, p.joint_states_topic, self._on_joints,
                                                    RELIABLE).topic_name
        self.instruction_topic = self.create_subscription(
            String, p.instruction_topic, self._on_instruction, LATCHED).topic_name

    def _make_publishers(self, p: PolicyParams) -> None:
        """The chunk, selection and diagnostics publishers."""
        self.chunk_pub = self.create_publisher(JointTrajectory, p.chunk_topic, RECORDED)
        self.selection_pub = self.create_publisher(Float64MultiArray, p.selection_topic, RECORDED)
        self.diag_pub = self.create_publisher(DiagnosticArray, topics.DIAGNOSTICS, RELIABLE)

    def _start_inference(self) -> None:
        """The inference thread, and the startup line."""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="policy-inference", daemon=True)
        self._thread.start()
        self.get_logger().info(
            f"policy {self.model_path} ({self.backend}, {self._providers()}) cameras {self.cameras} "
            f"({self.image_transport}), "
            f"h={self.chunk_size} dt={self.dt:g}s at {self.rate_hz:g} Hz, best_of_n={self.best_of_n}"
        )

    # ------------------------------------------------------------------ callbacks: store only
    def _on_image(self, camera: str, msg: Image | CompressedImage) -> None:
        with self._lock:
            self._images[camera] = _Stamped(msg, msg.header.stamp)

    def _on_joints(self, msg: JointState) -> None:
        """Store the model's joints this message has (a split /joint_states gives some of them per publisher)."""
        stamp = msg.header.stamp
        if stamp.sec == 0 and stamp.nanosec == 0:  # a driver that leaves the header empty: receive time
            stamp = self.get_clock().now().to_msg()
        try:
            with self._lock:
                if self._joints.update(msg.name, msg.position, stamp_to_sec(stamp)):
                    for name in msg.name:
                        if name in self._tracked_joints:
                            self._joint_stamps[name] = stamp
        except JointStateError as exc:
            self._joint_error(f"{self.joint_topic}: {exc}")

    def _joint_error(self, text: str) -> None:
        with self._lock:
            self.counters["joint_state_errors"] += 1
            self.input_errors["joints"] = (text, time.monotonic())
        self.get_logger().error(text, throttle_duration_sec=2.0)

    def _on_instruction(self, msg: String) -> None:
        try:
            text = clean_instruction(msg.data)
        except InstructionError:
            text = f"empty instruction on {self.instruction_topic} ignored"
            with self._lock:
                self.counters["instruction_errors"] += 1
                self.input_errors["instruction"] = (text, time.monotonic())
            self.get_logger().error(text)
            return
        with self._lock:
            self._instruction = text
        self.get_logger().info(f"instruction: '{text}'")

    # ------------------------------------------------------------------ inference thread
    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _loop(self) -> None:
        """Inference at rate_hz on the node's clock: sim time under use_sim_time (the sim at any realtime_factor
        gets rate_hz chunks per sim second, as on a real arm per wall second), wall time otherwise."""
        period = 1.0 / self.rate_hz
        next_time = self._now()
        while not self._stop.is_set():
            next_time = wait_for_step(next_time + period, period, self._now, self._stop.wait,
                                      lambda: self._sim_time, self._count_overrun)
            if next_time is None:
                return
            try:
                self.step()
            except Exception as exc:  # keep running: one bad step must not kill inference
                self._set_problem(f"inference step failed: {type(exc).__name__}: {exc}", DiagnosticStatus.ERROR)

    def _count_overrun(self) -> None:
        with self._lock:
            self.counters["overruns"] += 1

    @property
    def _sim_time(self) -> bool:
        clock = self.get_clock()
        return clock.clock_type == ClockType.ROS_TIME and clock.ros_time_is_active

    def _set_problem(self, text: str, level: bytes, counter: str | None = None, warn: bool = False) -> None:
        with self._lock:
            self.problem, self.problem_level = text, level
            if counter:
                self.counters[counter] += 1
        log = self.get_logger().warning if warn else self.get_logger().error
        log(text, throttle_duration_sec=2.0)

    def step(self) -> bool:
        """One inference from the newest inputs; True when a chunk was published."""
        now = self.get_clock().now().nanoseconds * 1e-9
        with self._lock:
            images = dict(self._images)
            instruction = self._instruction
            snapshot = self._joints.snapshot(now)
            missing = [] if snapshot is not None else self._joints.missing(now)
            never = set(self._joints.missing()) if missing else set()
            joint_stamps = dict(self._joint_stamps)
            joint_error = self.input_errors.get("joints")
            self.missing_joints = missing
        recent_joint_error = (joint_error[0] if joint_error is not None
                              and time.monotonic() - joint_error[1] < max(2.0, self.max_age) else None)
        problem = input_problem(
            now, self.max_age, instruction=instruction, instruction_error=(self.input_errors.get("instruction")
                                                                           or (None,))[0],
            instruction_topic=self.instruction_topic, joints_ok=snapshot is not None, missing_joints=missing,
            never_received=never, joint_stamps={j: stamp_to_sec(t) for j, t in joint_stamps.items()},
            joint_error=recent_joint_error, joint_topic=self.joint_topic,
            camera_stamps={c: stamp_to_sec(images[c].stamp) if c in images else None for c in self.cameras},
            camera_topics=self.camera_topics)
        if problem is not None:
            if problem.camera:
                with self._lock:
                    self.missing_camera[problem.camera] += 1
            error = problem.level == "error"
            self._set_problem(problem.message, DiagnosticStatus.ERROR if error else DiagnosticStatus.WARN,
                              "skipped_missing_input", warn=not error)
            return False
        stamps = [max(joint_stamps.values(), key=stamp_to_sec)]  # == snapshot.newest, as the exact Time
        oldest = snapshot.oldest
        rgb: dict[str, np.ndarray] = {}
        for name in self.cameras:
            item = images[name]
            try:
                rgb[name] = self._rgb(name, item.value)
            except ImageError as exc:
                self._set_problem(f"camera '{name}': {exc}", DiagnosticStatus.ERROR)
                return False
            stamps.append(item.stamp)
            oldest = min(oldest, stamp_to_sec(item.stamp))
        newest = max(stamps, key=stamp_to_sec)
        if stamp_to_sec(newest) == self._last_chunk_stamp:
            # No input changed since the last chunk (inputs slower than rate_hz, e.g. a sim slower than real time):
            # a chunk stamped like the last one is a duplicate the executor must refuse. Wait for a new input.
            with self._lock:
                self.counters["unchanged_inputs"] += 1
            return False
        start = time.perf_counter()
        try:
            chunk = self.runtime.predict(rgb, snapshot.positions, instruction)
        except NonFiniteOutputError as exc:
            self._set_problem(f"chunk not published: {exc}", DiagnosticStatus.ERROR, "nonfinite_outputs")
            return False
        except InstructionError as exc:
            self._set_problem(str(exc), DiagnosticStatus.ERROR, "instruction_errors")
            return False
        latency = time.perf_counter() - start
        self._last_chunk_stamp = stamp_to_sec(newest)
        self.chunk_pub.publish(self._trajectory(chunk, newest))
        chosen = getattr(self.runtime, "last_selection", None)
        if chosen is not None:
            self.selection_pub.publish(Float64MultiArray(layout=SELECTION_LAYOUT,
                                                         data=[stamp_to_sec(newest), *chosen.as_array()]))
        with self._lock:
            self.counters["inferences"] += 1
            self.counters["chunks_published"] += 1
            if self.cold_start_s is None:
                self.cold_start_s = latency  # first inference: allocations, caches; kept out of the stats
            else:
                self.latencies.append(latency)
            self.ages.append(now - oldest)
            self.problem, self.problem_level = "", DiagnosticStatus.OK
        return True

    def _rgb(self, camera: str, msg: Image | CompressedImage) -> np.ndarray:
        """The frame as HxWx3 RGB, converted (or decoded) once per message; a bad frame raises ImageError each time
        it is asked for but is counted in `rejected_images` once."""
        cached = self._converted.get(camera)
        if cached is not None and cached[0] is msg:
            if isinstance(cached[1], ImageError):
                raise cached[1]
            return cached[1]
        start = time.perf_counter()
        try:
            image = message_rgb(msg)
        except ImageError as exc:
            self._converted[camera] = (msg, exc)
            with self._lock:
                self.counters["rejected_images"] += 1
            raise
        elapsed = time.perf_counter() - start
        with self._lock:
            self.counters["decoded_images"] += 1
            self.decode_times.append(elapsed)
            if image.shape[:2] != self.runtime.config.image_size:
                self.counters["resized_images"] += 1  # the runtime resizes; counted so a misconfigured camera shows
        self._converted[camera] = (msg, image)
        return image

    def _trajectory(self, chunk: np.ndarray, stamp: Time) -> JointTrajectory:
        msg = JointTrajectory()
        msg.header.stamp = stamp
        msg.joint_names = list(self.joint_names)
        for i, row in enumerate(chunk):
            t = i * self.dt
            sec = int(t)
            msg.points.append(JointTrajectoryPoint(
                positions=[float(x) for x in row],
                time_from_start=Duration(sec=sec, nanosec=int(round((t - sec) * 1e9))),
            ))
        return msg

    # ------------------------------------------------------------------ diagnostics
    def _providers(self) -> str:
        providers = getattr(self.runtime, "active_providers", None)
        return ",".join(providers) if providers else self.runtime.device

    def _publish_diagnostics(self) -> None:
        with self._lock:
            lat = [x * 1e3 for x in self.latencies]
            ages = [x * 1e3 for x in self.ages]
            values: dict[str, object] = {
                "backend": self.backend, "providers": self._providers(), "model": self.model_path,
                "instruction": self._instruction or "", "rate_hz": self.rate_hz, "best_of_n": self.best_of_n,
                **self.counters,
                "latency_p50_ms": _percentile(lat, 50), "latency_p95_ms": _percentile(lat, 95),
                "latency_max_ms": max(lat) if lat else float("nan"),
                "cold_start_ms": (self.cold_start_s or float("nan")) * 1e3, "warmup_ms": self.warmup_s * 1e3,
                "image_transport": self.image_transport,
                "decode_p50_ms": _percentile([x * 1e3 for x in self.decode_times], 50),
                "missing_joints": ",".join(self.missing_joints),
                "joint_sources": len(self._joints.sources),
                "observation_age_ms": ages[-1] if ages else float("nan"),
                "observation_age_p95_ms": _percentile(ages, 95),
                **{f"missing_camera_{c}": n for c, n in self.missing_camera.items()},
                "last_problem": self.problem,
            }
            level, message = self.problem_level, self.problem or "ok"
            # an input rejected in the last 2 s shows even while older valid inputs keep chunks going
            recent = [text for text, when in self.input_errors.values() if time.monotonic() - when < 2.0]
            if recent and level != DiagnosticStatus.ERROR:
                level, message = DiagnosticStatus.ERROR, recent[-1]
        array = DiagnosticArray()
        array.header.stamp = self.get_clock().now().to_msg()
        array.status.append(diagnostic_status("policy: inference", self.get_name(), level, message, values))
        self.diag_pub.publish(array)

    def close(self) -> None:
        # also for a node whose __init__ raised (the context destroys it at shutdown): only what exists
        if hasattr(self, "_thread"):
            self._stop.set()
            if self._thread.is_alive() and self._thread is not threading.current_thread():
                self._thread.join(timeout=5.0)
        closer = getattr(getattr(self, "runtime", None), "close", None)  # the lerobot backend's server process
        if closer is not None:
            closer()


def main(args: list[str] | None = None) -> int:
    return run_node(lambda: PolicyNode(), args)


if __name__ == "__main__":
    raise SystemExit(main())
