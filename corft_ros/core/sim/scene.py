"""OGBench's single-cube scene driven at joint level, rendered headless.

OGBench's own controller turns end-effector actions into joint targets with IK and writes them to the position
actuators; here joint targets come from ROS command topics and go straight to those actuators.
Not thread-safe: one thread owns a CubeScene (MuJoCo renderers only work on the thread that made them).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from corft_ros.core.robot import ConfigError, RobotConfig
from corft_ros.core.sim.lod import simplified_for_rendering
from corft_ros.core.sim.regions import Box2D, StartRegions

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("PYOPENGL_PLATFORM", "egl")

# corft_ros joint name -> MuJoCo joint in OGBench's scene.
SIM_JOINTS = {
    "shoulder_pan_joint": "ur5e/shoulder_pan_joint",
    "shoulder_lift_joint": "ur5e/shoulder_lift_joint",
    "elbow_joint": "ur5e/elbow_joint",
    "wrist_1_joint": "ur5e/wrist_1_joint",
    "wrist_2_joint": "ur5e/wrist_2_joint",
    "wrist_3_joint": "ur5e/wrist_3_joint",
    "finger_joint": "ur5e/robotiq/right_driver_joint",
}
GRIPPER_CLOSED = 0.8  # finger_joint position when fully closed; OGBench's actuator takes 0..255
# corft_ros camera name -> MuJoCo camera (the wrist camera is namespaced by its attachment).
CAMERAS = {"front": "front", "front_pixels": "front_pixels", "wrist": "ur5e/robotiq/wrist"}
SUCCESS_DISTANCE = 0.04  # OGBench's cube success threshold (m)
TASK = "pick up the red cube and place it on the target"  # the scene's task, in words (the default instruction)


@dataclass(frozen=True)
class SceneConfig:
    cameras: tuple[str, ...] = ("front", "wrist")
    image_width: int = 64
    image_height: int = 64
    physics_dt: float = 0.002
    goal: tuple[float, float, float] = (0.425, -0.2, 0.02)
    regions: StartRegions = field(
        default_factory=lambda: StartRegions(
            area=Box2D(x=(0.32, 0.52), y=(0.0, 0.25)), held_out=Box2D(x=(0.39, 0.45), y=(0.095, 0.155))
        )
    )
    home_noise: float = 0.03  # rad, uniform per arm joint at reset
    # meshes are drawn with vertices closer than this merged (core/sim/lod.py; physics keeps the full meshes):
    # front + wrist frame 36 -> 10 ms, mean pixel change 0.3 grey levels; 0 = draw the full meshes
    render_lod: float = 0.004

    def __post_init__(self) -> None:
        if self.image_width <= 0 or self.image_height <= 0:
            raise ConfigError(f"camera size must be positive, got {self.image_width}x{self.image_height}")
        unknown = [c for c in self.cameras if c not in CAMERAS]
        if unknown:
            raise ConfigError(f"unknown sim camera '{unknown[0]}' (available: {', '.join(CAMERAS)})")
        if self.physics_dt <= 0:
            raise ConfigError(f"physics_dt must be positive, got {self.physics_dt}")
        if not (np.isfinite(self.render_lod) and 0 <= self.render_lod <= 0.05):
            raise ConfigError(f"render_lod must be 0 (full meshes) .. 0.05 m, got {self.render_lod}")


@dataclass(frozen=True)
class ResetInfo:
    seed: int
    region: str
    cube_xy: tuple[float, float]
    cube_yaw: float
    goal: tuple[float, float, float]


def _make_env_class():
    import warnings

    # OGBench builds float64 action bounds that gymnasium casts to float32, warning each time; irrelevant here.
    warnings.filterwarnings("ignore", message=".*precision lowered by casting.*")
    from ogbench.manipspace.envs.cube_env import CubeEnv

    class CorftCubeEnv(CubeEnv):
        """OGBench's cube scene plus a wrist camera on the gripper."""

        def build_mjcf_model(self):
            arena = super().build_mjcf_model()
            gripper_base = arena.find("body", "ur5e/robotiq/base")
            # MuJoCo cameras look along their -z: flip about x to look down the gripper's +z (towards the fingers).
            gripper_base.add("camera", name="wrist", pos=(0.0, -0.075, 0.04), quat=(0.0, 1.0, 0.0, 0.0), fovy=75)
            return arena

    return CorftCubeEnv


