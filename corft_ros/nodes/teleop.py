"""teleop: drive the follower arm from a leader arm, a gamepad, the keyboard, or (in sim) a scripted operator.

Every source produces a full joint target in robot.yaml order; the node clamps it to the joint limits and to
the joints' velocity limits, then publishes it on the forward controller's command topic at the action rate
(std_msgs/Float64MultiArray) and, stamped, on /corft/teleop/command (sensor_msgs/JointState) so recorded
actions carry their real stamps.

With `intervention: true` it takes over a deployed policy instead: while the operator engages (a held Joy button,
space on the keyboard) its targets, starting from the measured pose, go to the executor on
corft/intervention/command; letting go sends one empty message and the policy has the arm again.
"""

from __future__ import annotations

import sys
import threading
import time

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import PoseStamped
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import JointState, Joy
from std_msgs.msg import Float64MultiArray, String

from corft_ros.core import topics
from corft_ros.core.node_params.teleop import TeleopParams
from corft_ros.core.robot import ConfigError, load_robot_config
from corft_ros.core.sim.demos import ScriptedDemos
from corft_ros.core.sim.stuck import StuckConfig, StuckDetector
from corft_ros.core.teleop import clamp_command, joy_jogger, keyboard_help, keyboard_target, yaw_of
from corft_ros.core.teleop_leader import leader_engage_refusal, leader_mapping
from corft_ros.core.terminal import TerminalKeys
from corft_ros.nodes.common import declare_params, run_node
from corft_ros.nodes.qos import LATCHED, RECORDED, RELIABLE


