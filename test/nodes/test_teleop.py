"""teleop over real DDS: leader mirroring (mapping, offsets), joy jogging, keyboard keys, limits, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from rclpy.parameter import Parameter
from rclpy.qos import qos_profile_sensor_data
from ros_harness import wait_until
from sensor_msgs.msg import JointState, Joy
from std_msgs.msg import Float64MultiArray

from corft_ros.core.robot import ConfigError, load_robot_config
from corft_ros.core.teleop import JoyJogger, clamp_command, keyboard_delta
from corft_ros.core.teleop_leader import LeaderMapping
from corft_ros.nodes.teleop import TeleopNode

ROBOT = load_robot_config()
HOME = ROBOT.home_array


def make_teleop(ros, **params) -> TeleopNode:
    overrides = [Parameter(k, value=v) for k, v in params.items()]
    return ros.add(TeleopNode(context=ros.context, parameter_overrides=overrides))


def publish_state(ros, positions: np.ndarray) -> None:
    pub = ros.publisher(JointState, "/joint_states", 100)
    ros.wait_for_subscribers(pub)
    pub.publish(JointState(name=ROBOT.joint_names, position=positions.tolist()))


def last_command(log) -> np.ndarray:
    return np.array(log.last.data)


def test_pure_logic() -> None:
    mapping = LeaderMapping(ROBOT, {"l_grip": "finger_joint"}, offsets=np.r_[0.1, np.zeros(6)])
    target, mapped = mapping.apply(["l_grip", "shoulder_pan_joint", "extra"], [0.4, 1.0, 9.0], HOME)
    assert mapped == 2 and target[0] == pytest.approx(1.1) and target[6] == pytest.approx(0.4)
    assert np.allclose(target[1:6], HOME[1:6])
    with pytest.raises(ValueError, match="is nan"):
        mapping.apply(["shoulder_pan_joint"], [float("nan")], HOME)
    with pytest.raises(ConfigError, match="names no joint"):
        LeaderMapping(ROBOT, {"a": "nope"})
    jog = JoyJogger(ROBOT, [0, 1, -1, -1, -1, -1, -1], speed=1.0, deadzone=0.2, enable_button=2,
                    gripper_open_button=0, gripper_close_button=1, gripper_index=6)
    assert not jog.velocity([1.0, 1.0], [0, 0, 0]).any()  # dead-man released
    v = jog.velocity([1.0, 0.1], [0, 1, 1])
    assert v[0] == pytest.approx(1.0) and v[1] == 0.0 and v[6] == pytest.approx(ROBOT.joints[6].max_velocity)
    with pytest.raises(ValueError, match="1 axes"):
        jog.velocity([0.5], [0, 0, 1])
    assert keyboard_delta("q", 7, 0.1)[0] == pytest.approx(0.1) and keyboard_delta("j", 7, 0.1)[6] == -0.1
    assert keyboard_delta("x", 7, 0.1) is None
    cmd = clamp_command(ROBOT, np.r_[10.0, HOME[1:6], 2.0], HOME, dt=0.05)
    assert cmd[0] == pytest.approx(HOME[0] + 3.14 * 0.05) and cmd[6] == pytest.approx(HOME[6] + 4.0 * 0.05)
    assert clamp_command(ROBOT, np.r_[10.0, HOME[1:6], 2.0], None, dt=0.05)[6] == pytest.approx(0.8)


def test_leader_mirrored_with_mapping_offsets_and_limits(ros) -> None:
    commands = ros.subscribe(Float64MultiArray, "/forward_position_controller/commands", 10)
    node = make_teleop(ros, source="leader", leader_joint_map=["leader_gripper=finger_joint"],
                       leader_offsets=[0.2, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0])
    try:
        publish_state(ros, HOME)
        leader = ros.publisher(JointState, "/leader/joint_states", qos_profile_sensor_data)
        ros.wait_for_subscribers(leader)
        # Leader order differs from the follower's; its gripper has another name; finger 2.0 is past the limit.
        names = ["wrist_3_joint", "leader_gripper", "shoulder_pan_joint"]
        want = HOME.copy()
        want[5], want[6], want[0] = 0.3, 0.8, -1.2 + 0.2

        def converged(msgs) -> bool:
            leader.publish(JointState(name=names, position=[0.3, 2.0, -1.2]))
            return bool(msgs) and np.allclose(msgs[-1].data, want, atol=1e-9)

        log = commands.wait(converged, 10)
        # Velocity-limited on the way: a step covers at most max_velocity x the tick interval (capped at 2 ticks).
        steps = np.abs(np.diff([np.array(m.data) for m in log], axis=0))
        assert (steps <= 2 * ROBOT.max_velocity / ROBOT.action_rate_hz + 1e-9).all()
        assert len(log) >= 3  # the gripper's 0.8 at 4 rad/s takes several ticks, not one jump
        assert all(np.array(m.data)[6] <= 0.8 for m in log)
        # Bad leader messages are ignored and counted; the last good target holds.
        errors = node.errors
        leader.publish(JointState(name=["shoulder_pan_joint"], position=[float("nan")]))
        leader.publish(JointState(name=["unknown_a", "unknown_b"], position=[1.0, 2.0]))
        commands.clear()
        commands.wait(lambda m: len(m) >= 5, 5)
        assert np.allclose(last_command(commands), want)
        assert node.errors >= errors + 2
    finally:
        ros.remove(node)


def test_joy_jogging(ros) -> None:
    commands = ros.subscribe(Float64MultiArray, "/forward_position_controller/commands", 10)
    node = make_teleop(ros, source="joy", joy_axes=[0, -1, -1, -1, -1, 1, -1], joy_speed=1.0, joy_deadzone=0.1,
                       joy_gripper_close_button=1, joy_gripper_open_button=0, input_timeout_s=5.0)
    try:
        publish_state(ros, HOME)
        joy = ros.publisher(Joy, "/joy", qos_profile_sensor_data)
        ros.wait_for_subscribers(joy)
        joy.publish(Joy(axes=[1.0, -1.0], buttons=[0, 1]))
        commands.clear()
        log = commands.wait(lambda m: len(m) >= 10, 10)
        q = np.array([m.data for m in log])
        # Full deflection: shoulder_pan up and wrist_3 down at joy_speed, the gripper closing, nothing else.
        assert (np.diff(q[:, 0]) > 0).all() and (np.diff(q[:, 5]) < 0).all()
        # joy_speed rad/s over the real tick interval (about 1 / action_rate_hz)
        assert np.diff(q[:, 0]).mean() == pytest.approx(1.0 / ROBOT.action_rate_hz, rel=0.5)
        assert (np.diff(q[:, 6]) >= 0).all() and q[-1, 6] > HOME[6]
        assert np.allclose(q[:, 1:5], HOME[1:5])
        # Sticks released (inside the dead zone): the arm holds where it is.
        joy.publish(Joy(axes=[0.05, 0.0], buttons=[0, 0]))
        commands.wait(lambda m: len(m) >= len(log) + 3, 5)
        commands.clear()
        held = commands.wait(lambda m: len(m) >= 5, 5)
        assert np.allclose([m.data for m in held], held[0].data)
        # Too few axes: reported, ignored.
        errors = node.errors
        joy.publish(Joy(axes=[0.5], buttons=[]))
        commands.wait(lambda m: node.errors > errors, 5)
    finally:
        ros.remove(node)


def test_keyboard_keys_and_limits(ros) -> None:
    commands = ros.subscribe(Float64MultiArray, "/forward_position_controller/commands", 10)
    node = make_teleop(ros, source="keyboard", keyboard_step=0.3)
    try:
        node.key("q")  # before any /joint_states: refused, counted
        assert node.errors >= 1
        publish_state(ros, HOME)
        commands.wait(lambda m: node.state is not None, 5)
        for _ in range(5):
            node.key("u")  # close the gripper 5 x 0.3: clamped at its 0.8 limit
        node.key("q")
        want = HOME.copy()
        want[0] += 0.3
        want[6] = 0.8
        commands.wait(lambda m: bool(m) and np.allclose(m[-1].data, want), 10)
        node.key("0")
        commands.wait(lambda m: np.allclose(m[-1].data, HOME), 10)
    finally:
        ros.remove(node)


def test_bad_parameters(ros) -> None:
    cases = [
        ({"source": "telepathy"}, "source must be one of"),
        ({"leader_joint_map": ["broken"]}, "leader_joint_map"),
        ({"leader_offsets": [0.0, 0.0]}, "leader_offsets has 2 values"),
        ({"joy_axes": [0, 1]}, "joy_axes has 2 entries"),
        ({"velocity_scale": 0.0}, "velocity_scale"),
        ({"gripper_joint": "claw"}, "gripper_joint 'claw'"),
        ({"source": "joy", "intervention": True}, "needs the Joy button that engages it"),
        ({"source": "scripted", "intervention": True, "stuck_window_s": 0.0}, "stuck_window_s"),
    ]
    for params, match in cases:
        with pytest.raises(ConfigError, match=match):
            TeleopNode(context=ros.context, parameter_overrides=[Parameter(k, value=v) for k, v in params.items()])


def test_a_slow_plan_does_not_cut_the_scripted_demo_short(ros) -> None:
    """Planning a demo (IK over its keyframes) takes seconds on a loaded machine. Done inside the timer callback, it
    held up the process's other callbacks; the joint states queued behind it then caught up at once, and the demo,
    timed by their stamps, skipped the planning time (a 4.4 s demo sent 12 commands under `ros2 launch`). And the
    episode's "start" was published before this teleop existed: the logger's events are latched, so it still gets it
    (under load a start called right after `ros2 launch` once never reached the teleop)."""
    import threading
    import time

    from geometry_msgs.msg import PoseStamped
    from std_msgs.msg import String

    from corft_ros.core.topics import EPISODE_EVENTS, SIM_CUBE_POSE, SIM_GOAL_POSE
    from corft_ros.nodes.qos import LATCHED, RECORDED, RELIABLE

    commands = ros.subscribe(Float64MultiArray, "/forward_position_controller/commands", RECORDED)
    events = ros.publisher(String, EPISODE_EVENTS, LATCHED)  # as the episode logger publishes them
    events.publish(String(data="start"))  # the episode started before the teleop was up
    node = make_teleop(ros, source="scripted", human_like=False)
    make_operator = node._operator_factory

    class SlowPlanning:
        def __init__(self, seed: int) -> None:
            self.inner = make_operator(seed)

        def start(self, *args) -> None:
            time.sleep(1.5)
            self.inner.start(*args)

        def __getattr__(self, name):
            return getattr(self.inner, name)

    node._operator_factory = SlowPlanning
    states = ros.publisher(JointState, "/joint_states", 100)
    cube = ros.publisher(PoseStamped, SIM_CUBE_POSE, RELIABLE)
    goal = ros.publisher(PoseStamped, SIM_GOAL_POSE, RELIABLE)
    for pub in (states, cube, goal, events):
        ros.wait_for_subscribers(pub)
    stop = threading.Event()

    def world() -> None:  # the sim's side: joint states at 100 Hz (wall-time stamps), cube and goal poses at 10 Hz
        i = 0
        while not stop.is_set():
            msg = JointState(name=ROBOT.joint_names, position=HOME.tolist())
            msg.header.stamp = node.get_clock().now().to_msg()
            states.publish(msg)
            if i % 10 == 0:
                for pub, xyz in ((cube, (0.45, 0.05, 0.02)), (goal, (0.425, -0.2, 0.02))):
                    pose = PoseStamped()
                    pose.pose.position.x, pose.pose.position.y, pose.pose.position.z = xyz
                    pose.pose.orientation.w = 1.0
                    pub.publish(pose)
            i += 1
            time.sleep(0.01)

    thread = threading.Thread(target=world, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while not node.demo_done and time.monotonic() < deadline:
            time.sleep(0.05)
        assert node.demo_done, "the demo never finished"
        expected = node.demos.operator.duration * node.rate_hz
        # the subscriber may still be catching up after the demo: a generous deadline (CI with CPU hogs beside it)
        sent = len(commands.wait(lambda m: len(m) >= 0.9 * expected, timeout=60))
        assert sent >= 0.9 * expected, (sent, expected)
    finally:
        stop.set()
        thread.join(timeout=5)
        ros.remove(node)


def test_a_joy_dead_man_takes_over_a_deployed_policy_and_hands_it_back(ros) -> None:
    """teleop with intervention: true and the executor over DDS: while the dead-man is held the arm jogs (the
    executor follows corft/intervention/command, the controller topic gets nothing from teleop), letting go hands
    back at once (one empty message), and a Joy stream gone silent hands back too."""
    import threading
    import time

    from std_msgs.msg import Bool, Header
    from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

    from corft_ros.nodes.executor import ExecutorNode
    from corft_ros.nodes.qos import LATCHED

    engaged = ros.subscribe(Bool, "/corft/intervention", LATCHED)
    sent = ros.subscribe(JointState, "/corft/intervention/command", 10)
    commands = ros.subscribe(Float64MultiArray, "/forward_position_controller/commands", 10)
    executor = ros.add(ExecutorNode(context=ros.context, parameter_overrides=[
        Parameter("mode", value="latest"), Parameter("staleness_timeout", value=60.0),
        Parameter("intervention_timeout", value=1.0)]))
    teleop = make_teleop(ros, source="joy", intervention=True, intervention_button=2, joy_speed=1.0,
                         joy_axes=[0, -1, -1, -1, -1, -1, -1], input_timeout_s=1.0)
    button = {"held": 0}
    streaming = threading.Event()
    streaming.set()
    try:
        states = ros.publisher(JointState, "/joint_states", 100)
        chunks = ros.publisher(JointTrajectory, "/corft/action_chunk", 10)
        joy = ros.publisher(Joy, "/joy", qos_profile_sensor_data)
        for pub in (states, chunks, joy):
            ros.wait_for_subscribers(pub)
        states.publish(JointState(name=ROBOT.joint_names, position=HOME.tolist()))
        stamp = executor.get_clock().now().to_msg()
        chunks.publish(JointTrajectory(header=Header(stamp=stamp), joint_names=ROBOT.joint_names,
                                       points=[JointTrajectoryPoint(positions=HOME.tolist(),
                                                                    time_from_start=_seconds(i * 0.05))
                                               for i in range(1200)]))  # the policy holds HOME for 60 s
        commands.wait(lambda m: len(m) >= 5, 10)
        assert engaged.wait(lambda m: bool(m), 10)[-1].data is False

        def joystick() -> None:  # a gamepad driver: the stick deflected, the dead-man as `button`, at 20 Hz
            while streaming.is_set():
                joy.publish(Joy(axes=[1.0], buttons=[0, 0, button["held"]]))
                time.sleep(0.05)

        stick = threading.Thread(target=joystick, daemon=True)
        stick.start()
        commands.wait(lambda m: len(m) >= 50, 10)  # dead-man released: nothing is sent
        assert not sent.messages and teleop.engaged is False
        button["held"] = 1  # held: the executor follows the operator's jog
        commands.wait(lambda m: engaged.last.data is True and m[-1].data[0] > HOME[0] + 0.1, 10)
        assert all(len(m.name) == ROBOT.dof for m in sent.messages) and teleop.takeovers == 1
        button["held"] = 0  # let go: one empty message, the policy (HOME) again
        engaged.wait(lambda m: m[-1].data is False, 10)
        assert any(len(m.name) == 0 for m in sent.messages)
        commands.wait(lambda m: abs(m[-1].data[0] - HOME[0]) < 1e-9, 10)
        button["held"] = 1  # held again, then the gamepad goes silent (unplugged): handed back
        engaged.wait(lambda m: m[-1].data is True, 10)
        streaming.clear()
        stick.join()
        engaged.wait(lambda m: m[-1].data is False, 10)
        assert teleop.takeovers == 2
    finally:
        streaming.clear()
        ros.remove(teleop)
        ros.executor.remove_node(executor)
        time.sleep(0.15)
        ros.remove(executor)


def _seconds(t: float):
    from builtin_interfaces.msg import Duration

    ns = int(round(t * 1e9))
    return Duration(sec=ns // 10**9, nanosec=ns % 10**9)


def test_keyboard_toggles_a_takeover_and_a_far_leader_is_refused(ros) -> None:
    sent = ros.subscribe(JointState, "/corft/intervention/command", 10)
    keyboard = make_teleop(ros, source="keyboard", intervention=True, keyboard_step=0.1)
    try:
        publish_state(ros, HOME)
        wait_until(lambda: keyboard.state is not None)
        keyboard.key(" ")  # take over: from the measured pose
        first = sent.wait(lambda m: bool(m), 5)[0]
        np.testing.assert_allclose(first.position, HOME, atol=1e-9)
        keyboard.key("q")
        sent.wait(lambda m: m[-1].position[0] > HOME[0] + 0.09, 5)
        keyboard.key(" ")  # let go: one empty message, then nothing
        sent.wait(lambda m: len(m[-1].name) == 0, 5)
    finally:
        ros.remove(keyboard)
    leader = make_teleop(ros, source="leader", intervention=True, intervention_button=0, leader_max_offset=0.1)
    try:
        publish_state(ros, HOME)
        leader_pub = ros.publisher(JointState, "/leader/joint_states", qos_profile_sensor_data)
        pedal = ros.publisher(Joy, "/joy", qos_profile_sensor_data)
        ros.wait_for_subscribers(leader_pub)
        ros.wait_for_subscribers(pedal)
        sent.clear()
        errors = leader.errors
        far = HOME.copy()
        far[0] += 0.5

        def pressing(pose, done) -> bool:
            leader_pub.publish(JointState(name=ROBOT.joint_names, position=pose.tolist()))
            pedal.publish(Joy(buttons=[1]))
            return done()

        wait_until(lambda: pressing(far, lambda: leader.errors > errors))  # refused: the leader is 0.5 rad off
        assert not leader.engaged and not sent.messages
        near = HOME.copy()
        near[0] += 0.05
        wait_until(lambda: pressing(near, lambda: len(sent.messages) >= 3))  # within leader_max_offset: taken over
        assert leader.engaged and np.allclose(sent.last.position, near, atol=1e-9)
    finally:
        ros.remove(leader)
