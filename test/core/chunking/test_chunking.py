"""Unit tests of the chunk executor's core: ensembling against ACT's formula written out, the other modes,
interpolation, safety (clamps, rejections, staleness, e-stop) and loop statistics. No ROS."""

from __future__ import annotations

import math

import numpy as np
import pytest

from corft_ros.core.chunking import (
    Chunk,
    ChunkError,
    ChunkExecutor,
    ExecutorConfig,
    LoopStats,
    TickState,
    make_chunk,
)
from corft_ros.core.robot import ConfigError, load_robot_config

ROBOT = load_robot_config()
DOF = ROBOT.dof
HOME = np.array(ROBOT.home)
MID = HOME.copy()
MID[6] = 0.4  # home has the gripper on its lower limit; random chunks around MID stay inside the limits
T0 = 1_700_000_000.0  # an epoch-like clock, as on a real system: float seconds resolve ~0.24 µs, hence atol 1e-6
EPS = 1e-6


def chunk(stamp: float, rows: np.ndarray, dt: float) -> Chunk:
    return Chunk(stamp=stamp, dt=dt, positions=np.asarray(rows, dtype=np.float64), start=stamp)


def executor(mode: str = "temporal_ensembling", period: float = 0.01, measured: np.ndarray = HOME,
             **kw) -> ChunkExecutor:
    kw.setdefault("staleness_timeout", 10.0)
    core = ChunkExecutor(ROBOT, ExecutorConfig(control_period=period, mode=mode, **kw))
    core.measured(measured)
    return core


def gentle(rng: np.random.Generator, h: int, scale: float = 0.002) -> np.ndarray:
    """A chunk near MID whose steps stay far below the velocity limits (so safety does not alter it)."""
    return MID + np.cumsum(rng.normal(0.0, scale, size=(h, DOF)), axis=0)


# ---- an independent, written-out ACT temporal ensembling ----------------------------------------------------
def act_reference(arrived: list[tuple[float, Chunk]], t: float, m: float) -> np.ndarray | None:
    """ACT's rule at time t: every chunk already received that covers t contributes its action for t,
    weight exp(-m*i) with i = 0 the oldest prediction; weighted mean. Action i of a chunk applies at
    start + i*dt; between points the action is linear in time; the last holds for one dt."""
    actions = []
    for received_at, c in sorted(arrived, key=lambda item: item[1].stamp):
        if received_at > t + EPS:
            continue
        if not c.start - EPS <= t < c.start + c.horizon * c.dt - EPS:
            continue
        u = max((t - c.start) / c.dt, 0.0)
        i = int(math.floor(u + 1e-9))
        if i >= c.horizon - 1:
            actions.append(c.positions[-1])
        else:
            frac = u - i
            actions.append((1 - frac) * c.positions[i] + frac * c.positions[i + 1])
    if not actions:
        return None
    exponents = np.array([-m * i for i in range(len(actions))])
    weights = np.exp(exponents - exponents.max())  # shift for m < 0; the normalised mean is unchanged
    weights /= weights.sum()
    return (weights[:, None] * np.array(actions)).sum(axis=0)


def act_array_reference(chunks_by_step: dict[int, np.ndarray], step: int, m: float) -> np.ndarray:
    """ACT's own bookkeeping, discretised (control dt = chunk dt, a query at integer steps): a table of every
    query's actions per future step; at `step` take the populated rows, weights exp(-m*arange), normalise."""
    horizon = next(iter(chunks_by_step.values())).shape[0]
    table = np.zeros((step + 1, step + 1 + horizon, DOF))
    populated = np.zeros((step + 1, step + 1 + horizon), dtype=bool)
    for query, actions in chunks_by_step.items():
        if query <= step:
            table[query, query:query + horizon] = actions
            populated[query, query:query + horizon] = True
    rows = table[:, step][populated[:, step]]
    weights = np.exp(-m * np.arange(len(rows)))
    weights = weights / weights.sum()
    return (rows * weights[:, None]).sum(axis=0)


