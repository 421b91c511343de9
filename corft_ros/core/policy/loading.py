"""The policy node's model, loaded as the node's parameters ask and checked before the node starts: the runtime
(ONNX or LeRobot backend, default models/default; -1 for noise_std or selection_beta means the model's own value),
its selection prefix (the chunk steps the executor runs before the next chunk), its joints against the robot's and
its cameras against the ones configured. Every refusal is a ConfigError that names the setting or the model."""

from __future__ import annotations

from corft_ros.core.paths import models_dir
from corft_ros.core.policy.backends import load_runtime
from corft_ros.core.policy.config import executed_prefix
from corft_ros.core.policy.runtime import PolicyRuntime
from corft_ros.core.robot import CommandError, ConfigError, RobotConfig


def check_node_settings(noise_std: float, selection_beta: float, camera_topic_format: str) -> None:
    """The node's own settings (the model's are checked as it loads: load_checked_runtime)."""
    if noise_std < 0 and noise_std != -1.0:
        raise ConfigError(f"noise_std must be >= 0 (-1 = the model's), got {noise_std}")
    if selection_beta < 0 and selection_beta != -1.0:
        raise ConfigError(f"selection_beta must be >= 0 (-1 = the model's), got {selection_beta}")
    if "{name}" not in camera_topic_format:
        raise ConfigError(f"camera_topic_format must contain '{{name}}', got '{camera_topic_format}'")


def load_checked_runtime(p, robot: RobotConfig, backend: str, best_of_n: int,
                         rate_hz: float) -> tuple[str, PolicyRuntime]:
    """(model path, runtime) for the policy node's parameters `p` (core/node_params/policy.PolicyParams), checked
    against the robot's joints and the cameras (default: models/default)."""
    model_path, noise_std, beta, seed = p.model_path, p.noise_std, p.selection_beta, p.seed
    path = model_path or str(models_dir() / "default")
    # ModelError is a ConfigError: a corrupt or mismatched model refuses to start, naming the file.
    if backend == "lerobot" and not model_path:
        raise ConfigError("backend lerobot needs model_path: a LeRobot policy folder (save_pretrained)")
    try:
        runtime: PolicyRuntime = load_runtime(
            path, backend=backend, threads=p.threads, best_of_n=best_of_n or None,
            noise_std=None if noise_std == -1.0 else noise_std, seed=None if seed < 0 else seed,
            allow_encoder=p.allow_encoder, device=p.device,
            beta=None if beta == -1.0 else beta, robot=robot, lerobot_python=p.lerobot_python,
            proposals=p.proposals or None, selection=p.selection or None,
        )
    except ValueError as exc:  # a selection setting that does not fit this model (e.g. warp on a flow head)
        raise ConfigError(str(exc)) from None
    cfg = runtime.config
    try:
        runtime.prefix = (min(p.selection_prefix, cfg.chunk_size) if p.selection_prefix
                          else executed_prefix(rate_hz, cfg.action_dt, cfg.chunk_size))
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    try:
        robot.index_of(runtime.joint_names)
    except CommandError as exc:
        raise ConfigError(f"model {path} does not fit robot '{robot.name}': {exc}") from None
    cameras = list(p.cameras) or runtime.camera_names
    missing = [c for c in runtime.camera_names if c not in cameras]
    extra = [c for c in cameras if c not in runtime.camera_names]
    if missing or extra:
        raise ConfigError(
            f"cameras {cameras}: the model needs exactly {runtime.camera_names} "
            + (f"(missing '{missing[0]}')" if missing else f"('{extra[0]}' is not a model input)")
        )
    return path, runtime
