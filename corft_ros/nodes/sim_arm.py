"""sim_arm: the embedded default robot. OGBench's MuJoCo cube scene behind ros2_control-shaped topics.

One thread owns the physics (steps, publishes /clock and /joint_states on its cadence); a second thread renders
the cameras from snapshots of the physics state with its own MjData and GL context (a MuJoCo renderer works only on
the thread that created it), so a frame's cost never stalls the clock. Images carry the stamp of the tick they were
rendered from. ROS callbacks only hand commands and reset requests to the physics thread.

Speed: `realtime_factor` (1 = real time, 2 = twice as fast, 0 = as fast as the consumers allow; see
corft_ros/core/sim/pacing.py for what the sim waits for).
"""

from __future__ import annotations

import json
import queue
import threading
import time

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from geometry_msgs.msg import PoseStamped
from rcl_interfaces.msg import SetParametersResult
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import qos_profile_sensor_data
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Bool, Float64MultiArray
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory

from corft_ros.core import topics
from corft_ros.core.commands import parse_forward, parse_trajectory
from corft_ros.core.node_params.sim_arm import SimArmParams
from corft_ros.core.params import refusal
from corft_ros.core.robot import CommandError, ConfigError, load_robot_config
from corft_ros.core.sim.arm import ResetRequest, reset_result, sim_arm_config
from corft_ros.core.sim.pacing import Pacer, wait_for_commands, wait_for_consumers
from corft_ros.core.sim.scene import CubeScene
from corft_ros.core.sim.trajectory import TrajectoryFollower
from corft_ros.nodes.common import (
    ClosesOnDestroy,
    declare_params,
    diagnostic_status,
    run_node,
    sec_to_stamp,
    stamp_to_sec,
)
from corft_ros.nodes.qos import CLOCK, RECORDED, RELIABLE


