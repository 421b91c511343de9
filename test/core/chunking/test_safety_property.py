"""Property-based safety invariant of the chunk executor (hypothesis, no ROS).

Over random robots (joint count, position and velocity limits, rates), random executor settings (every blending
mode, m of either sign, k, staleness, max_lead) and random streams of events — chunks with stamps now, duplicated,
out of order, from the future, very old, zero or NaN; random dt, horizon and time_from_start offsets (also uneven
or non-monotonic); values near the limits, far outside them, huge (1e300), NaN or Inf; joint names permuted,
missing, duplicated or unknown — interleaved with control ticks (regular, repeated, skipped slots, the clock going
back), measured joint states (possibly far outside the limits), e-stop latch/release, clears, episode starts/stops and
operator takeovers (targets near, far outside or huge, NaN/Inf joints, released or left to go stale):

- every command the executor sends (forward output: `Tick.command`) is finite and within the position limits;
- every command is within `max_velocity · period` of the previous command (or of the hold pose a measured state
  just set after a start/clear: the only time the executor re-anchors);
- every JTC plan (`ChunkExecutor.plan`) is within the limits and each waypoint within `max_velocity · gap` of the
  previous one, the first within one period of the last command.

Chunks go through `make_chunk` then `submit`, as in the executor node.
"""

from __future__ import annotations

import math

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import event as note_event
from hypothesis import strategies as st

from corft_ros.core.chunking import MODES, ChunkError, ChunkExecutor, ExecutorConfig, make_chunk
from corft_ros.core.robot import RobotConfig, robot_config_from_dict

T0 = 1_700_000_000.0  # epoch-like clock, as on a real system (float seconds resolve ~0.24 µs here)
HUGE = (1e300, -1e300, 1e9, -1e9, math.inf, -math.inf, math.nan)


@st.composite
def robots(draw) -> RobotConfig:
    dof = draw(st.integers(1, 7))
    joints = []
    for i in range(dof):
        lower = draw(st.floats(-10.0, 10.0))
        width = draw(st.floats(1e-3, 20.0))
        velocity = draw(st.floats(1e-3, 50.0))
        joints.append({"name": f"j{i}", "lower": lower, "upper": lower + width, "max_velocity": velocity})
    data = {"robot": {"name": "random", "joints": joints,
                      "action_rate_hz": draw(st.sampled_from([5.0, 20.0, 50.0, 100.0])),
                      "control_rate_hz": 100.0, "joint_state_rate_hz": 100.0}}
    return robot_config_from_dict(data, source="hypothesis")


@st.composite
def configs(draw, idle: bool = True) -> ExecutorConfig:
    return ExecutorConfig(
        control_period=draw(st.sampled_from([0.001, 0.004, 0.01, 0.02, 0.05])),
        mode=draw(st.sampled_from(MODES)),
        m=draw(st.floats(-5.0, 5.0)),
        k=draw(st.integers(1, 20)),
        staleness_timeout=draw(st.floats(0.02, 2.0)),
        max_lead=draw(st.floats(0.0, 2.0)),
        start_idle=draw(st.booleans()) if idle else False,
    )


# Events. Values are drawn from a numpy generator seeded by hypothesis (fast; shrinking keeps the seed).
tick_event = st.tuples(st.just("tick"), st.sampled_from([1, 1, 1, 1, 2, 5, 0, -3, -200]), st.floats(0.0, 0.99))
chunk_event = st.tuples(
    st.just("chunk"),
    st.sampled_from(["now", "now", "now", "now", "duplicate", "older", "future", "very_old", "zero", "nan"]),
    st.integers(1, 30),  # horizon
    st.sampled_from(["period", "action", "random"]),  # dt
    st.sampled_from(["regular"] * 5 + ["offset", "offset", "uneven", "backwards"]),  # time_from_start
    st.sampled_from(["near", "near", "wide", "wide", "huge", "huge", "nonfinite"]),  # values
    st.sampled_from(["canonical"] * 3 + ["shuffled"] * 2 + ["missing", "unknown", "duplicate"]),  # joint_names
    st.integers(0, 2**32 - 1),  # value seed
)
# a chunk the executor should accept (stamped now, any finite values, joints in any order): the tracking path
good_chunk_event = st.tuples(
    st.just("chunk"), st.just("now"), st.integers(1, 30), st.sampled_from(["period", "action", "random"]),
    st.sampled_from(["regular", "offset"]), st.sampled_from(["near", "wide", "huge"]),
    st.sampled_from(["canonical", "shuffled"]), st.integers(0, 2**32 - 1),
)
measured_event = st.tuples(st.just("measured"), st.sampled_from(["inside", "outside", "huge"]),
                           st.integers(0, 2**32 - 1))
estop_event = st.tuples(st.just("estop"), st.booleans())
clear_event = st.tuples(st.just("clear"), st.booleans())
episode_event = st.tuples(st.just("episode"), st.booleans())  # start (True) | stop
intervene_event = st.tuples(st.just("intervene"), st.sampled_from(["near", "near", "wide", "huge", "nonfinite"]),
                            st.integers(0, 2**32 - 1))