@pytest.mark.parametrize("m", [0.01, 0.0, 0.5, -0.3])
def test_temporal_ensembling_matches_acts_table_when_queried_every_step(m):
    rng = np.random.default_rng(1)
    period, h = 0.02, 12
    core = executor(period=period, m=m, measured=MID)
    queries: dict[int, np.ndarray] = {}
    for step in range(40):
        now = T0 + step * period
        queries[step] = gentle(rng, h)
        core.submit(chunk(now, queries[step], period), now)
        tick = core.tick(core.grid.slot_of(now), now)
        np.testing.assert_allclose(tick.command, act_array_reference(queries, step, m), atol=1e-6)
        assert tick.state is TickState.TRACKING


@pytest.mark.parametrize("m", [0.01, 0.2, -0.2, -40.0])
@pytest.mark.parametrize("chunk_dt", [0.01, 0.05, 0.03])
def test_temporal_ensembling_with_delays_gaps_and_interpolation_matches_the_written_out_formula(m, chunk_dt):
    """Chunks stamped at observation times off the control grid, arriving 0–45 ms late, with skipped queries
    and a gap no chunk covers; control period 10 ms, chunk dt equal to it or not (interpolation)."""
    rng = np.random.default_rng(7)
    period, h = 0.01, 8
    core = executor(period=period, m=m, measured=MID)
    arrivals: list[tuple[float, Chunk]] = []
    pending: list[tuple[float, Chunk]] = []
    query_times = [0.003, 0.021, 0.049, 0.052, 0.118, 0.125, 0.161]  # 0.052 → 0.118: a gap
    query_times += [0.6 + 0.027 * i for i in range(8)]  # after a long gap: no chunk covers 0.3–0.6 s
    for t in query_times:
        latency = float(rng.uniform(0.0, 0.045))
        pending.append((T0 + t + latency, chunk(T0 + t, gentle(rng, h, scale=0.0005), chunk_dt)))
    pending.sort(key=lambda item: item[0])
    compared = held = rejected = 0
    for step in range(int(0.9 / period)):
        now = T0 + step * period
        while pending and pending[0][0] <= now:
            received_at, c = pending.pop(0)
            try:
                core.submit(c, received_at)
                arrivals.append((received_at, c))
            except ChunkError as exc:  # overtaken by a newer chunk, or entirely in the past on arrival
                assert "not newer than the last chunk" in str(exc) or "already in the past" in str(exc)
                rejected += 1
        before = list(core.safety.last)
        tick = core.tick(core.grid.slot_of(now), now)
        expected = act_reference(arrivals, now, m)
        if expected is None:
            assert tick.state in (TickState.UNDERRUN, TickState.WAITING)
            assert tick.command == before  # holding, never a jump
            held += 1
        else:
            assert tick.state is TickState.TRACKING
            np.testing.assert_allclose(tick.command, expected, atol=1e-6)
            compared += 1
    assert compared > 20 and held >= 1 and len(arrivals) >= 10 and len(arrivals) + rejected == len(query_times)


def test_ensembling_weighs_the_oldest_prediction_most_by_default():
    period = 0.01
    core = executor(period=period, m=1.0)
    old = np.tile(HOME, (20, 1))
    new = old + 0.001
    core.submit(chunk(T0, old, period), T0)
    core.submit(chunk(T0 + 0.005, new, period), T0 + 0.005)
    tick = core.tick(core.grid.slot_of(T0 + 0.01), T0 + 0.01)
    w_old, w_new = 1.0, math.exp(-1.0)
    expected = (w_old * old[0] + w_new * new[0]) / (w_old + w_new)
    np.testing.assert_allclose(tick.command, expected, atol=1e-12)
    assert np.all(np.asarray(tick.command) < HOME + 0.0005)  # nearer the old chunk


def test_long_chunks_grow_the_ensembling_ring():
    period = 0.01
    core = executor(period=period, m=0.01)
    rows = HOME + np.linspace(0, 0.01, 400)[:, None]  # 400 actions at 10 ms: 4 s, beyond the 512-slot ring
    core.submit(chunk(T0, rows, period), T0)
    core.submit(chunk(T0 + 1.0, rows + 0.001, period), T0 + 0.5)
    for step in (0, 150, 399):
        now = T0 + step * period
        got = core.tick(core.grid.slot_of(now), now).command
        arrived = [(T0, chunk(T0, rows, period)), (T0 + 0.5, chunk(T0 + 1.0, rows + 0.001, period))]
        np.testing.assert_allclose(got, act_reference(arrived, now, 0.01), atol=1e-6)


