"""The embedded arm at sim speed: rendering off the physics thread (a smooth /clock) and a real-time factor, with
the sim waiting for its consumers instead of letting them fall behind in sim time."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
from rclpy.node import Node
from rclpy.parameter import Parameter
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import Image
from std_msgs.msg import Float64MultiArray

from corft_ros.core.sim.pacing import Pacer, PacingConfig
from corft_ros.core.sim.scene import FrameRenderer
from corft_ros.nodes.common import stamp_to_sec
from corft_ros.nodes.sim_arm import SimArmNode

# ---------------------------------------------------------------------------------------------- core: the pacer


def test_wall_pace_follows_the_factor_and_reanchors_when_far_behind():
    pacer = Pacer(PacingConfig(realtime_factor=2.0), camera_period=0.1)
    assert pacer.wall_delay(wall=100.0, sim=0.0) == 0.0  # anchors
    assert pacer.wall_delay(wall=100.0, sim=1.0) == pytest.approx(0.5)  # 1 sim s = 0.5 wall s at 2x
    assert pacer.wall_delay(wall=100.55, sim=1.0) == 0.0  # 50 ms late: made up by the next ticks
    assert pacer.wall_delay(wall=100.55, sim=1.2) == pytest.approx(0.05)
    assert pacer.wall_delay(wall=103.0, sim=1.0) == 0.0  # 2.5 s behind: re-anchor, no sprint
    assert pacer.wall_delay(wall=103.0, sim=1.2) == pytest.approx(0.1)
    assert Pacer(PacingConfig(realtime_factor=0.0), 0.1).wall_delay(5.0, 100.0) == 0.0


def test_physics_never_runs_a_camera_period_past_an_unrendered_frame():
    pacer = Pacer(PacingConfig(realtime_factor=1.0), camera_period=0.1)
    pacer.frame_requested = 10.0
    assert pacer.blocked_by(10.09, wall=0.0) is None
    assert pacer.blocked_by(10.1, wall=0.0) == "renderer"
    pacer.frame_published(10.0)
    assert pacer.blocked_by(10.1, wall=0.0) is None


def test_off_real_time_frames_are_as_fresh_in_sim_time_as_at_real_time():
    """At factor != 1 physics waits for a frame once it is frame_lag (50 ms) past it: faster than real time, images
    must not get older in sim time than rendering makes them at real time (the policy would see staler frames)."""
    pacer = Pacer(PacingConfig(realtime_factor=0.0, frame_lag=0.05), camera_period=0.1)
    pacer.frame_requested = 10.0
    assert pacer.blocked_by(10.04, wall=0.0) is None
    assert pacer.blocked_by(10.05, wall=0.0) == "renderer"


def test_the_policy_is_waited_for_only_off_real_time_and_only_while_it_is_there():
    for factor, waits in ((1.0, False), (0.0, True), (3.0, True)):
        pacer = Pacer(PacingConfig(realtime_factor=factor, policy_lag=0.15), camera_period=0.1)
        pacer.frame_published(20.0)
        assert pacer.blocked_by(20.2, wall=50.0) is None  # no policy has spoken yet: nobody to wait for
        pacer.chunk(19.95, wall=50.0)
        assert (pacer.blocked_by(20.2, wall=50.1) == "policy") is waits
        assert pacer.blocked_by(20.14, wall=50.1) is None  # within the lag an observation may wait
        assert pacer.blocked_by(20.2, wall=53.0) is None  # silent for 3 s: gone, no longer waited for
        pacer.chunk(20.0, wall=53.1)  # a chunk from the observation (or newer) answers it
        assert pacer.blocked_by(20.2, wall=53.1) is None


def test_only_a_per_tick_commander_is_waited_for():
    pacer = Pacer(PacingConfig(realtime_factor=0.0), camera_period=0.1)
    for tick in range(50):  # a 20 Hz teleop: one command every 5 ticks
        pacer.tick_answered(tick % 5 == 0)
    assert not pacer.wait_for_command()
    for tick in range(50):  # the executor's loop, outrun by the sim: it still answers most ticks
        pacer.tick_answered(tick % 5 != 0)
    assert pacer.wait_for_command()
    real_time = Pacer(PacingConfig(realtime_factor=1.0), camera_period=0.1)
    for _ in range(50):
        real_time.tick_answered(True)
    assert not real_time.wait_for_command()  # the world does not wait for a slow controller at real time


def test_a_commander_that_appears_is_waited_for_from_its_first_tick():
    pacer = Pacer(PacingConfig(realtime_factor=0.0), camera_period=0.1)
    for _ in range(50):  # the executor idle between episodes: nothing commands
        pacer.tick_answered(False)
    assert not pacer.wait_for_command()
    pacer.command(wall=10.0)  # the episode starts: the executor's first command
    assert pacer.wait_for_command()  # waited for at once, not only once it has caught up with a sim it cannot see
    waited = 0
    for tick in range(100):  # ... but it is a 20 Hz teleop: one command every 5 ticks
        if tick % 5 == 0:
            pacer.command(wall=10.0 + 0.01 * tick)
        pacer.tick_answered(tick % 5 == 0)
        waited += pacer.wait_for_command()
    assert not pacer.wait_for_command() and waited < 40  # let go after a few dozen ticks
    pacer.command(wall=10.5)  # a command soon after the last one is not a new commander
    assert not pacer.wait_for_command()


def test_bad_factors_are_refused():
    for value in (-1.0, math.inf, math.nan):
        with pytest.raises(ValueError, match="realtime_factor"):
            PacingConfig(realtime_factor=value)


# ---------------------------------------------------------------------------------------------- the node over DDS


def _sim(ros, **params) -> SimArmNode:
    overrides = [Parameter(k, value=v) for k, v in params.items()]
    return ros.add(SimArmNode(context=ros.context, parameter_overrides=overrides))


def _remove(ros, node) -> None:
    ros.executor.remove_node(node)
    time.sleep(0.15)
    ros.remove(node)


def test_a_slow_frame_does_not_stall_the_clock(ros, monkeypatch):
    """Render 60 ms slower than MuJoCo does (fault injection): /clock keeps its 10 ms cadence meanwhile, frames keep
    the stamp of the tick they show. (Rendered on the physics thread, every frame stalled the clock for its cost:
    41% of ticks < 2 ms apart, p99 gap 57 ms.)"""
    real_render = FrameRenderer.render

    def slow_render(self, state, camera):
        time.sleep(0.06)
        return real_render(self, state, camera)

    monkeypatch.setattr(FrameRenderer, "render", slow_render)
    clocks = ros.subscribe(Clock, "/clock", 1000)
    images = ros.subscribe_sensor(Image, "/camera/wrist/image_raw")
    sim = _sim(ros, realtime_factor=1.0, cameras=["wrist"], image_width=16, image_height=16, camera_rate_hz=5.0)
    try:
        images.wait(lambda m: len(m) >= 3, timeout=30.0)
        start = len(clocks.stamps)
        images.clear()
        images.wait(lambda m: len(m) >= 5, timeout=30.0)  # >= 1 s of sim time with frames costing >= 60 ms each
        gaps = np.diff(np.array(clocks.stamps[start:])) * 1e3
        assert gaps.size > 50
        assert float(np.median(gaps)) < 20.0, f"clock median gap {np.median(gaps):.1f} ms"
        # Rendered on the physics thread, every one of the >= 5 frames would stall the clock >= 60 ms; a single
        # long gap can be the test machine's scheduling under load (measured once in CI: 340 ms, beside training)
        stalls = int((gaps >= 55.0).sum())
        assert stalls < 3, f"{stalls} clock gaps >= 55 ms in 5 frames (max {gaps.max():.1f} ms): frames block physics"
        ticks = {c.clock.sec * 10**9 + c.clock.nanosec for c in clocks.messages}
        stamps = [m.header.stamp.sec * 10**9 + m.header.stamp.nanosec for m in images.messages]
        assert set(stamps) <= ticks  # each frame carries the stamp of the tick it was rendered from
        assert np.allclose(np.diff(stamps) * 1e-9, 0.2, atol=1e-6)  # one frame per camera period of sim time
    finally:
        _remove(ros, sim)


@pytest.mark.parametrize("factor", [2.0, 0.5])
def test_sim_seconds_advance_k_times_wall_seconds(ros, factor):
    clocks = ros.subscribe(Clock, "/clock", 1000)
    sim = _sim(ros, realtime_factor=factor, cameras=["wrist"], image_width=16, image_height=16, camera_rate_hz=2.0)
    try:
        clocks.wait(lambda m: len(m) >= 20, timeout=30.0)
        start = len(clocks.messages)
        clocks.wait(lambda m: len(m) > start and clocks.stamps[-1] - clocks.stamps[start] >= 4.0, timeout=30.0)
        # slope of sim time over receive time, fitted over the whole window: one late first or last message (the
        # subscriber's own scheduling under load) does not decide the result
        end = len(clocks.stamps)  # each message is appended before its stamp
        sim_s = np.array([stamp_to_sec(m.clock) for m in clocks.messages[start:end]])
        wall_s = np.array(clocks.stamps[start:end])
        achieved = float(np.polyfit(wall_s - wall_s[0], sim_s - sim_s[0], 1)[0])
        assert achieved == pytest.approx(factor, rel=0.10), f"target {factor}, achieved {achieved:.3f}"
    finally:
        _remove(ros, sim)


def test_episodes_recorded_off_real_time_are_timed_in_sim_seconds(ros, tmp_path):
    """At a factor other than 1 the logger stamps messages and the episode with its node clock (sim time), as
    `ros2 bag record --use-sim-time` does: log times and header stamps agree, durations are sim seconds."""
    from rclpy.serialization import deserialize_message
    from ros_harness import wait_until
    from sensor_msgs.msg import JointState
    from std_srvs.srv import Trigger

    from corft_ros.core.episodes import EpisodeBag, find_bags, load_episode_metadata
    from corft_ros.nodes.episode_logger import EpisodeLoggerNode

    sim = _sim(ros, realtime_factor=2.0, cameras=["wrist"], image_width=16, image_height=16, camera_rate_hz=2.0)
    logger = ros.add(EpisodeLoggerNode(context=ros.context, parameter_overrides=[
        Parameter("output_dir", value=str(tmp_path)), Parameter("use_sim_time", value=True),
        Parameter("topics", value=["joint_states"]), Parameter("optional_topics", value=[""]),
        Parameter("source", value="scripted")]))
    try:
        clocks = ros.subscribe(Clock, "/clock", 1000)
        clocks.wait(lambda m: len(m) >= 20, timeout=30.0)
        assert ros.call(Trigger, "/corft/episode/start", Trigger.Request()).success
        time.sleep(2.0)
        assert ros.call(Trigger, "/corft/episode/stop", Trigger.Request()).success
        wait_until(lambda: find_bags(tmp_path), timeout=20.0, what="the episode's bag")
        bag = find_bags(tmp_path)[0]
        wait_until(lambda: (bag / "metadata.yaml").is_file(), timeout=20.0, what="the bag's metadata")
        meta = load_episode_metadata(bag.parent)
        duration = (meta["stop_ns"] - meta["start_ns"]) / 1e9
        gaps, stamps = [], []
        with EpisodeBag(bag, canonical_names=True) as reader:
            for msg in reader.messages({"/joint_states"}):
                header = deserialize_message(msg.data, JointState).header
                stamps.append(header.stamp.sec * 10**9 + header.stamp.nanosec)
                gaps.append(msg.log_time_ns - stamps[-1])
        assert len(gaps) > 100
        assert abs(float(np.median(gaps))) < 0.1e9  # log time and header stamp on the same (sim) clock
        sim_span = (stamps[-1] - stamps[0]) / 1e9
        assert duration == pytest.approx(sim_span, abs=0.3)  # the episode lasted this many sim seconds
        assert duration > 3.0  # > 2 s of wall time at 2x (wall-clock stamps would give ~2)
    finally:
        _remove(ros, logger)
        _remove(ros, sim)


class _EchoCommander(Node):
    """A per-tick commander that answers every /clock message at once (a fast executor): hold the home pose."""

    def __init__(self, **kwargs) -> None:
        super().__init__("echo_commander", **kwargs)
        from corft_ros.core import topics
        from corft_ros.core.robot import load_robot_config

        self.command = Float64MultiArray(data=load_robot_config().home_array.tolist())
        self.pub = self.create_publisher(Float64MultiArray, topics.controller_commands(topics.FORWARD_CONTROLLER), 10)
        self.create_subscription(Clock, "/clock", lambda _msg: self.pub.publish(self.command), 10)


def test_a_fast_executor_answer_is_never_missed(ros):
    """Off real time the sim waits for the command answering each tick. An answer that arrived before the sim had
    finished the tick's own work was once not counted: the sim then waited executor_wait_s (50 ms) for a command only
    the next tick could bring (measured: 6.6% of the deploy graph's ticks, the factor-0 graph at 1.0-1.2x)."""
    from ros_harness import wait_until

    clocks = ros.subscribe(Clock, "/clock", 5000)
    sim = _sim(ros, realtime_factor=0.0, cameras=["wrist"], image_width=16, image_height=16, camera_rate_hz=10.0)
    commander = ros.add(_EchoCommander(context=ros.context))
    try:
        wait_until(lambda: sim.pacer.wait_for_command() and sim.pacer.waits["executor"] > 100, timeout=60.0,
                   what="the sim waiting for the commander's answers")
        start, unanswered0 = len(clocks.stamps), sim.pacer.unanswered
        clocks.wait(lambda m: len(m) >= start + 1000, timeout=120.0)
        gaps = np.diff(np.array(clocks.stamps[start:start + 1000]))
        waited_out = int(np.sum(gaps > 0.9 * sim.pacer.config.executor_wait_s))
        # a loaded machine may stall a few ticks that long; the defect stalled one in 15
        assert waited_out <= 20, f"{waited_out} of 999 clock gaps >= executor_wait_s: answers were missed"
        assert sim.pacer.unanswered - unanswered0 <= 20
    finally:
        _remove(ros, commander)
        _remove(ros, sim)
