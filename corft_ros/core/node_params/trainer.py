"""The trainer node's parameters: its own four (`TrainerParams`) and every training parameter of
config/train.yaml, dotted (corft.gamma, dataset.image_size, ...), from the training config's dataclasses."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from corft_ros.core.params import flatten, param


@dataclass
class TrainerParams:
    bags: str = param("episodes", "folder of recorded episodes (or one episode)")
    robot_config: str = param("", "robot.yaml path ('' = bundled)")
    steps: int = param(0, "cap on gradient steps per stage (0 = none)", min=0)
    shutdown_when_done: bool = param(True, "exit when the job ends")


# PolicyConfig fields a training run may set (the rest follow the robot and the dataset)
POLICY_KEYS = ("chunk_size", "d_model", "heads", "ff_dim", "encoder_layers", "decoder_layers", "critic_layers",
               "num_critics", "cnn_channels", "keypoints", "dropout")

DESCRIPTIONS = {
    "stage": "il | rl | bc | all (bc: the control arm, extra supervised steps)",
    "name": "exported model name: <models_dir>/<name>/",
    "output": "run folder: checkpoints/, tensorboard/, train.json",
    "il_steps": "gradient steps of stage 1 (imitation learning)",
    "rl_steps": "gradient steps of stage 2 (CO-RFT)",
    "init_checkpoint": "policy checkpoint to start from ('' = scratch, or resume)",
    "resume": "continue from <output>/checkpoints/latest.pt when it exists",
    "strict": "a bad bag stops the job instead of being skipped",
    "il.ema_decay": "IL weight EMA decay (checkpoints and the export carry the average; 0 = off)",
    "il.lr_half_life": "IL learning rate halves every this many steps (0 = constant)",
    "il.lr_floor": "IL learning rate never below this fraction of il.lr",
}

def default_parameters() -> dict:
    """Flat dotted name -> default value of every training parameter (ROS-typable: no None), from the training
    config's dataclasses (TrainConfig and its parts: the one declaration of the training parameters)."""
    from corft_ros.core.policy.config import PolicyConfig
    from corft_ros.core.rl.trainer import TrainConfig

    data = asdict(TrainConfig())
    data.pop("policy")
    data["rewards"].pop("gamma")  # the discount is corft.gamma (one value for rewards and TD targets)
    flat = {}
    for name, value in flatten(data).items():  # ROS-typable: no None, no tuple
        if value is None:
            value = 0.0 if name.endswith("rate_hz") else ""
        flat[name] = list(value) if isinstance(value, tuple) else value
    defaults = {f.name: f.default for f in fields(PolicyConfig) if f.name in POLICY_KEYS}
    defaults["cnn_channels"] = PolicyConfig(joint_names=["j"]).cnn_channels
    for key in POLICY_KEYS:
        flat[f"policy.{key}"] = defaults[key]
    return flat


def training_parameters() -> dict:
    """Flat dotted name -> (default, description) of every training parameter."""
    return {name: (default, DESCRIPTIONS.get(name, f"training parameter {name}"))
            for name, default in default_parameters().items()}