class CubeScene:
    def __init__(self, robot: RobotConfig, config: SceneConfig | None = None) -> None:
        missing = [n for n in robot.joint_names if n not in SIM_JOINTS]
        if missing or len(robot.joint_names) != len(SIM_JOINTS):
            raise ConfigError(
                f"the sim arm has joints {', '.join(SIM_JOINTS)}; robot config has {', '.join(robot.joint_names)}"
            )
        import mujoco

        self._mj = mujoco
        self.robot = robot
        self.config = config or SceneConfig()
        env_class = _make_env_class()
        self._env = env_class(
            env_type="single",
            ob_type="states",
            mode="task",
            terminate_at_goal=False,
            physics_timestep=self.config.physics_dt,
            control_timestep=self.config.physics_dt,
            width=self.config.image_width,
            height=self.config.image_height,
        )
        self._env.reset(seed=0, options={"task_info": self._task_info(np.array([0.42, 0.15]))})
        env = self._env.unwrapped
        self._model = env._model
        self._data = env._data
        joint_ids = [self._model.joint(SIM_JOINTS[n]).id for n in robot.joint_names]
        self._qpos_ids = self._model.jnt_qposadr[joint_ids].copy()
        self._qvel_ids = self._model.jnt_dofadr[joint_ids].copy()
        self._arm_actuators = env._arm_actuator_ids
        self._gripper_actuators = env._gripper_actuator_ids
        # No multisampling: on Mesa's software rasterizer 4x MSAA makes a 64x64 front frame 2.6x slower
        # (53 -> 20 ms measured) for an image that differs by a fraction of a grey level on average.
        self._model.vis.quality.offsamples = 0
        self._render_model = simplified_for_rendering(self._model, self.config.render_lod)
        self._renderer = None
        self._scene_option = mujoco.MjvOption()
        self.last_reset: ResetInfo | None = None

    def _task_info(self, cube_xy: np.ndarray) -> dict:
        return dict(
            task_name="corft_pick_place",
            init_xyzs=np.array([[cube_xy[0], cube_xy[1], 0.02]]),
            goal_xyzs=np.array([self.config.goal]),
        )

    # --- episode -----------------------------------------------------------------------------------------------
    def reset(self, seed: int, region: str = "seen") -> ResetInfo:
        rng = np.random.default_rng(seed)
        cube_xy = self.config.regions.sample(region, rng)
        self._env.reset(seed=int(seed), options={"task_info": self._task_info(cube_xy)})
        # OGBench jitters the start by up to 1 cm, which can carry a cube across the held-out box's edge (a demo
        # starting inside the unseen region): put it exactly where the region was sampled (its random yaw stays).
        self._data.joint("object_joint_0").qpos[:2] = cube_xy
        q = self.robot.home_array.copy()
        q[:6] += rng.uniform(-self.config.home_noise, self.config.home_noise, size=6)
        self._data.qpos[self._qpos_ids] = q
        self._data.qvel[:] = 0.0
        self.set_targets(q)
        self._mj.mj_forward(self._model, self._data)
        self.step(int(round(0.2 / self.config.physics_dt)))  # let the cube settle on the table
        self._data.time = 0.0
        cube_pos, cube_yaw = self.cube_pose()
        self.last_reset = ResetInfo(
            seed=int(seed),
            region=self.config.regions.region_of(cube_pos[:2]),
            cube_xy=(float(cube_pos[0]), float(cube_pos[1])),
            cube_yaw=cube_yaw,
            goal=tuple(float(v) for v in self.config.goal),
        )
        return self.last_reset

    # --- control -----------------------------------------------------------------------------------------------
    def set_targets(self, q: np.ndarray) -> None:
        """Joint position targets in robot.yaml order (arm rad, finger_joint 0 open .. 0.8 closed)."""
        self._data.ctrl[self._arm_actuators] = q[:6]
        self._data.ctrl[self._gripper_actuators] = 255.0 * float(np.clip(q[6] / GRIPPER_CLOSED, 0.0, 1.0))

    def step(self, n: int = 1) -> None:
        self._mj.mj_step(self._model, self._data, nstep=n)

    @property
    def time(self) -> float:
        return float(self._data.time)

    def joint_positions(self) -> np.ndarray:
        return self._data.qpos[self._qpos_ids].copy()

    def joint_velocities(self) -> np.ndarray:
        return self._data.qvel[self._qvel_ids].copy()

    # --- task --------------------------------------------------------------------------------------------------
    def cube_pose(self) -> tuple[np.ndarray, float]:
        from ogbench.manipspace import lie

        qpos = self._data.joint("object_joint_0").qpos
        yaw = float(lie.SO3(wxyz=np.array(qpos[3:7])).compute_yaw_radians())
        return qpos[:3].copy(), yaw

    def cube_quat(self) -> np.ndarray:
        return self._data.joint("object_joint_0").qpos[3:7].copy()

    def goal_position(self) -> np.ndarray:
        return np.array(self.config.goal, dtype=np.float64)

    def success(self) -> bool:
        """OGBench's own success check: cube within 4 cm of its target."""
        return bool(all(self._env.unwrapped._compute_successes()))

    # --- cameras -----------------------------------------------------------------------------------------------
    def render(self, camera: str) -> np.ndarray:
        """HxWx3 uint8 RGB. Shadows and reflections off (3x cheaper). Call only from the thread that owns the scene."""
        mj = self._mj
        if self._renderer is None:
            self._renderer = mj.Renderer(self._render_model, self.config.image_height, self.config.image_width)
        self._renderer.update_scene(self._data, camera=CAMERAS[camera], scene_option=self._scene_option)
        self._renderer.scene.flags[mj.mjtRndFlag.mjRND_SHADOW] = 0
        self._renderer.scene.flags[mj.mjtRndFlag.mjRND_REFLECTION] = 0
        return self._renderer.render()

    def snapshot(self) -> SceneState:
        """The state a frame is rendered from (copied: the physics thread keeps stepping)."""
        d = self._data
        return SceneState(float(d.time), d.qpos.copy(), d.qvel.copy(), d.mocap_pos.copy(), d.mocap_quat.copy(),
                          d.act.copy())

    def frame_renderer(self) -> FrameRenderer:
        """A renderer of snapshots with its own MjData and GL context; create it on the thread that will render."""
        return FrameRenderer(self._mj, self._model, self._render_model, self.config, self._scene_option)

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None


