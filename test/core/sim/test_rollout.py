"""ROS-free sim rollouts (core/sim/rollout.py) and `corft-ros measure rollouts`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from corft_ros.cli import main
from corft_ros.core.robot import load_robot_config
from corft_ros.core.sim.operator import OperatorConfig, ScriptedOperator
from corft_ros.core.sim.rollout import RolloutConfig, rollout
from corft_ros.core.sim.scene import CubeScene, SceneConfig

ROBOT = load_robot_config()


class ExpertChunks:
    """A policy made of the scripted expert: each call returns the next h targets of its plan as a chunk, so the
    rollout's timing (policy rate, stamps, executor blending, safety, physics) is what decides the outcome."""

    camera_names = ["front", "wrist"]
    action_dt = ROBOT.action_dt

    def __init__(self, scene: CubeScene, horizon: int = 10, period: float = 0.1) -> None:
        self.scene, self.h, self.period = scene, horizon, period
        self.calls, self.operator = 0, None

    def predict(self, images: dict, joint_state: np.ndarray, instruction: str) -> np.ndarray:
        assert set(images) == set(self.camera_names) and all(i.shape == (64, 64, 3) for i in images.values())
        t = self.calls * self.period
        if self.operator is None:
            self.operator = ScriptedOperator(ROBOT, OperatorConfig(human_like=False, action_dt=self.action_dt))
            pos, yaw = self.scene.cube_pose()
            self.operator.start(t, joint_state, pos, yaw, self.scene.goal_position())
        self.calls += 1
        return np.stack([self.operator.command(t + i * self.action_dt) for i in range(self.h)])


@pytest.fixture(scope="module")
def scene():
    s = CubeScene(ROBOT, SceneConfig())
    yield s
    s.close()


def test_expert_chunks_through_the_executor_succeed(scene):
    result = rollout(scene, ExpertChunks(scene), ROBOT, seed=3, region="seen", instruction="x",
                     config=RolloutConfig(timeout_s=12.0))
    assert result.success and 1.0 < result.duration_s < 12.0
    assert result.max_cube_height > 0.05 and result.min_cube_goal_distance <= 0.04


def test_a_policy_that_holds_times_out_at_the_limit(scene):
    class Hold(ExpertChunks):
        def predict(self, images, joint_state, instruction):
            return np.repeat(np.asarray(joint_state)[None], self.h, axis=0)

    result = rollout(scene, Hold(scene), ROBOT, seed=4, region="unseen", instruction="x",
                     config=RolloutConfig(timeout_s=1.0))
    assert not result.success and result.duration_s == 1.0 and result.region == "unseen"
    assert result.max_cube_height < 0.03


def test_bench_rollouts_cli(tmp_path: Path, capsys):
    models = tmp_path / "models"
    assert main(["export", "--init", "--name", "tiny", "--models-dir", str(models), "--set", "d_model=32",
                 "--set", "encoder_layers=1", "--set", "decoder_layers=1"]) == 0
    capsys.readouterr()
    assert main(["measure", "rollouts", "--models", str(models / "tiny"), "--trials", "2", "--timeout", "0.5",
                 "--regions", "seen", "unseen", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [(r["region"], r["trials"]) for r in out["results"]] == [("seen", 2), ("unseen", 2)]
    assert all(r["successes"] == 0 and r["cycle_time_mean_s"] is None for r in out["results"])
    assert main(["measure", "rollouts", "--models", str(models / "tiny"), "--regions", "moon"]) == 2
    assert "unknown region 'moon'" in capsys.readouterr().err
    assert main(["measure", "rollouts", "--models", str(tmp_path / "nope")]) == 2