# ---- the other modes ------------------------------------------------------------------------------------------
def ramp(value: float, h: int) -> np.ndarray:
    """Row i = home + value + 0.001*i (each chunk recognisable by value, each action by i)."""
    return HOME + value + 0.001 * np.arange(h)[:, None]


def run_mode(mode: str, period: float = 0.01, ticks: int = 30, **kw) -> list[float]:
    """Chunk A (value 0.01) at t=0, chunk B (0.02) at t=0.05 s, both h=10 at dt=period; joint 0 of each tick."""
    core = executor(mode, period=period, **kw)
    a, b = chunk(T0, ramp(0.01, 10), period), chunk(T0 + 0.05, ramp(0.02, 10), period)
    out = []
    for step in range(ticks):
        now = T0 + step * period
        if step == 0:
            core.submit(a, now)
        if step == 5:
            core.submit(b, now)
        tick = core.tick(core.grid.slot_of(now), now)
        out.append(round(tick.command[0] - HOME[0], 6))
    return out


def test_latest_switches_to_the_newest_chunk_at_once():
    got = run_mode("latest", ticks=16)
    expected = [0.01 + 0.001 * i for i in range(5)] + [0.02 + 0.001 * i for i in range(10)] + [0.029]
    assert got == pytest.approx(expected)  # after B ends: hold its last command


def test_open_loop_plays_a_chunk_to_its_end_then_the_newest_time_aligned():
    got = run_mode("open_loop", ticks=16)
    # A's 10 actions (t = 0..0.09), then B from its action for t = 0.10, i.e. index 5
    expected = [0.01 + 0.001 * i for i in range(10)] + [0.02 + 0.001 * i for i in range(5, 10)] + [0.029]
    assert got == pytest.approx(expected)


def test_receding_horizon_plays_k_actions_then_switches_to_the_newest():
    got = run_mode("receding_horizon", ticks=16, k=7)
    # A's first 7 actions (B is newer from t=0.05 but A keeps going until its k-th), then B at index 2
    expected = [0.01 + 0.001 * i for i in range(7)] + [0.02 + 0.001 * i for i in range(2, 10)] + [0.029]
    assert got == pytest.approx(expected)


def test_receding_horizon_keeps_playing_without_a_newer_chunk():
    got = run_mode("receding_horizon", ticks=5, k=2)
    assert got == pytest.approx([0.01 + 0.001 * i for i in range(5)])


@pytest.mark.parametrize("mode", ["latest", "open_loop", "receding_horizon", "temporal_ensembling"])
def test_every_mode_interpolates_between_chunk_points(mode):
    period, dt = 0.01, 0.05
    core = executor(mode, period=period)
    rows = np.tile(HOME, (3, 1))
    rows[1, 2] += 0.05
    rows[2, 2] += 0.10
    core.submit(chunk(T0 + 0.002, rows, dt), T0 + 0.002)  # off-grid stamp
    values = []
    for step in range(1, 16):
        now = T0 + step * period
        values.append(core.tick(core.grid.slot_of(now), now).command[2] - HOME[2])
    t = np.arange(1, 16) * period - 0.002
    expected = np.where(t < 0.1, t / dt * 0.05, 0.10)  # linear to the last point, which holds for one dt
    np.testing.assert_allclose(values, expected, atol=1e-6)


# ---- safety ------------------------------------------------------------------------------------------------
def test_position_limits_clamp_and_count():
    period = 0.01
    core = executor("latest", period=period)
    target = HOME.copy()
    target[6] = 5.0  # finger_joint upper limit is 0.8
    core.submit(chunk(T0, np.tile(target, (100, 1)), period), T0)
    commands = [core.tick(core.grid.slot_of(T0 + s * period), T0 + s * period).command for s in range(60)]
    assert max(c[6] for c in commands) == pytest.approx(0.8)
    assert all(c[6] <= 0.8 for c in commands)
    assert core.safety.position_clamps == 60
    np.testing.assert_allclose(commands[-1][:6], HOME[:6])


def test_velocity_limits_clamp_steps_per_joint_and_count():
    period = 0.01
    core = executor("latest", period=period)
    target = HOME.copy()
    target[0] += 1.0  # 1 rad away; shoulder_pan max_velocity 3.14 rad/s → 0.0314 rad per tick
    core.submit(chunk(T0, np.tile(target, (100, 1)), period), T0)
    previous = HOME.copy()
    for step in range(40):
        now = T0 + step * period
        command = np.asarray(core.tick(core.grid.slot_of(now), now).command)
        assert abs(command[0] - previous[0]) <= 3.14 * period + 1e-12
        previous = command
    assert previous[0] == pytest.approx(target[0])  # got there, at the limit's pace (1 / 0.0314 ≈ 32 ticks)
    assert core.safety.velocity_clamps >= 31


