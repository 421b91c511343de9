"""Closed-loop rollouts of an exported policy in the sim scene, in one thread and without ROS: the lockstep trial.

The same timing as the deployed graph, run synchronously on sim time: cameras rendered at `camera_rate_hz`,
the policy at `policy_rate_hz` on the newest frames and the current joint state (its chunk stamped with the
observation time), the chunk reaching the executor `inference_latency_s` of sim time later (the graph's inference
and transport, fixed here), the chunk executor (blending + safety, `corft_ros.core.chunking`) at the control rate,
physics at the scene's step. Sim, policy and executor advance in this fixed order and every random source is seeded
by the trial's seed (the reset, and the policy's candidate draws: `runtime.rng`), so the same model on the same
start gives the same outcome, in any order and in any worker process (`corft-ros benchmark --lockstep`).

A failed trial is classified from the cube's path (`failure`): `never_lifted` (the cube never rose `LIFT_M` above
its start), `dropped` (lifted, then back on the table at the end, not at the goal) or `off_target` (still carried at
the end, not within the success tolerance of the goal).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from corft_ros.core.chunking import ChunkExecutor, ExecutorConfig
from corft_ros.core.chunking.chunk import make_chunk
from corft_ros.core.robot import RobotConfig
from corft_ros.core.sim.scene import CubeScene

LIFT_M = 0.03  # the cube counts as lifted once it is this far above its start height
# Measured in the deployed graph (make demo, 2026-12-03): inference p50 2.6 ms, a 64x64 frame 5-8 ms to render and
# publish; the lockstep trial fixes their sum at 20 ms of sim time.
DEFAULT_INFERENCE_LATENCY_S = 0.02


@dataclass(frozen=True)
class RolloutConfig:
    timeout_s: float = 20.0
    camera_rate_hz: float = 10.0
    policy_rate_hz: float = 10.0
    mode: str = "temporal_ensembling"
    settle_s: float = 0.3  # as the benchmark: the episode starts this long after the reset
    success_hold_s: float = 0.0  # success must persist this long (0: the first success signal, as the benchmark)
    inference_latency_s: float = 0.0  # sim s from an observation to its chunk at the executor (lockstep: 0.02)


@dataclass(frozen=True)
class RolloutResult:
    seed: int
    region: str
    cube_xy: tuple[float, float]
    success: bool
    duration_s: float  # sim time from the start to the first success, or the time limit
    min_cube_goal_distance: float
    max_cube_height: float
    wall_s: float
    failure: str = ""  # '' (success) | never_lifted | dropped | off_target
    final_cube_goal_distance: float = float("nan")


def rollout(scene: CubeScene, runtime, robot: RobotConfig, seed: int, region: str, instruction: str,
            config: RolloutConfig = RolloutConfig()) -> RolloutResult:
    """One trial: reset(seed, region), then the policy drives until success or the time limit."""
    wall = time.monotonic()
    info = scene.reset(seed, region)
    if hasattr(runtime, "rng"):  # the policy's own draws (best-of-N candidates, flow noise) follow the trial's seed
        runtime.rng = np.random.default_rng(seed)
    control_dt = robot.control_dt
    steps_per_tick = max(1, int(round(control_dt / scene.config.physics_dt)))
    executor = ChunkExecutor(robot, ExecutorConfig(control_period=control_dt, mode=config.mode))
    q = scene.joint_positions()
    executor.measured(q)
    scene.set_targets(q)
    t = 0.0
    while t < config.settle_s - 1e-9:
        scene.step(steps_per_tick)
        t += control_dt
    start = t
    camera_period, policy_period = 1.0 / config.camera_rate_hz, 1.0 / config.policy_rate_hz
    next_camera = next_policy = start
    images: dict[str, np.ndarray] = {}
    names = robot.joint_names
    best_distance, best_height = np.inf, 0.0
    goal = scene.goal_position()
    start_height = float(scene.cube_pose()[0][2])
    success_since: float | None = None
    in_flight: list[tuple[float, object]] = []  # (sim time it reaches the executor, chunk)
    # Stamps must be > 0 (a chunk stamped 0 is refused): run the executor on start-relative time + 1000 s.
    epoch = 1000.0
    while t - start < config.timeout_s:
        if t >= next_camera - 1e-9:
            images = {name: scene.render(name) for name in runtime.camera_names}
            next_camera += camera_period
        if t >= next_policy - 1e-9 and images:
            chunk = runtime.predict(images, scene.joint_positions(), instruction)
            times = [i * runtime.action_dt for i in range(chunk.shape[0])]
            in_flight.append((t + config.inference_latency_s,
                              make_chunk(robot, epoch + t, names, times, chunk.tolist())))
            next_policy += policy_period
        while in_flight and in_flight[0][0] <= t + 1e-9:
            executor.submit(in_flight.pop(0)[1], epoch + t)
        tick = executor.tick(executor.grid.slot_of(epoch + t), epoch + t)
        if tick.command is not None:
            scene.set_targets(np.asarray(tick.command))
        scene.step(steps_per_tick)
        t += control_dt
        cube, _ = scene.cube_pose()
        best_distance = min(best_distance, float(np.linalg.norm(cube - goal)))
        best_height = max(best_height, float(cube[2]))
        if scene.success():
            success_since = t if success_since is None else success_since
            if t - success_since >= config.success_hold_s:
                return RolloutResult(seed, info.region, info.cube_xy, True, success_since - start, best_distance,
                                     best_height, time.monotonic() - wall,
                                     final_cube_goal_distance=float(np.linalg.norm(cube - goal)))
        else:
            success_since = None
    cube, _ = scene.cube_pose()
    return RolloutResult(seed, info.region, info.cube_xy, False, config.timeout_s, best_distance, best_height,
                         time.monotonic() - wall, failure=failure_kind(start_height, best_height, float(cube[2])),
                         final_cube_goal_distance=float(np.linalg.norm(cube - goal)))


def failure_kind(start_height: float, max_height: float, final_height: float) -> str:
    """never_lifted | dropped | off_target, from the cube's heights over a failed trial (see the module docstring)."""
    if max_height < start_height + LIFT_M:
        return "never_lifted"
    if final_height < start_height + 0.5 * LIFT_M:
        return "dropped"
    return "off_target"