release_event = st.tuples(st.just("release"))
_EVENT_KINDS = {"tick": tick_event, "good_chunk": good_chunk_event, "chunk": chunk_event,
                "measured": measured_event, "estop": estop_event, "clear": clear_event, "episode": episode_event,
                "intervene": intervene_event, "release": release_event}
# one_of picks its branches evenly: weigh them by drawing the kind first (ticks and valid chunks most often)
events = st.lists(
    st.sampled_from(["tick"] * 10 + ["good_chunk"] * 3 + ["chunk"] * 3
                    + ["measured", "estop", "clear", "episode", "intervene", "intervene", "release"]
                    ).flatmap(_EVENT_KINDS.__getitem__),
    min_size=5, max_size=120,
)


def _chunk_inputs(robot: RobotConfig, config: ExecutorConfig, now: float, last_stamp: float | None, event):
    _, stamp_kind, h, dt_kind, times_kind, values_kind, names_kind, seed = event
    rng = np.random.default_rng(seed)
    dof = robot.dof
    period = config.control_period
    if stamp_kind == "duplicate" and last_stamp is not None:
        stamp = last_stamp
    elif stamp_kind == "older" and last_stamp is not None:
        stamp = last_stamp - rng.uniform(1e-6, 0.5)
    elif stamp_kind == "future":
        stamp = now + rng.uniform(0.0, 10.0)
    elif stamp_kind == "very_old":
        stamp = now - rng.uniform(0.5, 1e5)
    elif stamp_kind == "zero":
        stamp = 0.0
    elif stamp_kind == "nan":
        stamp = math.nan
    else:
        stamp = now - rng.uniform(0.0, min(0.3, 0.8 * config.staleness_timeout))  # an inference latency
    dt = {"period": period, "action": robot.action_dt, "random": float(rng.uniform(1e-3, 0.3))}[dt_kind]
    times = np.arange(h) * dt
    if times_kind == "offset":
        times = times + rng.uniform(-0.2, 0.2)
    elif times_kind == "uneven" and h > 2:
        times = times + rng.normal(0.0, dt, size=h)
    elif times_kind == "backwards" and h > 1:
        times = times[::-1].copy()
    lower, upper = robot.lower, robot.upper
    mid, span = (lower + upper) / 2, (upper - lower)
    if values_kind == "near":
        rows = mid + span * rng.uniform(-0.6, 0.6, size=(h, dof))
    elif values_kind == "wide":
        rows = mid + span * rng.normal(0.0, 10.0, size=(h, dof))
    else:
        rows = mid + span * rng.uniform(-0.5, 0.5, size=(h, dof))
        mask = rng.random((h, dof)) < 0.3
        pool = HUGE[:4] if values_kind == "huge" else HUGE
        rows[mask] = rng.choice(pool, size=int(mask.sum()))
    names = list(robot.joint_names)
    columns = list(range(dof))
    if names_kind == "shuffled":
        rng.shuffle(columns)
    elif names_kind == "missing" and dof > 1:
        columns = columns[: int(rng.integers(1, dof))]
    chosen = [names[c] for c in columns]
    if names_kind == "unknown":
        chosen[int(rng.integers(len(chosen)))] = "not_a_joint"
    elif names_kind == "duplicate" and dof > 1:
        chosen[1] = chosen[0]
    data = rows[:, columns].tolist()
    return stamp, chosen, times.tolist(), data


def _check_command(robot: RobotConfig, command, reference, period: float) -> None:
    c = np.asarray(command, dtype=np.float64)
    assert c.shape == (robot.dof,)
    assert np.isfinite(c).all(), c
    assert (c >= robot.lower).all() and (c <= robot.upper).all(), (c, robot.lower, robot.upper)
    if reference is not None:
        step = robot.max_velocity * period
        slack = 1e-12 * np.maximum(1.0, np.abs(c))
        assert (np.abs(c - np.asarray(reference)) <= step + slack).all(), (c, reference, step)


def _check_plan(robot: RobotConfig, plan, last, period: float) -> None:
    previous, previous_t = np.asarray(last), 0.0
    for offset, point in plan:
        p = np.asarray(point)
        assert np.isfinite(p).all() and (p >= robot.lower).all() and (p <= robot.upper).all(), p
        reach = robot.max_velocity * (offset - previous_t)
        assert (np.abs(p - previous) <= reach + 1e-9 * np.maximum(1.0, np.abs(p))).all(), (p, previous, reach)
        previous, previous_t = p, offset
    if plan:
        assert math.isclose(plan[0][0], period)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(robot=robots(), config=configs(), stream=events, start_inside=st.booleans())
