"""The per-tick cost half of `corft-ros measure executor`: a stream of chunks at the issue's reference size (horizon
50, 7 joints) fed to the executor core, timing blending, blending with the safety layer, a whole tick and each
submit for every blending mode, and the node's per-message validation of a chunk."""

from __future__ import annotations

import time

H, D = 50, 7  # the reference size: chunk horizon 50, 7 joints


def _percentiles(samples_ns: list[int]) -> dict[str, float]:
    import numpy as np

    us = np.asarray(samples_ns, dtype=np.float64) / 1e3
    return {"p50_us": round(float(np.percentile(us, 50)), 3), "p99_us": round(float(np.percentile(us, 99)), 3)}


def _chunk_stream(robot, n: int, dt: float, every: int, period: float, seed: int = 0):
    """(tick index, Chunk or None) for n ticks: a smooth random walk near home, a new chunk every `every` ticks,
    stamped 3.1 ms before its tick (inference latency), so chunks never line up with the grid."""
    import numpy as np

    from corft_ros.core.chunking import Chunk

    rng = np.random.default_rng(seed)
    home = robot.home_array
    t0 = 1_700_000_000.0
    offsets = np.cumsum(rng.normal(0.0, 0.002, size=(n // every + 2, D)), axis=0)
    ramp = np.linspace(0.0, 1.0, H)[:, None]
    stream = []
    for i in range(n):
        now = t0 + i * period
        chunk = None
        if i % every == 0:
            target = home + offsets[i // every] + 0.05 * ramp * rng.normal(0.0, 1.0, D)
            stamp = now - 0.0031
            chunk = Chunk(stamp=stamp, dt=dt, positions=target, start=stamp)
        stream.append((now, chunk))
    return stream


def measure_costs(ticks: int) -> dict:
    from corft_ros.core.chunking import MODES, ChunkExecutor, ExecutorConfig, make_chunk
    from corft_ros.core.robot import load_robot_config

    robot = load_robot_config()
    period = robot.control_dt
    scenarios = {
        # ACT-style (what LeRobot's ACTTemporalEnsembler measures): a new chunk every tick, dt = control period
        "chunk_every_tick": dict(dt=period, every=1),
        # this robot's rates: dt = 1 / action_rate_hz, a chunk every 100 ms (10 Hz inference)
        "robot_rates": dict(dt=robot.action_dt, every=round(0.1 / period)),
    }
    out: dict = {}
    warmup = min(500, ticks // 5)
    for scenario, spec in scenarios.items():
        stream = _chunk_stream(robot, ticks, spec["dt"], spec["every"], period)
        rows: dict = {}
        for mode in MODES:
            timings: dict[str, list[int]] = {"blend": [], "blend_safety": [], "tick": [], "submit": []}
            for what in ("blend", "blend_safety", "tick"):
                core = ChunkExecutor(robot, ExecutorConfig(control_period=period, mode=mode, k=10))
                core.measured(robot.home)
                blender, safety = core.blender, core.safety
                clock = time.perf_counter_ns
                for i, (now, chunk) in enumerate(stream):
                    slot = core.grid.slot_of(now)
                    core.buffer.prune(slot)
                    if chunk is not None:
                        a = clock()
                        core.submit(chunk, now)
                        b = clock()
                        if what == "tick" and i >= warmup:
                            timings["submit"].append(b - a)
                    if what == "blend":
                        a = clock()
                        blender.action(slot)
                        b = clock()
                    elif what == "blend_safety":
                        a = clock()
                        found = blender.action(slot)
                        if found is not None:
                            safety.apply(found[0].tolist())
                        b = clock()
                    else:
                        a = clock()
                        core.tick(slot, now)
                        b = clock()
                    if i >= warmup:
                        timings[what].append(b - a)
            rows[mode] = {name: _percentiles(samples) for name, samples in timings.items()}
        out[scenario] = {"chunk_dt_s": spec["dt"], "chunk_every_ticks": spec["every"], "modes": rows}

    # what the node pays per message before submit: validation + name mapping from message-shaped lists
    chunk = _chunk_stream(robot, 1, robot.action_dt, 1, period)[0][1]
    names, times = robot.joint_names, [i * robot.action_dt for i in range(H)]
    lists = chunk.positions.tolist()
    samples = []
    for _ in range(2000):
        a = time.perf_counter_ns()
        make_chunk(robot, chunk.stamp, names, times, lists)
        samples.append(time.perf_counter_ns() - a)
    out["validate_chunk_message"] = _percentiles(samples[200:])
    return out