def test_no_command_ever_leaves_the_limits_whatever_the_chunks():
    rng = np.random.default_rng(3)
    period = 0.01
    lower, upper, vmax = ROBOT.lower, ROBOT.upper, ROBOT.max_velocity
    for mode in ("temporal_ensembling", "open_loop", "receding_horizon", "latest"):
        core = executor(mode, period=period, m=-0.5)
        previous = np.asarray(core.safety.last)
        for step in range(300):
            now = T0 + step * period
            if step % 7 == 0:
                wild = rng.normal(0.0, 8.0, size=(20, DOF)) * rng.choice([0.0, 1.0, 100.0], size=(20, DOF))
                core.submit(chunk(now - 0.003, wild, float(rng.choice([0.01, 0.03, 0.05]))), now)
            command = np.asarray(core.tick(core.grid.slot_of(now), now).command)
            assert np.all(command >= lower) and np.all(command <= upper), mode
            assert np.all(np.abs(command - previous) <= vmax * period + 1e-9), mode
            previous = command


def test_hold_position_from_an_out_of_limits_measurement_is_clamped_into_the_limits():
    core = ChunkExecutor(ROBOT, ExecutorConfig(control_period=0.01))
    measured = HOME.copy()
    measured[6] = 0.81  # a gripper a hair past its limit
    core.measured(measured)
    tick = core.tick(core.grid.slot_of(T0), T0)
    assert tick.state is TickState.WAITING and tick.command[6] == pytest.approx(0.8)


def test_nothing_is_commanded_before_a_measured_state():
    core = ChunkExecutor(ROBOT, ExecutorConfig(control_period=0.01))
    tick = core.tick(core.grid.slot_of(T0), T0)
    assert tick.state is TickState.NO_STATE and tick.command is None


# ---- chunk validation: one line naming stamp and field -----------------------------------------------------
NAMES = ROBOT.joint_names
GOOD_TIMES = [0.0, 0.05, 0.10]
GOOD_ROWS = [list(ROBOT.home)] * 3


@pytest.mark.parametrize(
    ("names", "times", "rows", "stamp", "needle"),
    [
        (NAMES, GOOD_TIMES, [list(ROBOT.home), [math.nan] + list(ROBOT.home[1:]), list(ROBOT.home)], T0,
         "points[1].positions[0] (shoulder_pan_joint) is nan"),
        (NAMES, GOOD_TIMES, [list(ROBOT.home[:6]) + [math.inf]] * 3, T0,
         "points[0].positions[6] (finger_joint) is inf"),
        (NAMES[:6] + ["tail_joint"], GOOD_TIMES, GOOD_ROWS, T0, "joint_names: unknown joint name 'tail_joint'"),
        (NAMES[:6], GOOD_TIMES, [list(ROBOT.home[:6])] * 3, T0, "joint_names lacks finger_joint"),
        (NAMES[:6] + [NAMES[0]], GOOD_TIMES, GOOD_ROWS, T0, "appears twice"),
        (NAMES, [0.0, 0.10, 0.05], GOOD_ROWS, T0, "points[2].time_from_start 0.050000 s is not after points[1]"),
        (NAMES, [0.0, 0.05, 0.05], GOOD_ROWS, T0, "points[2].time_from_start"),
        (NAMES, [0.0, 0.05, 0.20], GOOD_ROWS, T0, "breaks the even spacing"),
        (NAMES, GOOD_TIMES, [list(ROBOT.home)] * 2 + [list(ROBOT.home[:6])], T0, "points[2].positions has 6 values"),
        (NAMES, [], [], T0, "points is empty"),
        (NAMES, GOOD_TIMES, GOOD_ROWS, 0.0, "header.stamp is 0.0"),
    ],
)
def test_bad_chunks_are_rejected_with_the_stamp_and_field_named(names, times, rows, stamp, needle):
    with pytest.raises(ChunkError) as info:
        make_chunk(ROBOT, stamp, names, times, rows, default_dt=0.05)
    message = str(info.value)
    assert needle in message
    assert f"chunk stamped {stamp:.6f}" in message
    assert "\n" not in message