@dataclass(frozen=True)
class SceneState:
    time: float
    qpos: np.ndarray
    qvel: np.ndarray
    mocap_pos: np.ndarray
    mocap_quat: np.ndarray
    act: np.ndarray


class FrameRenderer:
    """Renders SceneState snapshots off the physics thread: physics keeps its cadence whatever a frame costs.

    Shares the (read-only) physics and render models with the scene, owns an MjData and a renderer; use it only on
    the thread that created it (a MuJoCo renderer works only on the thread that made its GL context)."""

    def __init__(self, mj, model, render_model, config: SceneConfig, scene_option) -> None:
        self._mj = mj
        self._model = model
        self._data = mj.MjData(model)
        self._renderer = mj.Renderer(render_model, config.image_height, config.image_width)
        self._scene_option = scene_option

    def render(self, state: SceneState, camera: str) -> np.ndarray:
        mj, d = self._mj, self._data
        d.time = state.time
        d.qpos[:], d.qvel[:], d.act[:] = state.qpos, state.qvel, state.act
        d.mocap_pos[:], d.mocap_quat[:] = state.mocap_pos, state.mocap_quat
        mj.mj_forward(self._model, d)
        self._renderer.update_scene(d, camera=CAMERAS[camera], scene_option=self._scene_option)
        self._renderer.scene.flags[mj.mjtRndFlag.mjRND_SHADOW] = 0
        self._renderer.scene.flags[mj.mjtRndFlag.mjRND_REFLECTION] = 0
        return self._renderer.render()

    def close(self) -> None:
        self._renderer.close()
