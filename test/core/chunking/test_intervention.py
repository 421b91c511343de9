"""Operator takeover in the executor's core (issue 28, Build 1): while a takeover source sends targets the arm
follows them through the same safety filter instead of the policy's chunks (which are still received); a release or
a silent source hands back; e-stop and idle win; both handovers stay within one velocity step."""

from __future__ import annotations

import math

import numpy as np
import pytest

from corft_ros.core.chunking import Chunk, ChunkError, ChunkExecutor, ExecutorConfig, TickState
from corft_ros.core.robot import ConfigError, load_robot_config

ROBOT = load_robot_config()
HOME = np.array(ROBOT.home)
T0 = 1_700_000_000.0
PERIOD = 0.01
STEP = np.asarray(ROBOT.max_velocity) * PERIOD  # the most a joint may move in one tick


def chunk(stamp: float, rows: np.ndarray) -> Chunk:
    return Chunk(stamp=stamp, dt=PERIOD, positions=np.asarray(rows, dtype=np.float64), start=stamp)


def tracking(timeout: float = 0.25) -> ChunkExecutor:
    """An executor tracking a slow policy chunk for ten ticks (times T0 .. T0 + 0.09)."""
    core = ChunkExecutor(ROBOT, ExecutorConfig(control_period=PERIOD, mode="latest", staleness_timeout=10.0,
                                               intervention_timeout=timeout))
    core.measured(HOME)
    core.submit(chunk(T0, HOME + np.linspace(0, 0.2, 300)[:, None] * (np.arange(7) < 6)), T0)
    for step in range(10):
        assert core.tick(core.grid.slot_of(T0 + step * PERIOD), T0 + step * PERIOD).state is TickState.TRACKING
    return core


def run(core: ChunkExecutor, start: int, stop: int, operator=None) -> list:
    """Ticks start..stop-1 (times T0 + i·PERIOD); `operator(i)` gives a takeover target sent before tick i."""
    ticks = []
    for i in range(start, stop):
        now = T0 + i * PERIOD
        if operator is not None and (target := operator(i)) is not None:
            core.intervene(target, now)
        ticks.append(core.tick(core.grid.slot_of(now), now))
    return ticks


def test_a_takeover_drives_the_arm_to_the_operators_targets_and_hands_back_on_release():
    core = tracking()
    far = HOME.copy()
    far[0] += 0.5  # further than one step: the takeover must not jump there
    before = list(core.safety.last)
    taken = run(core, 10, 60, operator=lambda i: far)
    assert all(t.state is TickState.INTERVENTION for t in taken)
    first = np.asarray(taken[0].command)
    assert (np.abs(first - before) <= STEP + 1e-12).all()  # no jump at the takeover
    np.testing.assert_allclose(taken[-1].command, far, atol=1e-9)  # reached within the velocity limits
    accepted = core.stats.chunks_accepted
    core.submit(chunk(T0 + 0.595, np.tile(HOME, (300, 1))), T0 + 0.595)  # the policy keeps planning: received
    assert core.stats.chunks_accepted == accepted + 1
    assert run(core, 60, 61, operator=lambda i: far)[0].state is TickState.INTERVENTION  # ...but not executed
    core.release()
    back = run(core, 61, 120)
    assert back[0].state is TickState.TRACKING
    assert (np.abs(np.asarray(back[0].command) - far) <= STEP + 1e-12).all()  # no jump at the hand-back
    np.testing.assert_allclose(back[-1].command, HOME, atol=1e-9)  # the policy's chunk again
    report = core.report()
    assert report.takeovers == 1 and report.handbacks == 1 and report.intervention_ticks == 51
    assert 0 < report.max_handover_jump <= STEP.max() + 1e-12


def test_a_silent_source_hands_back_after_the_timeout():
    core = tracking(timeout=0.05)
    target = HOME + 0.01
    ticks = run(core, 10, 40, operator=lambda i: target if i < 20 else None)  # the source stops at tick 19
    states = [t.state for t in ticks]
    assert states[:10] == [TickState.INTERVENTION] * 10
    assert states[10:15] == [TickState.INTERVENTION] * 5  # 0.05 s of silence are tolerated (ticks 20-24)
    assert all(s is TickState.TRACKING for s in states[16:])  # then the policy again
    assert core.report().handbacks == 1
    assert not core.intervening(T0 + 0.4)


def test_estop_and_idle_win_over_a_takeover_and_nan_joints_hold():
    core = tracking()
    target = HOME + 0.02
    target[2] = math.nan  # the operator says nothing about this joint: it holds
    held_joint = core.safety.last[2]
    ticks = run(core, 10, 20, operator=lambda i: target)
    assert ticks[-1].state is TickState.INTERVENTION and ticks[-1].command[2] == held_joint
    core.set_estop(True)
    held = list(core.safety.last)
    ticks = run(core, 20, 30, operator=lambda i: target)
    assert all(t.state is TickState.ESTOP and t.command == held for t in ticks)
    core.set_estop(False)
    assert run(core, 30, 31, operator=lambda i: target)[0].state is TickState.INTERVENTION
    core.end_episode()
    ticks = run(core, 31, 40, operator=lambda i: target)
    assert all(t.state is TickState.IDLE for t in ticks) and ticks[1].command is None


def test_bad_takeover_input_is_refused_in_one_line():
    core = tracking()
    with pytest.raises(ChunkError, match="intervention target has 3 joints, the robot 7"):
        core.intervene([0.0, 0.0, 0.0], T0)
    with pytest.raises(ConfigError, match="intervention_timeout must be a positive number"):
        ExecutorConfig(control_period=PERIOD, intervention_timeout=0.0)