# ----------------------------------------------------------------------------------------------- the node
class TeleopNode(Node):
    def __init__(self, **kwargs) -> None:
        super().__init__("teleop", **kwargs)
        p = self.params = declare_params(self, TeleopParams)
        self.robot = load_robot_config(p.robot_config or None)
        self._read_params(p)
        self.mapping = leader_mapping(self.robot, p.leader_joint_map, p.leader_offsets, p.leader_scales)
        self.jogger = joy_jogger(self.robot, p.joy_axes, p.joy_speed, p.joy_deadzone, p.joy_enable_button,
                                 p.joy_gripper_open_button, p.joy_gripper_close_button, p.gripper_joint)
        self._init_state()
        group = MutuallyExclusiveCallbackGroup()
        self._make_publishers()
        self._make_inputs(p, group)
        self.create_timer(1.0 / self.rate_hz, self._tick, callback_group=group)
        self.create_timer(1.0, self._publish_diagnostics, callback_group=group)

    def _read_params(self, p: TeleopParams) -> None:
        """The source, rate and intervention settings (with the scripted operator's stuck detector), checked."""
        self.source, self.command_topic, self.velocity_scale = p.source, p.command_topic, p.velocity_scale
        self.keyboard_step, self.seed, self.human_like = p.keyboard_step, p.seed, p.human_like
        self.input_timeout_s = p.input_timeout_s
        self.intervention = p.intervention
        self.intervention_button = p.intervention_button if p.intervention_button >= 0 else p.joy_enable_button
        self.leader_max_offset = p.leader_max_offset
        self.stuck = None
        if self.intervention and self.source == "scripted":
            self.stuck = StuckDetector(StuckConfig(p.stuck_window_s, p.stuck_min_progress_m, p.takeover_s,
                                                   p.takeover_cooldown_s))
        if self.intervention and self.source in ("joy", "leader") and self.intervention_button < 0:
            raise ConfigError(f"intervention with source {self.source} needs the Joy button that engages it: set "
                              "intervention_button (or joy_enable_button)")
        self.rate_hz = p.rate_hz if p.rate_hz > 0 else self.robot.action_rate_hz

    def _init_state(self) -> None:
        """The measured state, targets, demo and takeover state the callbacks and the tick share."""
        self._lock = threading.Lock()
        self.state: np.ndarray | None = None  # measured follower positions (robot order)
        self.state_stamp = 0.0
        self.last_command: np.ndarray | None = None
        self._target: np.ndarray | None = None
        self._input_time = 0.0
        self._joy_velocity = np.zeros(self.robot.dof)
        self.errors = 0
        self.commands_sent = 0
        self._error_times: dict[str, float] = {}
        self.demos = ScriptedDemos(self._lock, self.stuck)  # the scripted source's demos and takeovers
        self._last_tick = 0.0
        self._keyboard: TerminalKeys | None = None
        self._plan_thread: threading.Thread | None = None
        self._engage_request = False  # the operator asks to take over (button held, key toggled)
        self._button_time = 0.0  # when the engage button was last reported
        self.engaged = False
        self.takeovers = 0

    def _make_publishers(self) -> None:
        """The command (plain and stamped), intervention command and diagnostics publishers."""
        self.command_pub = self.create_publisher(Float64MultiArray, self.command_topic, RECORDED)
        self.intervention_pub = self.create_publisher(JointState, topics.INTERVENTION_COMMAND, RECORDED)
        self.stamped_pub = self.create_publisher(JointState, topics.TELEOP_COMMAND, RECORDED)
        self.diag_pub = self.create_publisher(DiagnosticArray, topics.DIAGNOSTICS, 10)

    def _make_inputs(self, p: TeleopParams, group: MutuallyExclusiveCallbackGroup) -> None:
        """Joint states, and the source's own inputs: leader arm, gamepad, keyboard, or the scripted operator's."""
        self.create_subscription(JointState, topics.JOINT_STATES, self._on_joint_states, 100, callback_group=group)
        if self.source == "leader":
            self.create_subscription(JointState, p.leader_topic, self._on_leader, qos_profile_sensor_data,
                                     callback_group=group)
            if self.intervention:  # the engage button (a pedal) comes on the joy topic
                self.create_subscription(Joy, p.joy_topic, self._on_button, qos_profile_sensor_data,
                                         callback_group=group)
        elif self.source == "joy":
            self.create_subscription(Joy, p.joy_topic, self._on_joy, qos_profile_sensor_data, callback_group=group)
        elif self.source == "keyboard":
            self._start_keyboard()
        elif self.source == "scripted":
            from corft_ros.core.sim.operator import OperatorConfig, ScriptedOperator

            self._operator_factory = lambda seed: ScriptedOperator(
                self.robot, OperatorConfig(human_like=self.human_like, action_dt=self.robot.action_dt), seed=seed
            )
            self.create_subscription(PoseStamped, topics.SIM_CUBE_POSE, self._on_cube, RELIABLE, callback_group=group)
            self.create_subscription(PoseStamped, topics.SIM_GOAL_POSE, self._on_goal, RELIABLE, callback_group=group)
            self.create_subscription(String, topics.EPISODE_EVENTS, self._on_event, LATCHED, callback_group=group)

    # ------------------------------------------------------------------------------------------ helpers
    def _error(self, key: str, message: str) -> None:
        """One line per problem, at most once a second per kind; every occurrence is counted."""
        self.errors += 1
        now = time.monotonic()
        if now - self._error_times.get(key, -1e9) >= 1.0:
            self._error_times[key] = now
            self.get_logger().error(message)

    def _base(self) -> np.ndarray | None:
        """Where targets start from: the last command, else the measured state."""
        if self.last_command is not None:
            return self.last_command.copy()
        return None if self.state is None else self.state.copy()

    # ------------------------------------------------------------------------------------------ inputs
    def _on_joint_states(self, msg: JointState) -> None:
        try:
            idx = self.robot.index_of(msg.name)
        except ValueError as exc:
            self._error("joint_states", f"/joint_states: {exc}")
            return
        if len(msg.position) != len(msg.name):
            self._error("joint_states", f"/joint_states: {len(msg.name)} names but {len(msg.position)} positions")
            return
        with self._lock:
            state = self.state.copy() if self.state is not None else self.robot.home_array.copy()
            state[idx] = msg.position
            self.state = state
            self.state_stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9

    def _on_leader(self, msg: JointState) -> None:
        with self._lock:
            base = self._base()
        if base is None:
            base = self.robot.home_array.copy()
        try:
            target, mapped = self.mapping.apply(msg.name, msg.position, base)
        except ValueError as exc:
            self._error("leader", f"leader: {exc}; message ignored")
            return
        if mapped == 0:
            self._error("leader", f"leader: none of the joints {list(msg.name)} maps to {self.robot.name}; ignored")
            return
        with self._lock:
            self._target = target
            self._input_time = time.monotonic()

    def _on_joy(self, msg: Joy) -> None:
        try:
            vel = self.jogger.velocity(msg.axes, msg.buttons)
        except ValueError as exc:
            self._error("joy", f"joy: {exc}; message ignored")
            return
        with self._lock:
            self._joy_velocity = vel
            self._input_time = time.monotonic()
        if self.intervention:
            self._on_button(msg)

    def _on_button(self, msg: Joy) -> None:
        """Intervention: the engage button's state (held = take over)."""
        b = self.intervention_button
        with self._lock:
            self._engage_request = 0 <= b < len(msg.buttons) and bool(msg.buttons[b])
            self._button_time = time.monotonic()

    def _on_cube(self, msg: PoseStamped) -> None:
        o = msg.pose.orientation
        p = msg.pose.position
        self.demos.cube = (np.array([p.x, p.y, p.z]), yaw_of(o.w, o.x, o.y, o.z), time.monotonic())

    def _on_goal(self, msg: PoseStamped) -> None:
        o = msg.pose.orientation
        p = msg.pose.position
        self.demos.goal = (np.array([p.x, p.y, p.z]), yaw_of(o.w, o.x, o.y, o.z), time.monotonic())

    def _on_event(self, msg: String) -> None:
        if self.stuck is not None:  # the automatic intervener: a fresh detector per episode, never a demo
            with self._lock:
                self.demos.new_episode()
                self._engage_request = False
            return
        if msg.data == "start":
            self.request_demo()
        elif msg.data == "stop":
            self.end_demo()

    def request_demo(self) -> None:
        """Scripted: plan a new demo from the next cube/goal poses (received after this call)."""
        with self._lock:
            self.demos.request(time.monotonic())
            self.last_command = None  # start from the measured (reset) state

    def end_demo(self) -> None:
        """Scripted: the episode ended; the rest of the demo (e.g. its retreat) is not played. Without this, a
        sim reset before the next episode would be undone by the old demo driving the arm back along its plan."""
        with self._lock:
            self.demos.end()

    @property
    def demo_done(self) -> bool:
        return self.demos.done

    def _plan_demo(self) -> None:
        """Start planning the requested demo (called with the lock held) once fresh cube and goal poses are in. The
        plan (IK over the keyframes: seconds on a loaded machine) runs in a thread of its own: in a callback it held
        up every other callback of the process, so joint states queued behind it and the demo, timed by their
        stamps, jumped ahead by the planning time when they caught up (measured: a 4.4 s demo sent 12 commands)."""
        thread = self.demos.plan(self.state, self._operator_factory, self.seed,
                                 lambda line: self._error("scripted", line), self.get_logger().info)
        if thread is not None:
            self._plan_thread = thread

    # ------------------------------------------------------------------------------------------ keyboard
    def _start_keyboard(self) -> None:
        if not sys.stdin.isatty():
            self._error("keyboard", "keyboard: stdin is not a terminal; run teleop in a terminal (no commands sent)")
            return
        self._keyboard = TerminalKeys(on_key=self.key, name="teleop-keyboard")
        self.get_logger().info(keyboard_help(self.robot))

    def key(self, key: str) -> None:
        """Apply one key press (also the entry point for tests and other front ends)."""
        if self.intervention and key == " ":
            with self._lock:
                self._engage_request = not self._engage_request
                self._target = None  # a takeover starts from the measured pose
            return
        with self._lock:
            base = self._target if self._target is not None else self._base()
            if base is None:
                self._error("keyboard", "keyboard: no /joint_states yet; key ignored")
                return
            target = keyboard_target(self.robot, key, base, self.keyboard_step)
            if target is None:
                return
            self._target = target
            self._input_time = time.monotonic()

    # ------------------------------------------------------------------------------------------ output
    def _tick(self) -> None:
        with self._lock:
            now = time.monotonic()
            # The real interval on the node's clock (sim time in the sim, at any realtime_factor; a loaded machine
            # runs the timer late), capped so a stall never allows a jump.
            tick = self.get_clock().now().nanoseconds * 1e-9
            dt = min(max(tick - self._last_tick, 0.0), 2.0 / self.rate_hz) if self._last_tick else 1.0 / self.rate_hz
            self._last_tick = tick
            fresh = now - self._input_time <= self.input_timeout_s
            if self.stuck is not None:
                self._watch_progress()
            if self.intervention and not self._engaged(now):
                return
            target: np.ndarray | None = None
            if self.source == "scripted":
                if self.demos.pending and self.stuck is None:
                    self._plan_demo()
                # A finished demo commands nothing more: the arm holds its last target, and a reset (next
                # episode) is not undone by the old demo's final pose; the next demo starts from the reset state.
                if self.demos.operator is not None and not self.demos.operator.done:
                    t = self.state_stamp or self.get_clock().now().nanoseconds * 1e-9
                    target = self.demos.operator.command(t)
            elif self.source == "joy":
                base = self._base()
                if base is not None:
                    target = base + (self._joy_velocity * dt if fresh else 0.0)
            elif self._target is not None:
                # leader / keyboard: the last target is held; a stale leader is reported, the arm holds.
                if self.source == "leader" and not fresh:
                    self._error("stale", f"leader: no message for {now - self._input_time:.1f} s; holding")
                    target = self._base()
                else:
                    target = self._target
            if target is None:
                return
            if self.last_command is None and self.state is None:
                # Never command blind: the first command is rate-limited from the measured position.
                self._error("no_state", "no /joint_states yet; not commanding")
                return
            command = clamp_command(self.robot, target, self._base(), dt, self.velocity_scale)
            self.last_command = command
        stamped = JointState(name=self.robot.joint_names, position=command.tolist())
        stamped.header.stamp = self.get_clock().now().to_msg()
        if self.intervention:
            self.intervention_pub.publish(stamped)
        else:
            self.command_pub.publish(Float64MultiArray(data=command.tolist()))
        self.stamped_pub.publish(stamped)
        self.commands_sent += 1

    def _watch_progress(self) -> None:
        """Scripted intervention (lock held): feed the stuck detector; when it engages, plan a scripted correction
        from the arm's current state (in the background, as a demo); when its time is up or its plan ends, let go."""
        decision = self.demos.watch(self.state, self.state_stamp)
        if decision is None:
            return
        engage, begins = decision
        if begins:
            self._plan_demo()
        self._engage_request = engage

    def _engaged(self, now: float) -> bool:
        """Intervention (called with the lock held): whether the operator holds the arm this tick. Engaging starts
        from the measured pose (a leader must first be within leader_max_offset of it); letting go (or a button
        gone silent for input_timeout_s) sends one empty message, which hands the arm back to the policy."""
        want = self._engage_request and self.state is not None
        if self.source in ("joy", "leader") and now - self._button_time > self.input_timeout_s:
            want = False
        if want and not self.engaged and self.source == "leader":
            refusal = leader_engage_refusal(self.robot, self._target, self.state, now - self._input_time,
                                            self.input_timeout_s, self.leader_max_offset)
            if refusal is not None:
                self._error("engage", refusal)
                want = False
        if want != self.engaged:
            self.engaged = want
            self.last_command = None  # from the measured pose: no jump at either handover
            if want:
                self.takeovers += 1
                if self.source == "keyboard":
                    self._target = self.state.copy()
            else:
                self.intervention_pub.publish(JointState())  # let go: the policy has the arm again
            self.get_logger().info("intervention: taking over" if want else "intervention: handed back")
        return want

    def _publish_diagnostics(self) -> None:
        values = {
            "source": self.source, "commands_sent": str(self.commands_sent), "errors": str(self.errors),
            "rate_hz": f"{self.rate_hz:g}", "input_age_s": f"{time.monotonic() - self._input_time:.2f}",
        }
        if self.intervention:
            values["engaged"] = str(self.engaged)
            values["takeovers"] = str(self.takeovers)
        if self.stuck is not None:
            values["task_potential_best_m"] = f"{self.stuck.best:.3f}"
        if self.source == "scripted":
            values["demos"] = str(self.demos.index)
            values["demo_done"] = str(self.demo_done)
        level = DiagnosticStatus.OK if self.state is not None else DiagnosticStatus.WARN
        message = "commanding" if self.last_command is not None else "waiting for input"
        status = DiagnosticStatus(
            level=level, name="corft_ros: teleop", message=message, hardware_id=self.robot.name,
            values=[KeyValue(key=k, value=v) for k, v in values.items()],
        )
        array = DiagnosticArray(status=[status])
        array.header.stamp = self.get_clock().now().to_msg()
        self.diag_pub.publish(array)

    def destroy_node(self) -> None:
        keyboard = getattr(self, "_keyboard", None)  # absent when __init__ refused a parameter
        if keyboard is not None:
            keyboard.close()
        planning = getattr(self, "_plan_thread", None)
        if planning is not None and planning.is_alive():
            # a plan (MuJoCo IK, seconds) still running while the process exits can crash the interpreter's teardown
            planning.join(timeout=10.0)
        super().destroy_node()


def main(args: list[str] | None = None) -> int:
    return run_node(lambda: TeleopNode(), args, threads=2)


if __name__ == "__main__":
    sys.exit(main())
