"""The trainer node's parameters: its own four (`TrainerParams`) and every training parameter of
config/train.yaml, dotted (corft.gamma, dataset.image_size, ...), from the training config's declarations
(corft_ros/core/rl/config.py; docs/training_parameters.md)."""

from __future__ import annotations

from dataclasses import dataclass

from corft_ros.core.params import param


@dataclass
class TrainerParams:
    bags: str = param("episodes", "folder of recorded episodes (or one episode)")
    robot_config: str = param("", "robot.yaml path ('' = bundled)")
    steps: int = param(0, "cap on gradient steps per stage (0 = none)", min=0)
    shutdown_when_done: bool = param(True, "exit when the job ends")


def default_parameters() -> dict:
    """Flat dotted name -> default value of every training parameter, ROS-typable (no None, no tuple), from the
    training config's declarations (corft_ros/core/rl/config.py: training_params)."""
    return {name: default for name, (default, _) in training_parameters().items()}


def training_parameters() -> dict:
    """Flat dotted name -> (ROS-typable default, ParamInfo) of every training parameter."""
    from corft_ros.core.rl.config import training_params

    return training_params()
