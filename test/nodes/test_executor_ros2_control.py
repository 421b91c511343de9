"""The executor against real ros2_control-shaped setups, over real DDS: /joint_states split over two publishers,
the arm to a joint_trajectory_controller and the gripper to a forward_command_controller, a controller that is not
loaded, the lifecycle (managed) mode, and parameters that take effect when set."""

from __future__ import annotations

import time

import numpy as np
import pytest
from builtin_interfaces.msg import Duration
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState, GetState
from rcl_interfaces.msg import Parameter as ParameterMsg
from rcl_interfaces.msg import ParameterType, ParameterValue
from rcl_interfaces.srv import SetParameters
from rclpy.parameter import Parameter
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from corft_ros.core.robot import ConfigError, load_robot_config
from corft_ros.nodes.executor import ExecutorNode

ROBOT = load_robot_config()
ARM = ROBOT.joint_names[:6]
FINGER = ROBOT.joint_names[6:]
START = np.array(ROBOT.home)
START[6] = 0.2


def _chunk(stamp: float, rows) -> JointTrajectory:
    msg = JointTrajectory()
    msg.header.stamp.sec = int(stamp)
    msg.header.stamp.nanosec = int(round((stamp - int(stamp)) * 1e9)) % 1_000_000_000
    msg.joint_names = list(ROBOT.joint_names)
    for i, row in enumerate(rows):
        ns = int(round(i * ROBOT.action_dt * 1e9))
        msg.points.append(JointTrajectoryPoint(positions=[float(v) for v in row],
                                               time_from_start=Duration(sec=ns // 10**9, nanosec=ns % 10**9)))
    return msg


class TwoControllers:
    """An executor with two outputs (arm → JTC 'arm_controller', gripper → forward 'gripper_controller') and two
    joint state publishers (arm driver, gripper driver), as on a UR arm with a separate gripper driver."""

    def __init__(self, ros, subscribe_gripper: bool = True, **params) -> None:
        self.ros = ros
        params = {"outputs": ["arm", "gripper"], "arm.kind": "jtc", "arm.controller": "arm_controller",
                  "arm.joints": ARM, "gripper.kind": "forward", "gripper.controller": "gripper_controller",
                  "gripper.joints": FINGER, "staleness_timeout": 2.0, **params}
        self.node = ros.add(ExecutorNode(context=ros.context,
                                         parameter_overrides=[Parameter(k, value=v) for k, v in params.items()]))
        self.arm = ros.subscribe(JointTrajectory, "/arm_controller/joint_trajectory")
        self.gripper = ros.subscribe(Float64MultiArray, "/gripper_controller/commands") if subscribe_gripper else None
        self.diagnostics = ros.subscribe(DiagnosticArray, "/diagnostics")
        self.chunks = ros.publisher(JointTrajectory, "/corft/action_chunk")
        self.arm_states = ros.publisher(JointState, "/joint_states")
        self.finger_states = ros.publisher(JointState, "/joint_states")
        ros.wait_for_subscribers(self.chunks)
        ros.wait_for_subscribers(self.arm_states)

    def now(self) -> float:
        return self.node.get_clock().now().nanoseconds * 1e-9

    def publish_states(self, arm: bool = True, finger: bool = True, positions=START) -> None:
        if arm:
            self.arm_states.publish(JointState(name=ARM, position=[float(v) for v in positions[:6]]))
        if finger:
            self.finger_states.publish(JointState(name=FINGER, position=[float(positions[6])]))

    def status(self, predicate=lambda s: True, timeout: float = 10.0):
        self.diagnostics.clear()

        def found(messages):
            return any(s.name == "executor" and predicate(s) for m in messages for s in m.status)

        messages = self.diagnostics.wait(found, timeout=timeout)
        return next(s for m in reversed(messages) for s in m.status if s.name == "executor" and predicate(s))

    def close(self) -> None:
        self.ros.executor.remove_node(self.node)
        time.sleep(0.15)
        self.ros.remove(self.node)


def values(status) -> dict[str, str]:
    return {kv.key: kv.value for kv in status.values}


@pytest.fixture
def rig_factory(ros):
    rigs = []

    def make(**kwargs) -> TwoControllers:
        rig = TwoControllers(ros, **kwargs)
        rigs.append(rig)
        return rig

    yield make
    for rig in rigs:
        rig.close()


def test_split_joint_states_and_two_controllers_each_get_their_own_joints(rig_factory):
    # each driver publishes once here: the age limit (tested on its own) must not expire while a loaded machine
    # waits for the diagnostics between the two publishes
    rig = rig_factory(joint_state_max_age=60.0)
    rig.publish_states(finger=False)  # only the arm's driver so far: the robot is not complete
    status = rig.status(lambda s: "finger_joint" in values(s).get("joint_states_missing", ""))
    assert "finger_joint" in status.message
    assert rig.arm.last is None and rig.gripper.last is None  # nothing commanded without the whole robot
    rig.publish_states(arm=False)  # the gripper's driver completes it
    rig.arm.wait(lambda m: len(m) >= 3)
    rig.gripper.wait(lambda m: len(m) >= 3)
    hold = rig.arm.last
    assert list(hold.joint_names) == ARM
    np.testing.assert_allclose(hold.points[0].positions, START[:6])  # holds the measured pose
    np.testing.assert_allclose(rig.gripper.last.data, [START[6]])

    target = START.copy()
    target[0] += 0.3
    target[6] = 0.6
    rows = START + np.linspace(0.0, 1.0, 10)[:, None] * (target - START)
    rig.arm.clear()
    rig.gripper.clear()
    rig.chunks.publish(_chunk(rig.now(), rows))
    rig.gripper.wait(lambda m: m and abs(m[-1].data[0] - 0.6) < 1e-6, timeout=10.0)
    moving = rig.arm.wait(lambda m: any(len(x.points) > 3 for x in m), timeout=10.0)
    plan = next(x for x in moving if len(x.points) > 3)
    assert list(plan.joint_names) == ARM and all(len(p.velocities) == 6 for p in plan.points)
    velocities = np.array([p.velocities for p in plan.points])
    assert np.all(np.abs(velocities) <= ROBOT.max_velocity[:6] + 1e-9)
    assert velocities[0, 0] > 0.0  # shoulder_pan moves towards its target: JTC gets a smooth spline, not stops
    np.testing.assert_array_equal(velocities[-1], 0.0)  # comes to rest if no newer message arrives
    for msg in rig.gripper.messages:
        assert len(msg.data) == 1  # the forward controller gets its own joints only, never the arm's
    assert int(values(rig.status())["output.gripper.subscribers"]) >= 1


def test_a_controller_nobody_listens_to_is_named_in_diagnostics(rig_factory):
    # (the probe's subscriptions of earlier tests live on: a controller name no test subscribes to)
    rig = rig_factory(subscribe_gripper=False, **{"gripper.controller": "unloaded_gripper_controller"})
    rig.publish_states()
    rig.arm.wait(lambda m: len(m) >= 3)
    status = rig.status(lambda s: "/unloaded_gripper_controller/commands" in s.message)
    assert status.level == DiagnosticStatus.WARN
    assert "controller not loaded or inactive" in status.message
    assert values(status)["output.gripper.subscribers"] == "0"
    assert int(values(status)["output.arm.subscribers"]) >= 1


def test_a_joint_in_two_outputs_or_an_empty_output_refuses_to_start(ros):
    for params, needle in (
        ({"outputs": ["arm", "gripper"], "gripper.joints": ["finger_joint"]}, "joint 'finger_joint' is in outputs"),
        ({"outputs": ["arm", "gripper"]}, "gripper.joints is empty"),
        ({"outputs": ["arm", "arm"]}, "outputs must be distinct"),
        ({"outputs": ["arm", "gripper"], "arm.joints": ARM, "gripper.joints": FINGER,
          "gripper.controller": "forward_position_controller"}, "two outputs publish on"),
    ):
        with pytest.raises(ConfigError, match=needle):
            ExecutorNode(context=ros.context, parameter_overrides=[Parameter(k, value=v) for k, v in params.items()])


def _lifecycle(ros, transition: int) -> bool:
    request = ChangeState.Request()
    request.transition = Transition(id=transition)
    return ros.call(ChangeState, "/executor/change_state", request).success


def _state(ros) -> str:
    return ros.call(GetState, "/executor/get_state", GetState.Request()).current_state.label


def test_managed_executor_commands_only_while_active_and_holds_when_deactivated(ros):
    node = ros.add(ExecutorNode(context=ros.context, parameter_overrides=[
        Parameter("managed", value=True), Parameter("staleness_timeout", value=2.0)]))
    try:
        commands = ros.subscribe(Float64MultiArray, "/forward_position_controller/commands")
        states = ros.publisher(JointState, "/joint_states")
        chunks = ros.publisher(JointTrajectory, "/corft/action_chunk")
        ros.wait_for_subscribers(states)
        ros.wait_for_subscribers(chunks)
        assert _state(ros) == "unconfigured"
        states.publish(JointState(name=ROBOT.joint_names, position=[float(v) for v in START]))
        assert _lifecycle(ros, Transition.TRANSITION_CONFIGURE)
        assert _state(ros) == "inactive"
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:  # configured, not active: the controller gets nothing
            states.publish(JointState(name=ROBOT.joint_names, position=[float(v) for v in START]))
            time.sleep(0.05)
        assert commands.last is None

        assert _lifecycle(ros, Transition.TRANSITION_ACTIVATE)
        assert _state(ros) == "active"
        states.publish(JointState(name=ROBOT.joint_names, position=[float(v) for v in START]))
        commands.wait(lambda m: len(m) >= 3)
        np.testing.assert_allclose(commands.last.data, START)  # activation holds the measured pose
        target = START.copy()
        target[1] -= 0.2
        rows = START + np.linspace(0.0, 1.0, 10)[:, None] * (target - START)
        stamp = node.get_clock().now().nanoseconds * 1e-9
        chunks.publish(_chunk(stamp, rows))
        commands.wait(lambda m: m[-1].data[1] < START[1] - 0.1, timeout=10.0)

        assert _lifecycle(ros, Transition.TRANSITION_DEACTIVATE)
        assert _state(ros) == "inactive"
        count = len(commands.wait(lambda m: True))
        stamp = node.get_clock().now().nanoseconds * 1e-9
        chunks.publish(_chunk(stamp, START + np.zeros((10, 1))))  # ignored while inactive
        time.sleep(0.5)
        assert len(commands.messages) <= count + 1  # at most the one hold after deactivation, then nothing
        hold = commands.messages[-1].data
        assert hold[1] < START[1] - 0.1  # it held where the arm was, it did not execute the late chunk
    finally:
        ros.executor.remove_node(node)
        time.sleep(0.15)
        ros.remove(node)


def _set(ros, name: str, value) -> tuple[bool, str]:
    request = SetParameters.Request()
    if isinstance(value, str):
        pv = ParameterValue(type=ParameterType.PARAMETER_STRING, string_value=value)
    else:
        pv = ParameterValue(type=ParameterType.PARAMETER_DOUBLE, double_value=float(value))
    request.parameters = [ParameterMsg(name=name, value=pv)]
    result = ros.call(SetParameters, "/executor/set_parameters", request).results[0]
    return result.successful, result.reason


def test_run_time_parameters_take_effect_and_startup_ones_are_read_only(rig_factory):
    rig = rig_factory()
    rig.publish_states()
    rig.arm.wait(lambda m: len(m) >= 3)
    assert _set(rig.ros, "mode", "open_loop")[0]
    assert rig.node.core.config.mode == "open_loop"
    assert values(rig.status(lambda s: values(s)["mode"] == "open_loop"))["mode"] == "open_loop"
    assert _set(rig.ros, "staleness_timeout", 0.25)[0]
    assert rig.node.core.config.staleness_timeout == 0.25
    ok, reason = _set(rig.ros, "mode", "smooth")
    assert not ok and "mode must be one of" in reason
    assert rig.node.core.config.mode == "open_loop"
    ok, reason = _set(rig.ros, "control_rate_hz", 50.0)
    assert not ok and "read-only" in reason
    ok, _ = _set(rig.ros, "arm.controller", "other_controller")
    assert not ok


def test_a_stopped_executor_ends_on_one_hold_command_while_it_was_tracking(rig_factory):
    """close() (what SIGINT/SIGTERM and a launch shutdown run) sends one hold: without it a joint_trajectory_controller
    plays out the rest of the last multi-point plan after the executor is gone."""
    rig = rig_factory(joint_state_max_age=60.0)
    rig.publish_states()
    rig.arm.wait(lambda m: len(m) >= 3)
    target = START.copy()
    target[0] += 0.4
    rows = START + np.linspace(0.0, 1.0, 10)[:, None] * (target - START)

    def tracking(messages) -> bool:
        rig.chunks.publish(_chunk(rig.now(), rows))  # a fresh chunk on every look: it never runs out
        return len(messages) >= 5 and all(len(m.points) > 3 for m in messages[-5:])

    rig.arm.wait(tracking, timeout=20.0)
    rig.node.close()
    last = rig.arm.wait(lambda m: len(m[-1].points) == 1, timeout=5.0)[-1]
    period = 1.0 / ROBOT.control_rate_hz
    offset = last.points[0].time_from_start
    assert abs(offset.sec + offset.nanosec * 1e-9 - period) < 1e-9
    np.testing.assert_allclose(last.points[0].positions, rig.node.core.safety.last[:6])
    np.testing.assert_array_equal(last.points[0].velocities, 0.0)
    count = len(rig.arm.messages)
    time.sleep(0.3)  # nothing after the hold (a negative check: a short wait is all it can be)
    assert len(rig.arm.messages) == count