def test_chunks_are_mapped_by_name_into_canonical_order():
    names = list(reversed(NAMES))
    rows = [[float(i) * 0.01 for i in range(DOF)]] * 2
    c = make_chunk(ROBOT, T0, names, [0.0, 0.1], rows)
    np.testing.assert_allclose(c.positions[0], list(reversed(rows[0])))
    assert c.dt == pytest.approx(0.1) and c.start == T0


def test_single_point_chunk_uses_the_default_dt_and_time_offset_shifts_the_start():
    c = make_chunk(ROBOT, T0, NAMES, [0.2], [list(ROBOT.home)], default_dt=0.05)
    assert c.dt == 0.05 and c.start == pytest.approx(T0 + 0.2)


def test_late_out_of_order_and_future_chunks_are_refused_and_counted():
    period = 0.01
    core = executor("latest", period=period, staleness_timeout=0.5, max_lead=1.0)
    core.submit(chunk(T0, np.tile(HOME, (5, 1)), period), T0 + 0.01)
    with pytest.raises(ChunkError, match="not newer than the last chunk"):
        core.submit(chunk(T0 - 0.01, np.tile(HOME, (5, 1)), period), T0 + 0.02)
    with pytest.raises(ChunkError, match="already in the past"):
        core.submit(chunk(T0 + 0.001, np.tile(HOME, (2, 1)), period), T0 + 0.2)
    with pytest.raises(ChunkError, match="in the future"):
        core.submit(chunk(T0 + 5.0, np.tile(HOME, (2, 1)), period), T0 + 0.2)
    with pytest.raises(ChunkError, match="s old"):
        core.submit(chunk(T0 + 0.1, np.tile(HOME, (100, 1)), period), T0 + 0.7)
    assert core.stats.chunks_accepted == 1 and core.stats.chunks_rejected == 4


# ---- staleness, e-stop, clear --------------------------------------------------------------------------------
def test_stale_chunks_make_the_executor_hold_within_the_timeout():
    period = 0.01
    core = executor("latest", period=period, staleness_timeout=0.2)
    rows = HOME + np.linspace(0.0, 0.3, 200)[:, None]  # a 2 s chunk moving slowly: still covering when stale
    core.submit(chunk(T0, rows, period), T0)
    states, commands = [], []
    for step in range(40):
        now = T0 + step * period
        tick = core.tick(core.grid.slot_of(now), now)
        states.append(tick.state)
        commands.append(tick.command)
    assert all(s is TickState.TRACKING for s in states[:20])  # 0.19 s old at most
    assert all(s is TickState.STALE for s in states[21:])  # 0.21 s > 0.2 s (tick 20 is on the boundary)
    assert all(c == commands[21] for c in commands[21:])
    assert core.stats.stale_holds in (19, 20)


def tracked_for_ten_ticks(period: float) -> tuple[ChunkExecutor, list[float]]:
    """A `latest` executor that has tracked a slow chunk for ten ticks, and its last command."""
    core = executor("latest", period=period)
    core.submit(chunk(T0, HOME + np.linspace(0, 0.2, 100)[:, None], period), T0)
    for step in range(10):
        core.tick(core.grid.slot_of(T0 + step * period), T0 + step * period)
    return core, list(core.safety.last)


def test_estop_latches_a_hold_until_released_and_drops_the_plan():
    period = 0.01
    core, held = tracked_for_ten_ticks(period)
    core.set_estop(True)
    # a chunk arriving during the e-stop is buffered but never played...
    core.submit(chunk(T0 + 0.1, np.tile(HOME + 0.1, (50, 1)), period), T0 + 0.1)
    for step in range(10, 30):
        tick = core.tick(core.grid.slot_of(T0 + step * period), T0 + step * period)
        assert tick.state is TickState.ESTOP and tick.command == held
    core.set_estop(False)  # ...and released: the buffered plan is dropped, hold until a new chunk
    tick = core.tick(core.grid.slot_of(T0 + 0.3), T0 + 0.3)
    assert tick.state is TickState.WAITING and tick.command == held
    core.submit(chunk(T0 + 0.305, np.tile(HOME + 0.01, (50, 1)), period), T0 + 0.305)
    assert core.tick(core.grid.slot_of(T0 + 0.31), T0 + 0.31).state is TickState.TRACKING


