"""`corft-ros measure sim`: what the embedded robot costs (physics steps/s without rendering, ms per frame), and how
it runs under the whole deploy graph (sim + policy + executor + a recording logger, one process as `corft-ros`
runs it): the /clock cadence at realtime_factor 1 and the factor achieved at 0 (as fast as the graph allows)."""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time


def register(benches: argparse._SubParsersAction) -> None:
    parser = benches.add_parser("sim", help="sim arm: physics steps/s (no render) and render ms/frame per camera")
    parser.add_argument("--json", action="store_true", help="print JSON only")
    parser.add_argument("--seconds", type=float, default=3.0, help="wall time per measurement")
    parser.add_argument("--size", type=int, nargs=2, default=(64, 64), metavar=("W", "H"), help="image size")
    parser.add_argument("--cameras", nargs="+", default=["front", "wrist"])
    parser.add_argument("--graph-seconds", type=float, default=20.0, help="wall time of each deploy-graph run "
                        "(0: skip the graph measurements)")
    parser.add_argument("--model", default="", help="policy of the deploy graph (default: models/default, else a "
                        "fresh model)")
    parser.set_defaults(func=bench_sim)


def bench_sim(args: argparse.Namespace) -> int:
    if not args.seconds > 0 or args.graph_seconds < 0:
        print("error: --seconds must be positive and --graph-seconds >= 0", file=sys.stderr)
        return 2
    import mujoco
    import numpy as np

    from corft_ros.core.robot import load_robot_config
    from corft_ros.core.sim.scene import CubeScene, SceneConfig

    robot = load_robot_config()
    scene = CubeScene(robot, SceneConfig(cameras=tuple(args.cameras), image_width=args.size[0],
                                         image_height=args.size[1]))
    scene.reset(0, "seen")
    target = robot.home_array

    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < args.seconds:
        for _ in range(500):
            scene.set_targets(target)
            scene.step(1)
        steps += 500
    physics_steps_per_s = steps / (time.perf_counter() - start)

    ticks, start = 0, time.perf_counter()  # what sim_arm does per /joint_states tick, minus publishing
    per_tick = max(1, round(1.0 / (robot.joint_state_rate_hz * scene.config.physics_dt)))
    while time.perf_counter() - start < args.seconds:
        scene.set_targets(target)
        scene.step(per_tick)
        scene.joint_positions(), scene.joint_velocities(), scene.success()
        ticks += 1
    tick_rate = ticks / (time.perf_counter() - start)

    render = {}
    for camera in args.cameras:
        scene.render(camera)  # warm-up: GL context and buffers
        samples = []
        start = time.perf_counter()
        while time.perf_counter() - start < args.seconds:
            t0 = time.perf_counter()
            frame = scene.render(camera)
            samples.append((time.perf_counter() - t0) * 1e3)
        assert frame.shape == (args.size[1], args.size[0], 3)
        render[camera] = {"ms_per_frame_p50": statistics.median(samples),
                          "ms_per_frame_p95": float(np.percentile(samples, 95)), "frames": len(samples)}
    scene.close()
    graph = {}
    if args.graph_seconds > 0:
        graph = {f"factor_{k:g}": deploy_graph_run(k, args.graph_seconds, args.model) for k in (1.0, 0.0)}
    result = {
        "bench": "sim",
        "command": "corft-ros measure sim --json",
        "physics_dt_s": scene.config.physics_dt,
        "physics_steps_per_s": physics_steps_per_s,
        "sim_speed_no_render_x_realtime": physics_steps_per_s * scene.config.physics_dt,
        "joint_state_ticks_per_s": tick_rate,
        "image_size": list(args.size),
        "render": render,
        "shadows_reflections": "off",
        "deploy_graph": graph,
        "clock_gap_p99_ms": graph.get("factor_1", {}).get("clock_gap_p99_ms"),
        "realtime_factor_achieved": graph.get("factor_0", {}).get("realtime_factor_achieved"),
        "mujoco": mujoco.__version__,
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        speed = result["sim_speed_no_render_x_realtime"]
        print(f"physics: {physics_steps_per_s:,.0f} steps/s ({speed:.1f}x real time)")
        for camera, r in render.items():
            print(f"render {camera}: {r['ms_per_frame_p50']:.1f} ms/frame p50 ({r['ms_per_frame_p95']:.1f} p95)")
        for name, g in graph.items():
            print(f"deploy graph at {name}: achieved {g['realtime_factor_achieved']:.2f}x, /clock gap p50 "
                  f"{g['clock_gap_p50_ms']:.1f} / p99 {g['clock_gap_p99_ms']:.1f} ms, executor period error p99 "
                  f"{g['executor_period_error_p99_ms']} ms")
    return 0


def deploy_graph_run(factor: float, seconds: float, model: str) -> dict:
    """The deploy graph in one process at `factor` for `seconds` of wall time, an episode recording throughout."""
    import tempfile
    from pathlib import Path

    import numpy as np

    from corft_ros.core.graph import load_graph
    from corft_ros.core.paths import models_dir
    from corft_ros.core.sim.scene import TASK
    from corft_ros.nodes.compose import ComposedGraph

    with tempfile.TemporaryDirectory(prefix="corft-bench-sim-") as tmp:
        if not model:
            model = str(models_dir() / "default")
            if not (Path(model) / "policy.yaml").is_file():
                from corft_ros.core.policy.export import export_policy
                from corft_ros.core.policy.fresh import init_policy

                model = str(export_policy(init_policy(), Path(tmp) / "fresh",
                                          [TASK]))
        graph = load_graph("deploy", {"model": model, "output_dir": tmp, "realtime_factor": repr(float(factor))})
        composed = ComposedGraph(graph)
        try:
            sim, executor, logger = (composed.nodes[n] for n in ("sim_arm", "executor", "episode_logger"))
            time.sleep(2.0)  # warm-up: models loaded, first frames, the executor holding
            ok, message = logger.start_episode()
            if not ok:
                raise RuntimeError(message)
            gaps0, wall0, sim0 = len(sim.clock_gaps()), time.monotonic(), sim._now()
            waits0, wait_s0, unanswered0 = dict(sim.pacer.waits), dict(sim.pacer.wait_s), sim.pacer.unanswered
            executor.core.stats.restart_timing()
            time.sleep(seconds)
            wall, sim_s = time.monotonic() - wall0, sim._now() - sim0
            gaps = np.asarray(sim.clock_gaps()[gaps0:]) * 1e3
            report = executor.core.report().as_dict()
            logger.stop_episode()
        finally:
            composed.shutdown()
    return {
        "realtime_factor": factor, "wall_s": round(wall, 2), "sim_s": round(sim_s, 2),
        "realtime_factor_achieved": round(sim_s / wall, 3),
        "clock_gap_p50_ms": round(float(np.percentile(gaps, 50)), 3),
        "clock_gap_p99_ms": round(float(np.percentile(gaps, 99)), 3),
        "clock_gap_max_ms": round(float(gaps.max()), 3),
        "clock_gaps_under_2ms": round(float(np.mean(gaps < 2.0)), 4),
        "executor_rate_hz": report.get("rate_hz"),
        "executor_period_error_p99_ms": report.get("period_error_p99_ms"),
        "executor_overruns": report.get("overruns"),
        "sim_waits": {k: v - waits0[k] for k, v in sim.pacer.waits.items()},  # how often physics waited for each
        "sim_wait_s": {k: round(v - wait_s0[k], 2) for k, v in sim.pacer.wait_s.items()},  # and wall s of waiting
        "executor_unanswered_ticks": sim.pacer.unanswered - unanswered0,  # waits that ran out executor_wait_s
    }