def test_executor_output_never_leaves_position_or_velocity_limits(robot, config, stream, start_inside):
    core = ChunkExecutor(robot, config)
    period = config.control_period
    slot = int(T0 / period)
    now = slot * period
    # the first measured state: inside the limits, or far outside (the hold pose is clamped into them)
    first = (robot.lower + robot.upper) / 2 if start_inside else robot.upper + 100.0
    core.measured(first.tolist())
    reference = np.clip(first, robot.lower, robot.upper)  # the next command must be within one velocity step of it
    last_stamp: float | None = None
    commanded = 0
    states: set[str] = set()
    for event in stream:
        kind = event[0]
        if kind == "tick":
            _, advance, jitter = event
            slot += advance
            now = (slot + jitter * 0.5) * period
            tick = core.tick(slot, now)
            states.add(tick.state.value)
            if tick.command is None:
                continue
            _check_command(robot, tick.command, reference, period)
            reference = list(tick.command)
            commanded += 1
            _check_plan(robot, core.plan(robot.action_dt, max_points=20), tick.command, period)
        elif kind == "chunk":
            stamp, names, times, rows = _chunk_inputs(robot, config, now, last_stamp, event)
            try:
                chunk = make_chunk(robot, stamp, names, times, rows, default_dt=robot.action_dt)
            except ChunkError as exc:
                assert "\n" not in str(exc) and str(exc).startswith("chunk stamped")
                core.reject()
                continue
            try:
                core.submit(chunk, now)
                last_stamp = chunk.stamp
            except ChunkError as exc:
                assert "\n" not in str(exc) and str(exc).startswith("chunk stamped")
        elif kind == "measured":
            _, where, seed = event
            rng = np.random.default_rng(seed)
            span = robot.upper - robot.lower
            if where == "inside":
                positions = robot.lower + span * rng.random(robot.dof)
            elif where == "outside":
                positions = robot.lower + span * rng.uniform(-3.0, 4.0, robot.dof)
            else:
                positions = rng.choice([1e300, -1e300, 1e12], size=robot.dof)
            rebases = core.wants_measurement
            core.measured(positions.tolist())  # the node passes only finite states (NaN/Inf is refused there)
            if rebases:
                # the hold pose after a start/clear is the measured pose, clamped into the limits
                reference = np.clip(positions, robot.lower, robot.upper)
                assert np.array_equal(np.asarray(core.safety.last), reference)
        elif kind == "intervene":
            _, values_kind, seed = event
            rng = np.random.default_rng(seed)
            mid, span = (robot.lower + robot.upper) / 2, robot.upper - robot.lower
            target = mid + span * rng.normal(0.0, 0.4 if values_kind == "near" else 10.0, robot.dof)
            if values_kind in ("huge", "nonfinite"):
                mask = rng.random(robot.dof) < 0.5
                target[mask] = rng.choice(HUGE[:4] if values_kind == "huge" else HUGE, size=int(mask.sum()))
            core.intervene(target.tolist(), now)
        elif kind == "release":
            core.release()
        elif kind == "estop":
            core.set_estop(event[1])
        elif kind == "clear":
            core.clear(rebase=event[1])
        elif kind == "episode":
            if event[1]:
                core.start_episode()
            else:
                core.end_episode()
    report = core.report()
    note_event(f"tracked: {'tracking' in states}")
    note_event(f"taken over: {'intervention' in states}")
    note_event(f"clamped: position {report.position_clamps > 0}, velocity {report.velocity_clamps > 0}")
    handled = report.chunks_accepted + report.chunks_rejected + report.chunks_ignored
    assert handled == sum(1 for e in stream if e[0] == "chunk")
    assert max(core.safety.position_clamps, core.safety.velocity_clamps) <= commanded


@settings(max_examples=60, deadline=None)
@given(config=configs(idle=False), seed=st.integers(0, 2**32 - 1))
def test_estop_holds_exactly_while_latched(config, seed):
    """While the e-stop is latched the command never changes, whatever chunks arrive."""
    robot = robot_config_from_dict({"robot": {
        "name": "r", "action_rate_hz": 20.0, "control_rate_hz": 100.0, "joint_state_rate_hz": 100.0,
        "joints": [{"name": f"j{i}", "lower": -1.0, "upper": 1.0, "max_velocity": 2.0} for i in range(3)],
    }}, source="test")
    rng = np.random.default_rng(seed)
    core = ChunkExecutor(robot, config)
    period = config.control_period
    slot = int(T0 / period)
    core.measured([0.0, 0.0, 0.0])
    held = None
    for step in range(120):
        now = slot * period
        if step % 3 == 0:
            rows = rng.uniform(-3, 3, size=(10, 3)).tolist()
            core.submit(make_chunk(robot, now - 0.001, robot.joint_names, [i * 0.05 for i in range(10)], rows), now)
        if step == 40:
            core.set_estop(True)
        tick = core.tick(slot, now)
        if step > 40:
            if held is None:
                held = list(tick.command)
            assert tick.command == held
            assert core.state.value == "estop"
        slot += 1