def test_clear_drops_the_buffer_and_rebases_on_the_next_measured_state():
    period = 0.01
    core = executor("temporal_ensembling", period=period)
    core.submit(chunk(T0, np.tile(HOME + 0.01, (50, 1)), period), T0)
    assert core.tick(core.grid.slot_of(T0), T0).state is TickState.TRACKING
    core.clear(rebase=True)
    assert core.wants_measurement
    tick = core.tick(core.grid.slot_of(T0 + 0.01), T0 + 0.01)
    assert tick.state is TickState.WAITING  # holding the last command until the measurement arrives
    reset_pose = HOME + 0.3  # e.g. the sim was reset elsewhere
    core.measured(reset_pose)
    tick = core.tick(core.grid.slot_of(T0 + 0.02), T0 + 0.02)
    np.testing.assert_allclose(tick.command, np.clip(reset_pose, ROBOT.lower, ROBOT.upper))


def test_between_episodes_the_executor_sends_one_hold_then_nothing_and_ignores_chunks():
    period = 0.01
    core, held = tracked_for_ten_ticks(period)
    core.end_episode()
    tick = core.tick(core.grid.slot_of(T0 + 0.1), T0 + 0.1)
    assert tick.state is TickState.IDLE and tick.command == held  # a trajectory controller stops here
    assert core.submit(chunk(T0 + 0.1, np.tile(HOME + 0.1, (50, 1)), period), T0 + 0.1) == 0  # a policy still running
    for step in range(11, 40):
        tick = core.tick(core.grid.slot_of(T0 + step * period), T0 + step * period)
        assert tick.state is TickState.IDLE and tick.command is None
    assert core.stats.chunks_ignored == 1 and core.stats.chunks_rejected == 0 and core.stats.chunks_accepted == 1
    core.start_episode(T0 + 0.395)
    tick = core.tick(core.grid.slot_of(T0 + 0.4), T0 + 0.4)
    assert tick.state is TickState.NO_STATE and tick.command is None  # never the pre-reset command
    reset_pose = HOME + 0.05  # where the arm is now (reset elsewhere)
    core.measured(reset_pose)
    tick = core.tick(core.grid.slot_of(T0 + 0.41), T0 + 0.41)
    assert tick.state is TickState.WAITING
    np.testing.assert_allclose(tick.command, np.clip(reset_pose, ROBOT.lower, ROBOT.upper))
    # a chunk the running policy planned from an observation before the start (the arm before its reset)
    assert core.submit(chunk(T0 + 0.39, np.tile(HOME + 0.1, (50, 1)), period), T0 + 0.412) == 0
    assert core.stats.chunks_ignored == 2 and core.stats.chunks_rejected == 0
    tick = core.tick(core.grid.slot_of(T0 + 0.413), T0 + 0.413)
    assert tick.state is TickState.WAITING
    np.testing.assert_allclose(tick.command, np.clip(reset_pose, ROBOT.lower, ROBOT.upper))
    core.submit(chunk(T0 + 0.415, np.tile(reset_pose, (50, 1)), period), T0 + 0.415)
    assert core.tick(core.grid.slot_of(T0 + 0.42), T0 + 0.42).state is TickState.TRACKING


def test_start_idle_commands_nothing_until_the_first_episode_starts():
    period = 0.01
    core = executor("latest", period=period, start_idle=True)  # measured HOME already
    core.submit(chunk(T0, np.tile(HOME + 0.1, (50, 1)), period), T0)
    for step in range(20):
        tick = core.tick(core.grid.slot_of(T0 + step * period), T0 + step * period)
        assert tick.state is TickState.IDLE and tick.command is None
    core.start_episode()
    core.measured(HOME)
    tick = core.tick(core.grid.slot_of(T0 + 0.2), T0 + 0.2)
    assert tick.state is TickState.WAITING and tick.command == list(HOME)


def test_the_clock_going_back_clears_the_buffer():
    period = 0.01
    core = executor("latest", period=period)
    core.submit(chunk(T0, np.tile(HOME + 0.01, (50, 1)), period), T0)
    core.tick(core.grid.slot_of(T0 + 0.05), T0 + 0.05)
    tick = core.tick(core.grid.slot_of(T0 - 5.0), T0 - 5.0)
    assert tick.state is TickState.WAITING and len(core.buffer) == 0


