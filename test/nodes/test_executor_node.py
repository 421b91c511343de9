"""The executor as a real rclpy node over DDS: chunks in, commands out (forward and jtc), within limits;
staleness hold, e-stop latch, episode events, bad chunks rejected while the node keeps running."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
from builtin_interfaces.msg import Duration
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.parameter import Parameter
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray, String
from std_srvs.srv import SetBool, Trigger
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from corft_ros.core.robot import ConfigError, load_robot_config
from corft_ros.nodes.executor import ExecutorNode

ROBOT = load_robot_config()
START = np.array(ROBOT.home)
START[6] = 0.2
LOWER, UPPER = ROBOT.lower, ROBOT.upper


def remove_node(ros, node) -> None:
    """Take the node out of the spinning executor, let the spin thread drop its wait set, then destroy it:
    destroying at once can race the harness's spin thread (InvalidHandle in wait_for_ready_callbacks)."""
    ros.executor.remove_node(node)
    time.sleep(0.15)
    ros.remove(node)


class Rig:
    """An executor node plus the probe's publishers and logs for one test."""

    def __init__(self, ros, **params) -> None:
        self.ros = ros
        overrides = [Parameter(k, value=v) for k, v in params.items()]
        self.node = ros.add(ExecutorNode(context=ros.context, parameter_overrides=overrides))
        output = params.get("output", "forward")
        controller = params.get("controller") or {"forward": "forward_position_controller", "jtc": "arm_controller"}[
            output]
        if output == "forward":
            self.commands = ros.subscribe(Float64MultiArray, f"/{controller}/commands")
        else:
            self.commands = ros.subscribe(JointTrajectory, f"/{controller}/joint_trajectory")
        self.diagnostics = ros.subscribe(DiagnosticArray, "/diagnostics")
        self.chunks = ros.publisher(JointTrajectory, "/corft/action_chunk")
        self.states = ros.publisher(JointState, "/joint_states")
        self.events = ros.publisher(String, "/corft/episode/events")
        ros.wait_for_subscribers(self.chunks)
        ros.wait_for_subscribers(self.states)

    def now(self) -> float:
        return self.node.get_clock().now().nanoseconds * 1e-9

    def publish_state(self, positions=START) -> None:
        self.states.publish(JointState(name=ROBOT.joint_names, position=[float(v) for v in positions]))

    def publish_chunk(self, rows, dt: float = 0.05, names=None, stamp: float | None = None,
                      times=None) -> float:
        stamp = self.now() if stamp is None else stamp
        msg = JointTrajectory()
        msg.header.stamp.sec = int(stamp)
        msg.header.stamp.nanosec = int(round((stamp - int(stamp)) * 1e9)) % 1_000_000_000
        msg.joint_names = list(names or ROBOT.joint_names)
        for i, row in enumerate(rows):
            t = times[i] if times is not None else i * dt
            ns = int(round(t * 1e9))
            msg.points.append(JointTrajectoryPoint(positions=[float(v) for v in row],
                                                   time_from_start=Duration(sec=ns // 10**9, nanosec=ns % 10**9)))
        self.chunks.publish(msg)
        return stamp

    def status(self, predicate=lambda s: True, timeout: float = 5.0):
        """The executor's next diagnostic status (published at ~1 Hz) satisfying `predicate`."""
        self.diagnostics.clear()

        def found(messages):
            return any(s.name == "executor" and predicate(s) for m in messages for s in m.status)

        messages = self.diagnostics.wait(found, timeout=timeout)
        return next(s for m in reversed(messages) for s in m.status if s.name == "executor" and predicate(s))

    def close(self) -> None:
        remove_node(self.ros, self.node)


def values(status) -> dict[str, str]:
    return {kv.key: kv.value for kv in status.values}


def forward_positions(msg) -> np.ndarray:
    return np.asarray(msg.data)


def assert_in_limits(positions) -> None:
    positions = np.asarray(positions)
    assert np.all(positions >= LOWER - 1e-12) and np.all(positions <= UPPER + 1e-12), positions


@pytest.fixture
def rig_factory(ros):
    rigs = []

    def make(**params) -> Rig:
        rig = Rig(ros, **params)
        rigs.append(rig)
        return rig

    yield make
    for rig in rigs:
        rig.close()


def test_forward_output_holds_the_measured_pose_then_tracks_chunks_in_limits(rig_factory):
    rig = rig_factory(mode="temporal_ensembling", staleness_timeout=2.0)
    time.sleep(0.3)
    assert rig.commands.last is None  # no joint state yet: nothing is commanded
    rig.publish_state()
    rig.commands.wait(lambda m: len(m) >= 5)
    np.testing.assert_allclose(forward_positions(rig.commands.last), START)  # holds where the arm is
    target = START + np.array([0.2, -0.1, 0.1, 0.0, 0.05, -0.1, 0.0])
    target[6] = 1.5  # beyond the gripper's upper limit (0.8): clamped, never sent
    rows = START + np.linspace(0.0, 1.0, 20)[:, None] * (target - START)
    rig.commands.clear()
    rig.publish_chunk(rows)
    log = rig.commands.wait(lambda m: len(m) >= 120, timeout=10.0)
    for msg in log:
        assert_in_limits(forward_positions(msg))
    final = forward_positions(log[-1])
    np.testing.assert_allclose(final[:6], target[:6], atol=1e-6)
    assert final[6] == pytest.approx(0.8)
    steps = np.abs(np.diff([forward_positions(m) for m in log], axis=0))
    assert np.all(steps <= ROBOT.max_velocity * 0.01 + 1e-9)  # consecutive commands of 10 ms ticks
    diag = values(rig.status(lambda s: int(values(s)["position_clamps"]) > 0))
    assert diag["chunks_accepted"] == "1" and diag["mode"] == "temporal_ensembling"


def test_forward_output_follows_the_controller_joint_order(rig_factory):
    order = list(reversed(ROBOT.joint_names))
    rig = rig_factory(controller="my_forward", controller_joints=order)
    rig.publish_state()
    msg = rig.commands.wait(lambda m: len(m) >= 2)[-1]
    np.testing.assert_allclose(msg.data, START[::-1])


def test_jtc_output_carries_the_blended_horizon_starting_one_step_ahead(rig_factory):
    rig = rig_factory(output="jtc", mode="latest", staleness_timeout=2.0)
    rig.publish_state()
    hold = rig.commands.wait(lambda m: len(m) >= 3)[-1]
    assert len(hold.points) == 1 and hold.points[0].time_from_start.nanosec == 10_000_000  # hold: 1 step ahead
    np.testing.assert_allclose(hold.points[0].positions, START)
    rows = START + np.linspace(0.0, 0.3, 40)[:, None] * np.array([1, 0, 0, 0, 0, 0, 0])
    rig.publish_chunk(rows, dt=0.05)
    log = rig.commands.wait(lambda m: sum(len(x.points) > 1 for x in m) >= 20, timeout=10.0)
    tracking = [m for m in log if len(m.points) > 1]
    for msg in tracking:
        assert msg.header.stamp.sec == 0 and msg.header.stamp.nanosec == 0  # start now
        assert list(msg.joint_names) == ROBOT.joint_names
        offsets = [p.time_from_start.sec + p.time_from_start.nanosec * 1e-9 for p in msg.points]
        assert offsets[0] == pytest.approx(0.01)
        np.testing.assert_allclose(np.diff(offsets), 0.05, atol=1e-9)
        for point in msg.points:
            assert_in_limits(point.positions)
    # the horizon ends where the chunk does (40 actions of 50 ms from its stamp), shrinking as time passes
    assert len(tracking[0].points) > len(tracking[-1].points) >= 1


def test_stale_chunks_make_the_node_hold_and_say_so(rig_factory):
    rig = rig_factory(mode="latest", staleness_timeout=0.3)
    rig.publish_state()
    rig.commands.wait(lambda m: len(m) >= 2)
    rows = START + np.linspace(0.0, 0.5, 100)[:, None] * np.array([0, 0, 1, 0, 0, 0, 0])  # 5 s of motion
    stamp = rig.publish_chunk(rows)
    status = rig.status(lambda s: values(s)["state"] == "stale", timeout=5.0)
    assert "stale" in status.message and status.level == b"\x01"
    held = forward_positions(rig.commands.last)
    moved = held[2] - START[2]
    assert 0.0 < moved < 0.5 * (0.3 + 0.15) / 5.0 + 0.01  # moved for about the staleness timeout, then held
    rig.commands.clear()
    later = rig.commands.wait(lambda m: len(m) >= 20)
    for msg in later:
        np.testing.assert_allclose(forward_positions(msg), held)
    assert rig.now() - stamp < 5.0  # the chunk itself still covered now: the hold came from staleness


def test_estop_latches_a_hold_until_released(ros, rig_factory):
    rig = rig_factory(mode="latest", staleness_timeout=2.0)
    rig.publish_state()
    rig.commands.wait(lambda m: len(m) >= 2)
    response = ros.call(SetBool, "/corft/estop", SetBool.Request(data=True))
    assert response.success and "latched" in response.message
    time.sleep(0.05)
    held = forward_positions(rig.commands.last)
    rows = START + np.linspace(0.0, 0.4, 60)[:, None] * np.array([1, 0, 0, 0, 0, 0, 0])
    rig.publish_chunk(rows)
    rig.commands.clear()
    for msg in rig.commands.wait(lambda m: len(m) >= 30):
        np.testing.assert_allclose(forward_positions(msg), held)
    assert values(rig.status())["state"] == "estop"
    assert ros.call(SetBool, "/corft/estop", SetBool.Request(data=False)).success
    rig.publish_chunk(rows)  # a new chunk after the release moves the arm again
    rig.commands.wait(lambda m: forward_positions(m[-1])[0] > held[0] + 0.05, timeout=5.0)


def test_episode_events_and_clear_drop_the_buffer_and_rebase_on_the_measured_pose(ros, rig_factory):
    rig = rig_factory(mode="open_loop", staleness_timeout=5.0)
    rig.publish_state()
    rig.commands.wait(lambda m: len(m) >= 2)
    rows = START + np.linspace(0.0, 0.3, 80)[:, None] * np.array([0, 1, 0, 0, 0, 0, 0])
    rig.publish_chunk(rows)
    rig.commands.wait(lambda m: forward_positions(m[-1])[1] > START[1] + 0.02, timeout=5.0)
    rig.events.publish(String(data="start"))
    rig.commands.clear()
    log = rig.commands.wait(lambda m: len(m) >= 20)
    np.testing.assert_allclose(forward_positions(log[-1]), forward_positions(log[-2]))  # stopped: holding
    moved = START + 0.05
    moved[6] = 0.3
    rig.publish_state(moved)  # e.g. the sim was reset: the executor now holds the measured pose
    rig.commands.wait(lambda m: np.allclose(forward_positions(m[-1]), moved), timeout=5.0)
    assert values(rig.status())["state"] == "waiting"
    response = ros.call(Trigger, "/executor/clear", Trigger.Request())
    assert response.success
    rig.events.publish(String(data="reboot"))  # unknown event: logged, ignored
    rig.commands.clear()
    rig.commands.wait(lambda m: len(m) >= 10)


def test_bad_chunks_are_rejected_and_the_node_keeps_commanding(rig_factory):
    rig = rig_factory(mode="temporal_ensembling", staleness_timeout=2.0)
    rig.publish_state()
    rig.commands.wait(lambda m: len(m) >= 2)
    bad_nan = np.tile(START, (10, 1))
    bad_nan[3, 2] = math.nan
    rig.publish_chunk(bad_nan)
    rig.publish_chunk(np.tile(START, (10, 1)), names=ROBOT.joint_names[:6] + ["tail_joint"])
    rig.publish_chunk(np.tile(START[:6], (10, 1)), names=ROBOT.joint_names[:6])
    rig.publish_chunk(np.tile(START, (3, 1)), times=[0.0, 0.1, 0.05])
    status = rig.status(lambda s: values(s)["chunks_rejected"] == "4")
    assert values(status)["chunks_accepted"] == "0"
    assert "chunk stamped" in values(status)["last_error"]
    rig.commands.clear()
    for msg in rig.commands.wait(lambda m: len(m) >= 10):
        np.testing.assert_allclose(forward_positions(msg), START)  # still holding, still publishing
    good = START + np.linspace(0.0, 0.2, 30)[:, None] * np.array([0, 0, 0, 1, 0, 0, 0])
    rig.publish_chunk(good)
    rig.commands.wait(lambda m: forward_positions(m[-1])[3] > START[3] + 0.05, timeout=5.0)


def test_a_fast_burst_of_in_order_chunks_is_handled_in_order(rig_factory):
    """Two threads taking chunks (the loop polling while rclpy's EventsExecutor also ran the callback) handled a
    fast burst out of order and refused 1-4 valid chunks of 2000; a refused newest chunk would hold the arm."""
    rig = rig_factory(mode="latest", staleness_timeout=5.0, max_lead=5.0)
    rig.publish_state()
    rig.commands.wait(lambda m: len(m) >= 2)
    rows = np.tile(START, (30, 1))
    stats = rig.node.core.stats
    last = 0.0
    for i in range(2000):
        last = rig.publish_chunk(rows, stamp=max(rig.now(), last + 1e-5))  # now, strictly increasing
        if i % 3 == 0:
            time.sleep(0.003)  # bursts of three back to back, then a pause: the pattern that raced
    deadline = time.monotonic() + 10
    while rig.node.core.newest_stamp != pytest.approx(last, abs=1e-6) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert stats.chunks_rejected == 0, "a valid chunk was refused: chunks were handled out of order"
    assert rig.node.core.newest_stamp == pytest.approx(last, abs=1e-6)
    assert stats.chunks_accepted > 100  # a reliable depth-10 queue may drop some under load, never reorder them


@pytest.mark.parametrize(
    ("params", "needle"),
    [
        ({"output": "serial"}, "output must be one of"),
        ({"mode": "smooth"}, "mode must be one of"),
        ({"controller_joints": ["shoulder_pan_joint", "tail_joint"]}, "controller_joints: unknown joint name"),
        ({"staleness_timeout": -1.0}, "staleness_timeout"),
        ({"timing": "cron"}, "timing must be one of"),
    ],
)
def test_bad_parameters_refuse_to_start(ros, params, needle):
    overrides = [Parameter(k, value=v) for k, v in params.items()]
    with pytest.raises(ConfigError, match=needle):
        ExecutorNode(context=ros.context, parameter_overrides=overrides)


def test_timer_timing_tracks_chunks_too(rig_factory):
    rig = rig_factory(timing="timer", thread_priority=0, mode="receding_horizon", k=5)
    rig.publish_state()
    rig.commands.wait(lambda m: len(m) >= 2)
    rows = START + np.linspace(0.0, 0.3, 30)[:, None] * np.array([0, 0, 0, 0, 1, 0, 0])
    rig.publish_chunk(rows)
    log = rig.commands.wait(lambda m: forward_positions(m[-1])[4] > START[4] + 0.05, timeout=5.0)
    for msg in log:
        assert_in_limits(forward_positions(msg))
    assert values(rig.status())["loop_scheduling"] == "normal"


def test_an_operator_takes_over_while_its_source_sends_and_the_policy_gets_the_arm_back(ros, rig_factory):
    """A takeover source (sensor_msgs/JointState on /corft/intervention/command) drives the arm instead of the
    chunks while it keeps sending, within the velocity limits; /corft/intervention (latched Bool) and the diagnostics
    say so; a silent source hands back after intervention_timeout, an empty message at once; a bad message is
    refused in one line while the node keeps commanding."""
    import threading

    from std_msgs.msg import Bool

    from corft_ros.nodes.qos import LATCHED

    rig = rig_factory(mode="latest", staleness_timeout=30.0, intervention_timeout=1.0)
    engaged = ros.subscribe(Bool, "/corft/intervention", LATCHED)
    takeover = ros.publisher(JointState, "/corft/intervention/command")
    ros.wait_for_subscribers(takeover)
    rig.publish_state()
    assert engaged.wait(lambda m: len(m) >= 1)[-1].data is False
    policy = START.copy()
    rig.publish_chunk(np.tile(policy, (600, 1)))  # the policy holds START for 30 s
    rig.commands.wait(lambda m: len(m) >= 5)
    operator = START.copy()
    operator[0] += 0.3
    sending = threading.Event()
    sending.set()

    def operate() -> None:
        while sending.is_set():
            takeover.publish(JointState(name=ROBOT.joint_names[:1], position=[float(operator[0])]))
            time.sleep(0.02)

    thread = threading.Thread(target=operate, daemon=True)
    thread.start()
    try:
        engaged.wait(lambda m: m[-1].data is True, timeout=5.0)
        reached = rig.commands.wait(lambda m: abs(forward_positions(m[-1])[0] - operator[0]) < 1e-9, timeout=5.0)
        steps = np.abs(np.diff([forward_positions(m) for m in reached[-40:]], axis=0))
        assert (steps <= np.asarray(ROBOT.max_velocity) / ROBOT.control_rate_hz + 1e-9).all()
        np.testing.assert_allclose(forward_positions(reached[-1])[1:], policy[1:], atol=1e-9)  # joints it left alone
        status = rig.status(lambda s: values(s)["state"] == "intervention")
        assert "operator takeover" in status.message and int(values(status)["takeovers"]) == 1
        rig.publish_chunk(np.tile(policy, (600, 1)))  # the policy keeps planning: received, not executed
        time.sleep(0.2)
        assert abs(forward_positions(rig.commands.last)[0] - operator[0]) < 1e-9
    finally:
        sending.clear()
        thread.join()
    engaged.wait(lambda m: m[-1].data is False, timeout=10.0)  # silent for 1 s: handed back
    rig.commands.wait(lambda m: abs(forward_positions(m[-1])[0] - policy[0]) < 1e-9, timeout=5.0)
    status = rig.status(lambda s: int(values(s)["handbacks"]) >= 1)
    assert float(values(status)["max_handover_jump"]) <= max(ROBOT.max_velocity) / ROBOT.control_rate_hz + 1e-9
    # an explicit release hands back at once; a bad message is refused and the node keeps going
    takeover.publish(JointState(name=ROBOT.joint_names[:1], position=[float(operator[0])]))
    engaged.wait(lambda m: m[-1].data is True, timeout=5.0)
    takeover.publish(JointState())
    engaged.wait(lambda m: m[-1].data is False, timeout=5.0)
    takeover.publish(JointState(name=["no_such_joint"], position=[0.0]))
    status = rig.status(lambda s: "intervention/command" in values(s).get("last_error", ""))
    assert "unknown joint name 'no_such_joint'" in values(status)["last_error"]
    assert engaged.messages[-1].data is False
