"""executor: the only node that commands the robot. Action chunks in, one safe command per control tick out.

Thin adapter around `corft_ros.core.chunking.ChunkExecutor`: messages are converted at the edge; the
control loop runs in a dedicated thread that sleeps to each tick's time on the node's clock (ROS time,
so `use_sim_time` works), because a thread that owns its schedule keeps the period error lower than
an executor-dispatched timer under load (see docs/executor.md for the measurements).

A managed (lifecycle) node: *active* = commanding, *inactive* = one hold command, then nothing until activated
again. With `managed: false` (the default, what `corft-ros` and the bundled graphs use) it configures and
activates itself at startup; with `managed: true` a lifecycle manager (or `ros2 lifecycle set /executor
activate`) decides. Commands go to one or more controllers (`outputs`), each with its own joints.
"""

from __future__ import annotations

import sys
import time

from builtin_interfaces.msg import Duration as DurationMsg
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rcl_interfaces.msg import SetParametersResult
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.clock import ClockType, JumpThreshold
from rclpy.duration import Duration
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool, Float64MultiArray, String
from std_srvs.srv import SetBool, Trigger
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from corft_ros.core import topics
from corft_ros.core.chunking import ChunkError, ChunkExecutor, TickState, make_chunk
from corft_ros.core.chunking.outputs import OutputSpec, make_outputs, uncommanded, waypoint_velocities
from corft_ros.core.chunking.session import ExecutorSession
from corft_ros.core.chunking.status import ListenerWatch, executor_status, executor_values
from corft_ros.core.chunking.tick_loop import TickLoop
from corft_ros.core.commands import parse_intervention
from corft_ros.core.joint_states import JointStateCache, JointStateError
from corft_ros.core.node_params.executor import ExecutorParams, OutputParams, executor_config
from corft_ros.core.params import declared, from_values
from corft_ros.core.robot import CommandError, ConfigError, load_robot_config
from corft_ros.nodes.common import ClosesOnDestroy, declare_params, diagnostic_status, run_node, stamp_to_sec
from corft_ros.nodes.qos import LATCHED, RECORDED, RELIABLE

# Parameters applied while running (the on-set callback checks them against the spec); the rest are read-only.
DYNAMIC = tuple(name for name, (_, info) in declared(ExecutorParams).items() if info.dynamic)
_LEVELS = {"ok": DiagnosticStatus.OK, "warn": DiagnosticStatus.WARN}


