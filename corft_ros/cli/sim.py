"""`corft-ros bench sim`: what the embedded robot costs (physics steps/s without rendering, ms per frame)."""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time


def register_bench(benches: argparse._SubParsersAction) -> None:
    parser = benches.add_parser("sim", help="sim arm: physics steps/s (no render) and render ms/frame per camera")
    parser.add_argument("--json", action="store_true", help="print JSON only")
    parser.add_argument("--seconds", type=float, default=3.0, help="wall time per measurement")
    parser.add_argument("--size", type=int, nargs=2, default=(64, 64), metavar=("W", "H"), help="image size")
    parser.add_argument("--cameras", nargs="+", default=["front", "wrist"])
    parser.set_defaults(func=bench_sim)


def bench_sim(args: argparse.Namespace) -> int:
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
    result = {
        "bench": "sim",
        "command": "corft-ros bench sim --json",
        "physics_dt_s": scene.config.physics_dt,
        "physics_steps_per_s": physics_steps_per_s,
        "sim_speed_no_render_x_realtime": physics_steps_per_s * scene.config.physics_dt,
        "joint_state_ticks_per_s": tick_rate,
        "image_size": list(args.size),
        "render": render,
        "shadows_reflections": "off",
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
    return 0
