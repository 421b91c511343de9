"""A scripted operator that records demos with no person: OGBench's cube plan oracle for the keyframes,
IK for joint targets, and a human-like mode (slower, uneven speed, hesitation pauses, noise, corrections)
so demos look like real teleop: slow and uneven, which is what later lets offline RL shorten the cycle time.
Deterministic given a seed.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np

from corft_ros.core.robot import RobotConfig
from corft_ros.core.sim.ik import ArmIK
from corft_ros.core.sim.scene import GRIPPER_CLOSED


@dataclass(frozen=True)
class OperatorConfig:
    human_like: bool = True
    segment_dt: float = 0.4  # OGBench's keyframe segment duration: the expert's pace
    speed_range: tuple[float, float] = (0.4, 0.75)  # human-like: fraction of the expert's pace, per demo
    segment_jitter: float = 0.3  # human-like: per-segment duration jitter (fraction)
    pauses: tuple[int, int] = (0, 2)  # human-like: number of hesitation pauses per demo (inclusive range)
    pause_duration: tuple[float, float] = (0.3, 1.2)
    correction_probability: float = 0.5  # human-like: miss the hover pose above the cube, then correct
    correction_offset: float = 0.03  # m
    noise: float = 0.08  # OGBench plan noise (fraction of its action range), temporally correlated
    noise_smoothing: float = 2.0
    action_dt: float = 0.05


@contextlib.contextmanager
def _seeded_global_numpy(seed: int):
    """OGBench's oracle draws from numpy's global RNG; pin it for determinism and restore the caller's state."""
    saved = np.random.get_state()
    np.random.seed(seed % (2**32))
    try:
        yield
    finally:
        np.random.set_state(saved)


class ScriptedOperator:
    def __init__(self, robot: RobotConfig, config: OperatorConfig | None = None, seed: int = 0,
                 ik: ArmIK | None = None) -> None:
        self.robot = robot
        self.config = config or OperatorConfig(action_dt=robot.action_dt)
        self.seed = int(seed)
        self._ik = ik or ArmIK()
        self._plan: np.ndarray | None = None
        self._t0: float | None = 0.0
        self._done = False

    @property
    def done(self) -> bool:
        return self._done

    @property
    def duration(self) -> float:
        """Planned duration of the whole demo (s)."""
        return 0.0 if self._plan is None else len(self._plan) * self.config.action_dt

    def start(self, t: float | None, joint_positions: np.ndarray, cube_pos: np.ndarray, cube_yaw: float,
              goal_pos: np.ndarray, goal_yaw: float = 0.0) -> None:
        """Plan a demo from the arm's joints and the cube and goal poses; `t` is the plan's time zero (None: the time
        of the first `command()`, so the wall time planning takes, during which a fast sim runs on, skips nothing)."""
        from ogbench.manipspace.oracles.plan.cube_plan import CubePlanOracle

        cfg = self.config
        rng = np.random.default_rng(self.seed)
        q = np.asarray(joint_positions, dtype=np.float64)
        eff_pos, eff_yaw = self._ik.forward(q[:6])
        shim_env = SimpleNamespace(unwrapped=SimpleNamespace(_control_timestep=cfg.action_dt))
        oracle = CubePlanOracle(
            env=shim_env,
            segment_dt=cfg.segment_dt,
            noise=cfg.noise if cfg.human_like else 0.0,
            noise_smoothing=cfg.noise_smoothing,
        )
        retreat = np.asarray(goal_pos, dtype=np.float64) + np.array([0.0, 0.0, 0.15])
        plan_input = {
            "effector_initial": oracle.to_pose(eff_pos, eff_yaw),
            "effector_goal": oracle.to_pose(retreat, eff_yaw),
            "block_initial": oracle.to_pose(np.asarray(cube_pos, dtype=np.float64), cube_yaw),
            "block_goal": oracle.to_pose(np.asarray(goal_pos, dtype=np.float64), goal_yaw),
        }
        with _seeded_global_numpy(self.seed):
            times, poses, grasps = oracle.compute_keyframes(plan_input)
            names = list(times)
            t_keys = np.array([times[n] for n in names])
            pose_keys = [poses[n] for n in names]
            grasp_keys = [grasps[n] for n in names]
            if cfg.human_like:
                t_keys, pose_keys, grasp_keys = self._humanize(rng, names, t_keys, pose_keys, grasp_keys, oracle)
            oracle._t_max = float(t_keys[-1])
            cartesian = oracle.compute_plan(list(t_keys), pose_keys, grasp_keys)

        joint_plan = np.empty((len(cartesian), self.robot.dof))
        arm_q = q[:6].copy()
        for i, (x, y, z, yaw, grasp) in enumerate(cartesian):
            arm_q = self._ik.solve(np.array([x, y, z]), yaw, arm_q)
            joint_plan[i, :6] = arm_q
            joint_plan[i, 6] = GRIPPER_CLOSED * float(np.clip(grasp, 0.0, 1.0))
        self._plan = np.clip(joint_plan, self.robot.lower, self.robot.upper)
        self._t0 = None if t is None else float(t)
        self._done = False

    def _humanize(self, rng, names, t_keys, pose_keys, grasp_keys, oracle):
        cfg = self.config
        # Slower overall, and uneven: each segment gets its own duration.
        speed = rng.uniform(*cfg.speed_range)
        segments = np.diff(t_keys) / speed
        segments *= rng.uniform(1.0 - cfg.segment_jitter, 1.0 + cfg.segment_jitter, size=segments.size)
        t_keys = np.concatenate([[0.0], np.cumsum(segments)])
        poses, grasps = list(pose_keys), list(grasp_keys)
        names = list(names)
        # A missed approach: hover off to the side of the cube first, then correct.
        if rng.uniform() < cfg.correction_probability:
            k = names.index("pick")
            angle = rng.uniform(0, 2 * np.pi)
            offset = cfg.correction_offset * np.array([np.cos(angle), np.sin(angle), 0.0])
            missed = oracle.to_pose(poses[k].translation() + offset, poses[k].rotation().compute_yaw_radians())
            fix = rng.uniform(0.4, 0.8) * segments[k]
            t_keys = np.concatenate([t_keys[:k], [t_keys[k]], t_keys[k:] + fix])
            poses.insert(k, missed)
            grasps.insert(k, grasps[k])
            names.insert(k, "pick_missed")
        # Hesitation pauses: hold a keyframe for a while before moving on.
        for _ in range(int(rng.integers(cfg.pauses[0], cfg.pauses[1] + 1))):
            k = int(rng.integers(1, len(names) - 1))
            pause = rng.uniform(*cfg.pause_duration)
            t_keys = np.concatenate([t_keys[: k + 1], [t_keys[k] + pause], t_keys[k + 1 :] + pause])
            poses.insert(k + 1, poses[k])
            grasps.insert(k + 1, grasps[k])
            names.insert(k + 1, f"{names[k]}_pause")
        return t_keys, poses, grasps

    def command(self, t: float) -> np.ndarray:
        """Joint targets (robot.yaml order) for time t; holds the final pose once the plan has played out."""
        if self._plan is None:
            raise RuntimeError("ScriptedOperator.command() before start()")
        if self._t0 is None:
            self._t0 = float(t)
        index = int((t - self._t0) / self.config.action_dt + 1e-7)
        if index >= len(self._plan) - 1:
            self._done = True
            index = len(self._plan) - 1
        return self._plan[max(index, 0)].copy()
