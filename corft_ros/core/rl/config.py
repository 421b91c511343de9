"""The training job's configuration: every trainer parameter (config/train.yaml's `trainer:` section, dotted
names for the grouped ones) as one dataclass, and how parameter dicts become it."""

from __future__ import annotations

from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any

from corft_ros.core.params import coerce, flatten
from corft_ros.core.rl.corft import CORFTConfig
from corft_ros.core.rl.dataset import DatasetConfig
from corft_ros.core.rl.il import ILConfig
from corft_ros.core.rl.rewards import RewardConfig
from corft_ros.core.robot import ConfigError

STAGES = ("il", "rl", "bc", "all")  # bc: the control arm (extra supervised steps, no critic)


@dataclass
class TrainConfig:
    stage: str = "all"  # il | rl | bc | all (= il, then rl)
    name: str = "corft"  # the exported model: <models_dir>/<name>/
    output: str = "runs/corft"  # checkpoints/, tensorboard/, train.json
    models_dir: str = "models"
    il_steps: int = 3000
    rl_steps: int = 3000
    bc_steps: int = 0  # the control arm's steps (0: rl_steps, the same gradient budget)
    batch_size: int = 32
    seed: int = 0
    log_every: int = 20
    checkpoint_every: int = 500
    resume: bool = True
    init_checkpoint: str = ""  # start from this policy checkpoint (IL fine-tuning, or RL from an IL run)
    export: bool = True
    device: str = "auto"  # auto | cpu | cuda
    num_workers: int = 0
    progress: bool = True
    strict: bool = False
    threads: int = 0  # torch intra-op threads per process (0: torch's default)
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    rewards: RewardConfig = field(default_factory=RewardConfig)
    il: ILConfig = field(default_factory=ILConfig)
    corft: CORFTConfig = field(default_factory=CORFTConfig)
    policy: dict = field(default_factory=dict)  # PolicyConfig overrides (chunk_size, d_model, ...)

    def validate(self) -> None:
        if self.stage not in STAGES:
            raise ConfigError(f"stage must be one of {', '.join(STAGES)}, got {self.stage!r}")
        for name in ("il_steps", "rl_steps", "batch_size", "log_every", "checkpoint_every"):
            if int(getattr(self, name)) < (0 if name.endswith("steps") else 1):
                raise ConfigError(f"{name} must be a positive integer, got {getattr(self, name)!r}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ConfigError(f"device must be auto, cpu or cuda, got {self.device!r}")
        self.il.validate()
        self.corft.validate()
        self.rewards.gamma = self.corft.gamma


def config_from_params(params: dict[str, Any], base: TrainConfig | None = None) -> TrainConfig:
    """Apply parameters to a TrainConfig: flat dotted names ('corft.gamma': 0.98, 'il_steps': 100) or nested
    mappings ({'corft': {'gamma': 0.98}}). The same names are the trainer node's ROS parameters and
    config/train.yaml's keys; an unknown name is a ConfigError."""
    cfg = base or TrainConfig()
    for key, value in flatten(params).items():
        target: Any = cfg
        parts = key.split(".")
        for part in parts[:-1]:
            if not (is_dataclass(target) and hasattr(target, part)):
                raise ConfigError(f"unknown training parameter '{key}'")
            target = getattr(target, part)
        leaf = parts[-1]
        if isinstance(target, dict):  # free-form overrides (policy.*)
            target[leaf] = value
            continue
        if not is_dataclass(target) or leaf not in {f.name for f in fields(target)}:
            raise ConfigError(f"unknown training parameter '{key}'")
        setattr(target, leaf, coerce(value, getattr(target, leaf), f"training parameter '{key}'"))
    cfg.dataset.image_size = tuple(int(v) for v in cfg.dataset.image_size)  # type: ignore[assignment]
    return cfg
