"""The one factory of a freshly initialised policy (export --init, the benchmarks' stand-in models, tests)."""

from __future__ import annotations


def default_instruction() -> list[str]:
    """The sim's task instruction (config/sim.yaml), so a fresh model needs no encoder at deploy in the sim."""
    import yaml

    from corft_ros.core.paths import config_path

    try:
        data = yaml.safe_load(config_path("sim").read_text()) or {}
        text = data["sim_arm"]["ros__parameters"]["instruction"]
    except (OSError, KeyError, TypeError, yaml.YAMLError):
        return []
    return [str(text)] if str(text).strip() else []


def init_policy(robot_config: str = "", cameras: list[str] | None = None, image_size: list[int] | None = None,
                chunk_size: int | None = None, overrides: dict | None = None, seed: int = 0):
    """A freshly initialised ChunkPolicy for a robot/camera config. Normalization: state and action means at the
    robot's home pose; action std 0.05 rad so the untrained policy's chunks stay near home."""
    import numpy as np
    import torch

    from corft_ros.core.policy.config import PolicyConfig
    from corft_ros.core.policy.model import ChunkPolicy
    from corft_ros.core.robot import ConfigError, load_robot_config

    robot = load_robot_config(robot_config or None)
    fields = dict(overrides or {})
    if image_size:
        if len(image_size) not in (1, 2):
            raise ConfigError("--image-size takes one side or height width")
        fields["image_height"], fields["image_width"] = image_size[0], image_size[-1]
    if chunk_size is not None:
        fields["chunk_size"] = chunk_size
    try:
        config = PolicyConfig.for_robot(robot, camera_names=cameras, **fields)
    except TypeError as exc:
        raise ConfigError(f"--set: {exc}") from None
    torch.manual_seed(seed)
    model = ChunkPolicy(config)
    home = robot.home_array
    model.set_normalization(home, np.ones_like(home), home, np.full_like(home, 0.05))
    return model.eval()