# ---- jtc plan ----------------------------------------------------------------------------------------------
def test_plan_starts_one_period_ahead_and_is_limited():
    period, dt = 0.01, 0.05
    core = executor("temporal_ensembling", period=period)
    rows = HOME + np.linspace(0, 2.0, 20)[:, None]  # too fast for the velocity limits
    rows[:, 6] = np.linspace(0, 3.0, 20)  # beyond the gripper's limit
    core.submit(chunk(T0, rows, dt), T0)
    core.tick(core.grid.slot_of(T0), T0)
    plan = core.plan(spacing=dt, max_points=100)
    offsets = [offset for offset, _ in plan]
    assert offsets[0] == pytest.approx(period)
    np.testing.assert_allclose(np.diff(offsets), dt)
    assert offsets[-1] <= 20 * dt
    previous, last_offset = np.asarray(core.safety.last), 0.0
    for offset, point in plan:
        point = np.asarray(point)
        assert np.all(point >= ROBOT.lower) and np.all(point <= ROBOT.upper)
        assert np.all(np.abs(point - previous) <= ROBOT.max_velocity * (offset - last_offset) + 1e-9)
        previous, last_offset = point, offset


def test_plan_while_holding_is_one_point_one_period_ahead():
    core = executor("latest", period=0.01)
    core.tick(core.grid.slot_of(T0), T0)
    plan = core.plan(spacing=0.05)
    assert len(plan) == 1 and plan[0][0] == pytest.approx(0.01)
    np.testing.assert_allclose(plan[0][1], np.clip(HOME, ROBOT.lower, ROBOT.upper))


# ---- statistics and configuration ----------------------------------------------------------------------------
def test_loop_stats_period_error_percentiles_and_switch_jumps():
    stats = LoopStats(nominal_period=0.01, window=1000)
    times = np.cumsum([0.0] + [0.0105 if i % 10 == 9 else 0.01 for i in range(100)])  # every 10th 0.5 ms long
    for t in times:
        stats.tick(float(t))
    stats.target([0.0] * 3, source=1)
    stats.target([0.1, 0.0, 0.0], source=1)  # same chunk: not a switch
    stats.target([0.1, -0.3, 0.0], source=2)
    report = stats.report()
    assert report.period_error_max_ms == pytest.approx(0.5, abs=1e-6)
    assert report.period_error_p50_ms == pytest.approx(0.0, abs=1e-6)
    assert report.chunk_switches == 1 and report.max_switch_jump == pytest.approx(0.3)
    assert report.period_error_p99_ms == pytest.approx(0.5, abs=1e-6)
    assert report.rate_hz == pytest.approx(100 / (times[-1] - times[0]))


def test_underruns_are_counted_after_the_last_chunk_ends():
    period = 0.01
    core = executor("latest", period=period)
    core.submit(chunk(T0, np.tile(HOME, (5, 1)), period), T0)
    states = [core.tick(core.grid.slot_of(T0 + s * period), T0 + s * period).state for s in range(8)]
    assert states == [TickState.TRACKING] * 5 + [TickState.UNDERRUN] * 3
    assert core.report().underruns == 3


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"mode": "smooth"}, "mode must be one of"),
        ({"m": math.nan}, "m must be a finite number"),
        ({"k": 0}, "k must be >= 1"),
        ({"staleness_timeout": 0.0}, "staleness_timeout"),
        ({"control_period": -1.0}, "control period"),
    ],
)
def test_bad_executor_config_is_refused(kwargs, needle):
    kwargs = {"control_period": 0.01, **kwargs}
    with pytest.raises(ConfigError, match=needle):
        ExecutorConfig(**kwargs)


def test_loop_stats_copy_is_detached_from_the_running_stats():
    stats = LoopStats(nominal_period=0.01)
    for i in range(10):
        stats.tick(i * 0.01)
    snapshot = stats.copy()
    stats.tick(0.2)  # a 110 ms period on the live stats only
    stats.underruns += 1
    assert snapshot.report().period_error_max_ms == pytest.approx(0.0, abs=1e-9)
    assert snapshot.report().ticks == 10 and snapshot.underruns == 0
    assert stats.report().period_error_max_ms == pytest.approx(100.0)