class ExecutorNode(ClosesOnDestroy, LifecycleNode):
    def __init__(self, **kwargs) -> None:
        super().__init__("executor", **kwargs)
        try:
            self._setup()
        except ConfigError:
            LifecycleNode.destroy_node(self)  # a refused node leaves nothing behind in the graph (nothing to close)
            raise
        if not self.managed:  # unmanaged: what `corft-ros` and the bundled graphs run
            self.trigger_configure()
            self.trigger_activate()

    def _setup(self) -> None:
        p = self.params = declare_params(self, ExecutorParams)
        self.robot = load_robot_config(p.robot_config or None)
        self.managed = p.managed
        self.thread_priority = p.thread_priority
        self.outputs: list[OutputSpec] = self._declare_outputs(p)
        self.output = self.outputs[0].kind  # kept for diagnostics and callers of the single-output era
        self.controller = self.outputs[0].controller
        self._make_core(p)
        self._make_publishers()
        inputs = ReentrantCallbackGroup()
        self._make_subscriptions(inputs)
        self._intervention_pub = self.create_publisher(Bool, topics.INTERVENTION, LATCHED)
        self._intervening: bool | None = None  # last published state
        self._publish_intervention(False)
        self._make_services(inputs)
        self._start_loop(p)

    def _declare_outputs(self, p: ExecutorParams) -> list[OutputSpec]:
        """The controllers commanded (`outputs`, each with its `<name>.*` parameters declared), checked."""
        joints = p.controller_joints or self.robot.joint_names
        try:
            self.robot.index_of(joints)
        except CommandError as exc:
            raise ConfigError(f"controller_joints: {exc}") from None
        names = p.outputs
        if len(set(names)) != len(names) or not all(n and n.replace("_", "").isalnum() for n in names):
            raise ConfigError(f"outputs must be distinct names of letters, digits and '_', got {names}")
        specs = []
        for i, name in enumerate(names):
            first = {"kind": p.output, "controller": p.controller, "joints": joints}
            own = declare_params(self, OutputParams, prefix=f"{name}.",
                                 defaults=first if i == 0 else {"controller": name})
            specs.append((name, own.kind, own.controller, own.joints))
        return make_outputs(self.robot, specs)

    def _make_core(self, p: ExecutorParams) -> None:
        """The chunk executor core and the state the control loop and the callbacks share."""
        self.rate_hz = p.control_rate_hz or self.robot.control_rate_hz
        self.core = ChunkExecutor(self.robot, executor_config(p, 1.0 / self.rate_hz, p.start_idle))
        self._set_jtc(p.jtc_point_spacing, p.jtc_max_points)
        self._period_ns = round(1e9 / self.rate_hz)
        self.session = ExecutorSession(self.core, JointStateCache(self.robot.joint_names,
                                                                  max_age=p.joint_state_max_age))
        self._lock = self.session.lock  # the core's lock (measure/executor.py reads the core under it too)
        self._last_error = ""
        self._listener_watch = ListenerWatch(repeat_s=10.0)

    def _make_publishers(self) -> None:
        """One command publisher per output (warning about joints no output commands), and /diagnostics."""
        self._command_pubs = []
        for out in self.outputs:
            msg_type = Float64MultiArray if out.kind == "forward" else JointTrajectory
            self._command_pubs.append(self.create_publisher(msg_type, out.topic, RECORDED))
        idle = uncommanded(self.robot, self.outputs)
        if idle:
            self.get_logger().warning(f"no output commands {', '.join(idle)}: those joints will not move")
        self._diag_pub = self.create_publisher(DiagnosticArray, topics.DIAGNOSTICS, RELIABLE)

    def _make_subscriptions(self, inputs: ReentrantCallbackGroup) -> None:
        """Chunks and joint states (one taker, in arrival order), episode events and intervention commands."""
        # One taker per stream, in arrival order: chunks are ordered by stamp, and two threads handling them (the
        # loop thread polling while the executor also took them: rclpy's EventsExecutor ignores callback groups)
        # processed a fast burst out of order and refused valid chunks (measured: 1-4 of 2000).
        streams = MutuallyExclusiveCallbackGroup()
        self._chunk_sub = self.create_subscription(JointTrajectory, topics.ACTION_CHUNK, self._on_chunk, RELIABLE,
                                                   callback_group=streams)
        self._state_sub = self.create_subscription(JointState, topics.JOINT_STATES, self._on_joint_state,
                                                   qos_profile_sensor_data, callback_group=streams)
        self.create_subscription(String, topics.EPISODE_EVENTS, self._on_episode_event, RELIABLE,
                                 callback_group=inputs)
        self.create_subscription(JointState, topics.INTERVENTION_COMMAND, self._on_intervention, RELIABLE,
                                 callback_group=inputs)

    def _make_services(self, inputs: ReentrantCallbackGroup) -> None:
        """The e-stop and clear services, the diagnostics timer and the parameter callback."""
        self.create_service(SetBool, topics.ESTOP, self._on_estop, callback_group=inputs)
        self.create_service(Trigger, "~/clear", self._on_clear, callback_group=inputs)
        self.create_timer(1.0, self._publish_diagnostics, callback_group=MutuallyExclusiveCallbackGroup())
        self.add_on_set_parameters_callback(self._on_set_parameters)

    def _start_loop(self, p: ExecutorParams) -> None:
        """The control loop: a timer (`timing: timer`) or a thread that sleeps to each tick, woken by /clock."""
        if p.gil_switch_interval_ms > 0:
            # Python's default 5 ms means a thread waking for its tick can wait up to 5 ms for the GIL while any
            # other thread of this process runs Python code; that alone breaks a 1 ms period-error budget.
            sys.setswitchinterval(p.gil_switch_interval_ms * 1e-3)
        clock = self.get_clock()
        self._ticks = TickLoop(
            self._period_ns, lambda: clock.now().nanoseconds,
            lambda: clock.clock_type == ClockType.ROS_TIME and clock.ros_time_is_active, self._tick, self._error,
            self.get_logger().warning, self.thread_priority,
        )
        if p.timing == "timer":
            self.create_timer(1.0 / self.rate_hz, self._ticks.on_timer,
                              callback_group=MutuallyExclusiveCallbackGroup())
        else:
            # every /clock update wakes the loop when ROS time is simulated (system time never jumps)
            self._jump_handle = clock.create_jump_callback(
                JumpThreshold(min_forward=Duration(nanoseconds=1), min_backward=Duration(nanoseconds=-1),
                              on_clock_change=True),
                post_callback=lambda _jump: self._ticks.wake(),
            )
            self._ticks.start("executor_loop")

    @property
    def scheduling(self) -> str:
        """The loop thread's scheduling: "normal", or "SCHED_FIFO <priority>" once raised."""
        return self._ticks.scheduling

    def _set_jtc(self, spacing: float, max_points: int) -> None:
        self.jtc_spacing = spacing or self.robot.action_dt
        self.jtc_max_points = max_points

    def _on_set_parameters(self, params: list[Parameter]) -> SetParametersResult:
        """mode, m, k, staleness_timeout, max_lead, jtc_point_spacing, jtc_max_points (the spec's dynamic ones) take
        effect when set, checked against the spec (a new mode, m or k drops the buffered chunks: they were blended
        under the old rule)."""
        changed = {p.name: p.value for p in params if p.name in DYNAMIC}
        if not changed:
            return SetParametersResult(successful=True)
        try:
            new_params = from_values(ExecutorParams, {**vars(self.params), **changed})
            cfg = self.core.config
            new = executor_config(new_params, cfg.control_period, cfg.start_idle)
        except ConfigError as exc:
            return SetParametersResult(successful=False, reason=str(exc))
        spacing, points = new_params.jtc_point_spacing, new_params.jtc_max_points
        with self._lock:
            self.core.reconfigure(new)
            self._set_jtc(spacing, points)
            self.params = new_params
        self.get_logger().info(f"parameters set: {changed}")
        return SetParametersResult(successful=True)

    # ---- lifecycle ----------------------------------------------------------------------------------
    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.session.activate(self._now)
        self.get_logger().info("active: commanding " + ", ".join(f"{o.topic} ({o.kind})" for o in self.outputs))
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        hold = self.session.deactivate()
        if hold is not None:  # one hold command (a trajectory controller stops there), then nothing
            self._publish(hold, [(self.core.grid.period, list(hold))])
        self.get_logger().info("inactive: holding, commanding nothing until activated")
        return super().on_deactivate(state)

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.session.shut_down()
        return super().on_shutdown(state)

    @property
    def lifecycle_state(self) -> str:
        return "active" if self.session.active else "inactive"

    # ---- inputs -------------------------------------------------------------------------------------
    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _on_chunk(self, msg: JointTrajectory) -> None:
        stamp = stamp_to_sec(msg.header.stamp)
        try:
            chunk = make_chunk(
                self.robot, stamp, list(msg.joint_names),
                [p.time_from_start.sec + p.time_from_start.nanosec * 1e-9 for p in msg.points],
                [p.positions for p in msg.points],
                default_dt=self.robot.action_dt,
            )
        except ChunkError as exc:
            self.session.reject()
            self._error(f"rejected {exc}")
            return
        try:
            self.session.submit(chunk, self._now)
        except ChunkError as exc:
            self._error(f"rejected {exc}")

    def _on_joint_state(self, msg: JointState) -> None:
        # Keep the latest value per joint: on a real arm the arm's and the gripper's drivers publish separately.
        # Ages are by arrival on this node's clock: drivers' header stamps may come from other clocks (a sim
        # slower than real time, a gripper driver stamping with its own clock).
        try:
            self.session.joint_state(msg.name, msg.position, self._now)
        except JointStateError as exc:
            self._error(f"{topics.JOINT_STATES}: {exc}; message ignored")

    def _on_episode_event(self, msg: String) -> None:
        if msg.data not in ("start", "stop"):
            self._error(f"{topics.EPISODE_EVENTS}: unknown event {msg.data!r} (expected start | stop)")
            return
        self.session.episode_event(msg.data, self._now)
        if not self.session.active:
            self.get_logger().info(f"episode {msg.data} while inactive: not commanding")
            return
        self.get_logger().info("episode start: holding the measured state, executing chunks" if msg.data == "start"
                               else "episode stop: chunk buffer cleared, idle until the next start")

    def _on_intervention(self, msg: JointState) -> None:
        """A takeover source's targets (an empty message lets go): while they keep coming the arm follows them."""
        try:
            target = parse_intervention(self.robot, list(msg.name), list(msg.position))
        except CommandError as exc:
            self._error(f"{topics.INTERVENTION_COMMAND}: {exc}; message ignored")
            return
        self.session.intervention(target, self._now)

    def _publish_intervention(self, engaged: bool) -> None:
        if engaged != self._intervening:
            self._intervening = engaged
            self._intervention_pub.publish(Bool(data=engaged))
            if self.session.active or engaged:
                self.get_logger().info("operator takeover: following corft/intervention/command" if engaged
                                       else "hand-back: executing the policy's chunks")

    def _on_estop(self, request: SetBool.Request, response: SetBool.Response) -> SetBool.Response:
        self.session.set_estop(bool(request.data))
        response.success = True
        response.message = "e-stop latched: holding" if request.data else "e-stop released: waiting for new chunks"
        if request.data:  # two call sites: rclpy refuses one call site logging at two severities
            self.get_logger().warning(response.message)
        else:
            self.get_logger().info(response.message)
        return response

    def _on_clear(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        self.session.clear()
        response.success, response.message = True, "chunk buffer cleared; holding the measured position"
        return response

    def _error(self, message: str) -> None:
        self._last_error = message
        self.get_logger().error(message, throttle_duration_sec=1.0)

    # ---- the control loop (core/chunking/tick_loop.py runs it) ---------------------------------------
    def _tick(self, slot: int, now_ns: int) -> None:
        ticked = self.session.tick(slot, now_ns * 1e-9,
                                   (lambda: (self.jtc_spacing, self.jtc_max_points)) if self._has_jtc else None)
        if ticked is None:
            return
        tick, plan = ticked
        if tick.command is not None:
            self._publish(tick.command, plan)
        engaged = tick.state is TickState.INTERVENTION
        if engaged != self._intervening:
            self._publish_intervention(engaged)

    @property
    def _has_jtc(self) -> bool:
        return any(o.kind == "jtc" for o in self.outputs)

    def _publish(self, command: list[float], plan: list[tuple[float, list[float]]] | None) -> None:
        """One message per output: the command (forward) or the planned waypoints with velocities (jtc)."""
        velocities = waypoint_velocities(command, plan) if plan else None
        for out, publisher in zip(self.outputs, self._command_pubs, strict=True):
            index = out.index
            if out.kind == "forward":
                msg = Float64MultiArray()
                msg.data = [command[i] for i in index]
            else:
                msg = JointTrajectory()  # header.stamp stays 0: "start now"
                msg.joint_names = list(out.joints)
                msg.points = [
                    JointTrajectoryPoint(positions=[point[i] for i in index],
                                         velocities=[float(velocities[n][i]) for i in index],
                                         time_from_start=_duration(offset))
                    for n, (offset, point) in enumerate(plan or [])
                ]
            publisher.publish(msg)

    # ---- diagnostics --------------------------------------------------------------------------------
    def _listeners(self) -> dict[str, int]:
        return {out.name: publisher.get_subscription_count()
                for out, publisher in zip(self.outputs, self._command_pubs, strict=True)}

    def _check_listeners(self, listeners: dict[str, int]) -> list[str]:
        """Outputs nobody subscribes to; warned when first seen and every 10 s while it lasts (when active)."""
        deaf, due = self._listener_watch.update(listeners, time.monotonic(), warn=self.session.active)
        for out in self.outputs:
            if out.name in due:
                self.get_logger().warning(
                    f"no subscriber on {self.resolve_topic_name(out.topic)} ({out.kind}, joints "
                    f"{', '.join(out.joints)}): is controller '{out.controller}' loaded and active?")
        return deaf

    def _publish_diagnostics(self) -> None:
        with self._lock:  # copy under the lock, percentiles outside it: the loop never waits for them
            stats = self.core.stats.copy()
            clamps = (self.core.safety.position_clamps, self.core.safety.velocity_clamps)
            state = self.core.state
            newest = self.core.newest_stamp
            active = self.session.active
        report = stats.report(*clamps)
        listeners = self._listeners()
        deaf = self._check_listeners(listeners)
        age = (self._now() - newest) if newest is not None else None
        missing = self.session.states.missing(self._now())
        described = [(o.name, f"{o.kind} {self.resolve_topic_name(o.topic)}", listeners[o.name]) for o in self.outputs]
        values = executor_values(self.core, state, active, self.scheduling, self.output, self.controller, age,
                                 report.as_dict(), described, missing, self._last_error)
        deaf_topics = [self.resolve_topic_name(o.topic) for o in self.outputs if o.name in deaf]
        level, message = executor_status(state, active, missing, deaf_topics)
        level = _LEVELS[level]
        msg = DiagnosticArray()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.status = [diagnostic_status("executor", self.robot.name, level, message, values)]
        self._diag_pub.publish(msg)

    def close(self) -> None:
        """Stop the control loop, then send one hold command (the last safe command; a trajectory controller stops
        there instead of playing out the rest of the last plan) and wait up to 1 s for the controllers to take it:
        a stopped executor's last command is always a hold."""
        self._ticks.stop(timeout=2.0)
        hold = self.session.stop()
        if hold is None or not self.context.ok():
            return
        try:
            self._publish(hold, [(self.core.grid.period, list(hold))])
            for publisher in self._command_pubs:
                publisher.wait_for_all_acked(Duration(seconds=1.0))
        except Exception as exc:  # never let the last command stop the rest of the shutdown
            self.get_logger().warning(f"could not send the final hold command: {exc}")


def _duration(seconds: float) -> DurationMsg:
    nanoseconds = round(seconds * 1e9)
    return DurationMsg(sec=nanoseconds // 1_000_000_000, nanosec=nanoseconds % 1_000_000_000)


def main(args: list[str] | None = None) -> int:
    return run_node(lambda: ExecutorNode(), args)