class SimArmNode(ClosesOnDestroy, Node):
    def __init__(self, **kwargs) -> None:
        super().__init__("sim_arm", **kwargs)
        p = self.params = declare_params(self, SimArmParams)
        self.robot = load_robot_config(p.robot_config or None)
        self.realtime_factor, self.camera_rate_hz, self.instruction = p.realtime_factor, p.camera_rate_hz, p.instruction
        config = sim_arm_config(
            self.robot, realtime_factor=p.realtime_factor, policy_lag=p.policy_lag, frame_lag=p.frame_lag,
            cameras=p.cameras, image_width=p.image_width, image_height=p.image_height, goal=p.goal,
            start_area=p.start_area, held_out_area=p.held_out_area, render_lod=p.render_lod,
            joint_state_rate_hz=p.joint_state_rate_hz, forward_joints=p.forward_joints)
        self.joint_state_rate_hz, self.forward_indices = config.joint_state_rate_hz, config.forward_indices
        self.scene = CubeScene(self.robot, config.scene)
        self.physics_steps_per_tick, self.tick_dt = config.physics_steps_per_tick, config.tick_dt

        self._group = ReentrantCallbackGroup()
        self._js_pub = self.create_publisher(JointState, topics.JOINT_STATES, RECORDED)
        clock_qos = CLOCK
        self._clock_pub = self.create_publisher(Clock, topics.CLOCK, clock_qos)
        self._image_pubs = {
            name: self.create_publisher(Image, topics.camera_image(name), qos_profile_sensor_data)
            for name in p.cameras
        }
        self._success_pub = self.create_publisher(Bool, topics.SIM_SUCCESS, RELIABLE)
        self._cube_pub = self.create_publisher(PoseStamped, topics.SIM_CUBE_POSE, RELIABLE)
        self._goal_pub = self.create_publisher(PoseStamped, topics.SIM_GOAL_POSE, RELIABLE)
        self._diag_pub = self.create_publisher(DiagnosticArray, topics.DIAGNOSTICS, RELIABLE)
        self.create_subscription(JointTrajectory, p.trajectory_topic, self._on_trajectory, RELIABLE,
                                 callback_group=self._group)
        self.create_subscription(Float64MultiArray, p.forward_topic, self._on_forward, RELIABLE,
                                 callback_group=self._group)
        self.create_subscription(JointTrajectory, p.chunk_topic, self._on_chunk, RELIABLE, callback_group=self._group)
        self.create_service(Trigger, topics.SIM_RESET, self._on_reset, callback_group=self._group)
        self.add_on_set_parameters_callback(self._check_parameters)
        self.create_timer(1.0, self._publish_diagnostics, callback_group=self._group)

        self._lock = threading.Lock()
        self._moved = threading.Condition()  # a consumer acted (frame published, chunk or command received)
        self.pacer = Pacer(config.pacing, 1.0 / self.camera_rate_hz)
        self._frames: queue.Queue = queue.Queue()
        self._clock_gaps: list[float] = []  # wall s between consecutive /clock messages (bench)
        self._pending_command: tuple[str, object] | None = None
        self._resets: queue.Queue[ResetRequest] = queue.Queue()
        self._stats = {"rejected_commands": 0, "accepted_commands": 0, "frames": 0, "resets": 0}
        self._render_ms: dict[str, float] = {}
        self._last_error = ""
        self._rtf = 0.0
        self._success = False
        self._clock_offset = time.time()  # sim time continues wall-clock epoch time, so stamps are comparable
        self._sim_elapsed = 0.0
        self._running = True
        self._first_reset = ResetRequest(seed=self._next_seed(), region=self.get_parameter("region").value,
                                         done=threading.Event())
        self._render_thread = threading.Thread(target=self._render_loop, name="sim_arm-render", daemon=True)
        self._render_thread.start()
        self._thread = threading.Thread(target=self._run, name="sim_arm", daemon=True)
        self._thread.start()
        if not self._first_reset.done.wait(60.0) or self._first_reset.error:
            raise ConfigError(f"sim failed to start: {self._first_reset.error or 'timeout'}")

    # --- ROS callbacks: validate and hand over ---------------------------------------------------------------
    def _reject(self, topic: str, error: Exception) -> None:
        self._stats["rejected_commands"] += 1
        self._last_error = f"{topic}: {error}"
        self.get_logger().error(f"rejected command on {topic}: {error}; holding last valid target",
                                throttle_duration_sec=1.0)

    def _on_trajectory(self, msg: JointTrajectory) -> None:
        try:
            command = parse_trajectory(
                self.robot, list(msg.joint_names),
                [p.time_from_start.sec + p.time_from_start.nanosec * 1e-9 for p in msg.points],
                [list(p.positions) for p in msg.points],
            )
        except CommandError as exc:
            self._reject("joint_trajectory", exc)
            return
        with self._lock:
            self._pending_command = ("trajectory", (stamp_to_sec(msg.header.stamp), command))
        self._stats["accepted_commands"] += 1
        self._consumer_acted(lambda: self.pacer.command(time.monotonic()))

    def _on_forward(self, msg: Float64MultiArray) -> None:
        try:
            values = parse_forward(self.robot, self.forward_indices, list(msg.data))
        except CommandError as exc:
            self._reject("commands", exc)
            return
        with self._lock:
            self._pending_command = ("forward", values)
        self._stats["accepted_commands"] += 1
        self._consumer_acted(lambda: self.pacer.command(time.monotonic()))

    def _on_chunk(self, msg: JointTrajectory) -> None:
        stamp = stamp_to_sec(msg.header.stamp)
        self._consumer_acted(lambda: self.pacer.chunk(stamp, time.monotonic()))

    def _consumer_acted(self, update) -> None:
        with self._moved:
            update()
            self._moved.notify_all()

    def _on_reset(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        region = self.get_parameter("region").value
        reset = ResetRequest(seed=self._next_seed(), region=region, done=threading.Event())
        self._resets.put(reset)
        if not reset.done.wait(30.0):
            response.success, response.message = False, "sim did not reset within 30 s"
        elif reset.error:
            response.success, response.message = False, reset.error
        else:
            response.success, response.message = True, json.dumps(reset.result)
        return response

    def _next_seed(self) -> int:
        seed = int(self.get_parameter("seed").value)
        self.set_parameters([Parameter("seed", value=seed + 1)])
        return seed

    def _check_parameters(self, params: list[Parameter]) -> SetParametersResult:
        """seed and region (the spec's dynamic ones) are read at the next reset; checked against the spec here."""
        reason = refusal(SimArmParams, [(item.name, item.value) for item in params])
        if reason is not None:
            return SetParametersResult(successful=False, reason=reason)
        return SetParametersResult(successful=True)

    # --- the sim thread ----------------------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            self._do_reset(self._first_reset)
            self._loop()
        except Exception as exc:  # the thread must say why it stopped
            self._last_error = f"sim thread stopped: {exc}"
            self.get_logger().fatal(self._last_error)
            if not self._first_reset.done.is_set():
                self._first_reset.error = str(exc)
                self._first_reset.done.set()
        finally:
            self._frames.put(None)
            self.scene.close()

    def _do_reset(self, request: ResetRequest) -> None:
        try:
            info = self.scene.reset(request.seed, request.region)
        except (ConfigError, ValueError) as exc:
            request.error = str(exc)
            request.done.set()
            return
        self._follower = TrajectoryFollower(self.scene.joint_positions())
        self._follower.hold(self.scene.joint_positions())
        with self._lock:
            self._pending_command = None
        self._success = False
        self._stats["resets"] += 1
        self._next_camera = self._sim_elapsed
        request.result = reset_result(info, self.instruction, self._now())
        request.done.set()

    def _now(self) -> float:
        return self._clock_offset + self._sim_elapsed

    def _loop(self) -> None:
        rtf_wall, rtf_sim = time.monotonic(), self._sim_elapsed
        camera_period = 1.0 / self.camera_rate_hz
        commands_before = self.pacer.commands
        last_clock_wall = None
        self.pacer.reanchor(time.monotonic(), self._sim_elapsed)
        while self._running:
            while not self._resets.empty():
                self._do_reset(self._resets.get_nowait())
                self.pacer.reanchor(time.monotonic(), self._sim_elapsed)
            wait_for_consumers(self.pacer, self._moved, self._clock_offset + (self._sim_elapsed + self.tick_dt),
                               lambda: self._running, lambda: not self._resets.empty())
            self._apply_pending_command()
            self.scene.set_targets(self._follower.sample(self._now()))
            self.scene.step(self.physics_steps_per_tick)
            self._sim_elapsed += self.tick_dt
            now = self._now()
            # commands so far, counted before this tick's clock goes out: a fast executor's answer can arrive before
            # the rest of this tick's work is done, and waiting for a command after it would wait for one that only
            # the next tick can bring (measured: 6.6% of ticks at factor 0 sat out executor_wait_s that way)
            before_clock = self.pacer.commands
            self._clock_pub.publish(Clock(clock=sec_to_stamp(now)))
            wall = time.monotonic()
            if last_clock_wall is not None and len(self._clock_gaps) < 200_000:
                self._clock_gaps.append(wall - last_clock_wall)
            last_clock_wall = wall
            self._publish_joint_states(now)
            success = self.scene.success()
            if success != self._success:
                self._success = success
                self._success_pub.publish(Bool(data=success))
            if self._image_pubs and self._render_thread.is_alive() and self._sim_elapsed >= self._next_camera - 1e-9:
                self._next_camera += camera_period
                with self._moved:
                    self.pacer.frame_requested = now
                self._frames.put((now, self.scene.snapshot()))
                self._publish_task_state(now)
            # the executor's answer to this tick (a per-tick commander only, never at factor 1)
            self.pacer.tick_answered(self.pacer.commands > commands_before)
            commands_before = self.pacer.commands
            if self.pacer.wait_for_command():
                wait_for_commands(self.pacer, self._moved, before_clock, lambda: self._running)
            delay = self.pacer.wall_delay(time.monotonic(), self._sim_elapsed)
            if delay > 0:
                time.sleep(delay)
            wall = time.monotonic()
            if wall - rtf_wall >= 1.0:
                self._rtf = (self._sim_elapsed - rtf_sim) / (wall - rtf_wall)
                rtf_wall, rtf_sim = wall, self._sim_elapsed

    def _render_loop(self) -> None:
        """Frames off the physics thread: each request is (stamp, snapshot); every camera is rendered from it and
        published with that stamp."""
        renderer = None
        try:
            while self._running:
                item = self._frames.get()
                if item is None:
                    return
                stamp, state = item
                if renderer is None:
                    renderer = self.scene.frame_renderer()
                for name in self._image_pubs:
                    self._publish_camera(renderer, name, state, stamp)
                with self._moved:
                    self.pacer.frame_published(stamp)
                    self._moved.notify_all()
        except Exception as exc:
            self._last_error = f"render thread stopped: {exc}"
            self.get_logger().fatal(self._last_error)
            with self._moved:
                self.pacer.frame_requested = None
                self._moved.notify_all()
        finally:
            if renderer is not None:
                renderer.close()

    def _apply_pending_command(self) -> None:
        with self._lock:
            pending, self._pending_command = self._pending_command, None
        if pending is None:
            return
        kind, payload = pending
        if kind == "forward":
            target = self._follower.sample(self._now())
            target[self.forward_indices] = payload
            self._follower.hold(target)
        else:
            stamp, command = payload
            try:
                self._follower.set_trajectory(self._now(), stamp, command.times_from_start, command.positions,
                                              command.joint_indices)
            except CommandError as exc:
                self._reject("joint_trajectory", exc)

    def _publish_joint_states(self, now: float) -> None:
        msg = JointState()
        msg.header.stamp = sec_to_stamp(now)
        msg.name = self.robot.joint_names
        msg.position = self.scene.joint_positions().tolist()
        msg.velocity = self.scene.joint_velocities().tolist()
        self._js_pub.publish(msg)

    def _publish_camera(self, renderer, name: str, state, now: float) -> None:
        pub = self._image_pubs[name]
        t0 = time.perf_counter()
        frame = renderer.render(state, name)
        self._render_ms[name] = 0.9 * self._render_ms.get(name, 0.0) + 0.1 * (time.perf_counter() - t0) * 1e3
        msg = Image()
        msg.header.stamp = sec_to_stamp(now)
        msg.header.frame_id = f"{name}_camera_optical_frame"
        msg.height, msg.width = frame.shape[:2]
        msg.encoding = "rgb8"
        msg.step = msg.width * 3
        msg.data = frame.tobytes()
        pub.publish(msg)
        self._stats["frames"] += 1

    def _publish_task_state(self, now: float) -> None:
        stamp = sec_to_stamp(now)
        cube_pos = self.scene._data.joint("object_joint_0").qpos  # position + wxyz quaternion
        cube = PoseStamped()
        cube.header.stamp, cube.header.frame_id = stamp, "world"
        cube.pose.position.x, cube.pose.position.y, cube.pose.position.z = (float(v) for v in cube_pos[:3])
        w, x, y, z = (float(v) for v in cube_pos[3:7])
        cube.pose.orientation.w, cube.pose.orientation.x = w, x
        cube.pose.orientation.y, cube.pose.orientation.z = y, z
        self._cube_pub.publish(cube)
        goal = PoseStamped()
        goal.header.stamp, goal.header.frame_id = stamp, "world"
        gx, gy, gz = self.scene.config.goal
        goal.pose.position.x, goal.pose.position.y, goal.pose.position.z = gx, gy, gz
        goal.pose.orientation.w = 1.0
        self._goal_pub.publish(goal)
        self._success_pub.publish(Bool(data=self._success))

    def _publish_diagnostics(self) -> None:
        level = DiagnosticStatus.OK if self._thread.is_alive() else DiagnosticStatus.ERROR
        values = {"real_time_factor": self._rtf, "realtime_factor_target": self.realtime_factor,
                  "sim_time": self._now(), "success": self._success, **self._stats,
                  **{f"render_ms_{k}": v for k, v in self._render_ms.items()},
                  **{f"waits_{k}": v for k, v in self.pacer.waits.items()}}
        if self._last_error or not self._render_thread.is_alive():
            level = DiagnosticStatus.ERROR
        elif self.realtime_factor > 0 and 0 < self._rtf < 0.9 * self.realtime_factor:
            level = DiagnosticStatus.WARN
        message = self._last_error or ("running" if level == DiagnosticStatus.OK
                                       else f"slower than the target factor {self.realtime_factor:g}")
        msg = DiagnosticArray()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.status = [diagnostic_status("sim_arm", self.robot.name, level, message, values)]
        self._diag_pub.publish(msg)

    def clock_gaps(self) -> list[float]:
        """Wall seconds between consecutive /clock messages so far (for `corft-ros measure sim`)."""
        return list(self._clock_gaps)

    def close(self) -> None:
        self._running = False
        with self._moved:
            self._moved.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout=5.0)
        self._frames.put(None)
        if self._render_thread.is_alive():
            self._render_thread.join(timeout=5.0)


def main(args: list[str] | None = None) -> int:
    return run_node(lambda: SimArmNode(), args)


if __name__ == "__main__":
    raise SystemExit(main())
