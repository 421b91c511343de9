"""Pinch-point pose -> UR5e joint targets, with OGBench's differential IK on the bare arm model."""

from __future__ import annotations

from functools import lru_cache

import numpy as np


@lru_cache(maxsize=1)
def _pinch_to_attachment() -> object:
    """T_pa: the attachment-site pose in the pinch frame, read off OGBench's compiled scene (a rigid offset)."""
    from ogbench.manipspace import lie

    from corft_ros.core.robot import load_robot_config
    from corft_ros.core.sim.scene import CubeScene

    scene = CubeScene(load_robot_config())
    env = scene._env.unwrapped
    T_pa = env._T_pa
    return lie.SE3.from_rotation_and_translation(rotation=T_pa.rotation(), translation=T_pa.translation())


class ArmIK:
    """Solves joint positions that put the gripper's pinch point at a pose pointing down with a given yaw."""

    def __init__(self) -> None:
        from pathlib import Path

        import mujoco
        from dm_control import mjcf
        from ogbench.manipspace import controllers, lie, mjcf_utils
        from ogbench.manipspace.envs import manipspace_env

        desc = Path(manipspace_env.__file__).resolve().parent.parent / "descriptions"
        arm = mjcf.from_path((desc / "universal_robots_ur5e" / "ur5e.xml").as_posix(), escape_separators=True)
        model = mujoco.MjModel.from_xml_string(mjcf_utils.to_string(arm), mjcf_utils.get_assets(arm))
        self._ik = controllers.DiffIKController(model=model, sites=["attachment_site"])
        self._mj = mujoco
        self._fk_model = model
        self._fk_data = mujoco.MjData(model)
        self._attach_site = model.site("attachment_site").id
        self._lie = lie
        self._down = lie.SO3(np.asarray([0.0, 1.0, 0.0, 0.0]))
        self._T_pa = _pinch_to_attachment()

    def solve(self, position: np.ndarray, yaw: float, seed_arm_q: np.ndarray) -> np.ndarray:
        """6 arm joint positions for pinch `position` (m, world) and `yaw` (rad), starting from `seed_arm_q`."""
        lie = self._lie
        rotation = lie.SO3.from_z_radians(yaw) @ self._down
        T_wp = lie.SE3.from_rotation_and_translation(rotation=rotation, translation=np.asarray(position, float))
        T_wa = T_wp @ self._T_pa
        seed = np.asarray(seed_arm_q, dtype=np.float64)
        return self._ik.solve(pos=T_wa.translation(), quat=T_wa.rotation().wxyz, curr_qpos=seed)

    def forward(self, arm_q: np.ndarray) -> tuple[np.ndarray, float]:
        """Pinch point position (m, world) and yaw (rad) for 6 arm joint positions."""
        lie = self._lie
        self._fk_data.qpos[:] = np.asarray(arm_q, dtype=np.float64)
        self._mj.mj_kinematics(self._fk_model, self._fk_data)
        T_wa = lie.SE3.from_rotation_and_translation(
            rotation=lie.SO3.from_matrix(self._fk_data.site_xmat[self._attach_site].reshape(3, 3).copy()),
            translation=self._fk_data.site_xpos[self._attach_site].copy(),
        )
        T_wp = T_wa @ self._T_pa.inverse()
        return T_wp.translation(), float(T_wp.rotation().compute_yaw_radians())
