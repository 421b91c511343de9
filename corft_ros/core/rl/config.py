"""The training job's configuration: every trainer parameter (config/train.yaml's `trainer:` section, dotted
names for the grouped ones) as one dataclass, and how parameter dicts become it."""

from __future__ import annotations

from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any

from corft_ros.core.dataset.config import DatasetConfig
from corft_ros.core.params import coerce, flatten
from corft_ros.core.policy.proposals import PROPOSALS
from corft_ros.core.rl.rewards import RewardConfig
from corft_ros.core.robot import ConfigError

STAGES = ("il", "rl", "bc", "all")  # bc: the control arm (extra supervised steps, no critic)


@dataclass
class ILConfig:
    lr: float = 3e-4
    weight_decay: float = 1e-4
    loss: str = "l1"  # l1 | l2
    shift_pad: int = 0  # random-shift augmentation in pixels (0: off; see docs/training.md before turning it on)
    grad_clip: float = 10.0
    episodes: str = "success"  # imitate 'success'ful episodes only, or 'all'
    # Weight EMA, as ACT and Diffusion Policy train: checkpoints and the export carry the average (decay ramps up as
    # min(ema_decay, (1 + step) / (10 + step))); 0 = off.
    ema_decay: float = 0.999
    # Learning-rate decay: lr * max(lr_floor, 0.5 ** (step / lr_half_life)); 0 = constant. A half-life rather than a
    # cosine over the total: the experiment trains IL in resumed segments whose total is not known in advance.
    lr_half_life: int = 4000
    lr_floor: float = 0.1

    def validate(self) -> None:
        from corft_ros.core.robot import ConfigError

        if self.loss not in ("l1", "l2"):
            raise ConfigError(f"il.loss must be 'l1' or 'l2', got {self.loss!r}")
        if self.lr <= 0:
            raise ConfigError(f"il.lr must be > 0, got {self.lr}")
        if not 0 <= self.ema_decay < 1:
            raise ConfigError(f"il.ema_decay must be in [0, 1), got {self.ema_decay}")
        if self.lr_half_life < 0 or not 0 < self.lr_floor <= 1:
            raise ConfigError(f"il.lr_half_life must be >= 0 and il.lr_floor in (0, 1], got {self.lr_half_life}, "
                              f"{self.lr_floor}")
        if self.shift_pad < 0:
            raise ConfigError(f"il.shift_pad must be >= 0, got {self.shift_pad}")


@dataclass
class CORFTConfig:
    gamma: float = 0.99
    tau: float = 0.005
    critic_lr: float = 3e-4
    actor_lr: float = 1e-4
    weight_decay: float = 0.0
    policy_delay: int = 2
    actor_warmup_steps: int = 500  # critic-only steps first: the actor follows a critic that has seen data
    # Target-policy smoothing: 0 by default. On all h·d numbers of a chunk, TD3's 0.2 biased the targets low (Q of
    # the data −0.068 vs its Monte-Carlo return +0.071, measured), which with Cal-QL's max(Q, G) gave the actor a
    # free margin toward chunks that run ahead of the demos.
    policy_noise: float = 0.0
    noise_clip: float = 0.5
    td3_alpha: float = 2.5
    bc_weight: float = 1.0
    cql_alpha: float = 0.1  # Q(data) settles ~cql_alpha/2 above its TD target: scale with the rewards
    cql_temperature: float = 0.1  # in return units: a soft max over candidates (1.0 drifted down here)
    calql_bound: bool = True
    num_noisy: int = 4
    noisy_std: float = 0.3
    num_uniform: int = 4
    uniform_range: float = 3.0  # normalized action units: U(−u, u)
    grad_clip: float = 10.0
    divergence_factor: float = 5.0
    episodes: str = "all"  # the critic learns from every episode; BC terms only ever imitate successful ones
    extraction: str = "none"  # none | td3bc | rank_distill | awr (docs/training.md §8: chosen by measurement)
    samples: int = 8  # chunks sampled per state to rank (rank_distill) or to estimate V(s) (awr)
    beta: float = 1.0  # pessimism of the ranking: mean over critic heads − beta · std
    deploy_best_of_n: int = 8  # the exported CO-RFT model asks its runtime for best-of-N selection (1: none)
    deploy_proposals: str = "white"  # its candidates: white | smooth | warp | mixed (core/policy/proposals.py)
    deploy_noise_std: float = 0.1  # their size, in action standard deviations
    executed_prefix: int = 0  # k: actions of a chunk executed before the next replaces it (0: from the rates)
    policy_rate_hz: float = 10.0  # the deployed policy's re-planning rate (sets k with the chunk dt)
    awr_temperature: float = 0.05
    awr_max_weight: float = 20.0
    q_floor: float = 0.1  # td3bc: λ = α / max(mean|Q|, q_floor)
    # Episodes the critic never trains on (a stratified fraction of the successes and of the failures), for its
    # held-out diagnostics (corft_ros/core/rl/diagnostics.py); the actor's supervised terms still use them. 0: none.
    holdout: float = 0.15

    def validate(self) -> None:
        from corft_ros.core.robot import ConfigError

        checks = [
            (0.0 < self.gamma <= 1.0, f"corft.gamma must be in (0, 1], got {self.gamma}"),
            (0.0 < self.tau <= 1.0, f"corft.tau must be in (0, 1], got {self.tau}"),
            (self.critic_lr > 0 and self.actor_lr > 0, "corft learning rates must be > 0"),
            (self.policy_delay >= 1, f"corft.policy_delay must be >= 1, got {self.policy_delay}"),
            (self.actor_warmup_steps >= 0, f"corft.actor_warmup_steps must be >= 0, got {self.actor_warmup_steps}"),
            (self.cql_alpha >= 0, f"corft.cql_alpha must be >= 0, got {self.cql_alpha}"),
            (self.cql_temperature > 0, f"corft.cql_temperature must be > 0, got {self.cql_temperature}"),
            (self.num_noisy >= 0 and self.num_uniform >= 0, "corft.num_noisy/num_uniform must be >= 0"),
            (self.divergence_factor > 1, f"corft.divergence_factor must be > 1, got {self.divergence_factor}"),
            (self.episodes in ("all", "success"), f"corft.episodes must be 'all' or 'success', got {self.episodes!r}"),
            (self.extraction in ("none", "td3bc", "rank_distill", "awr"),
             f"corft.extraction must be none, td3bc, rank_distill or awr, got {self.extraction!r}"),
            (self.samples >= 2, f"corft.samples must be >= 2, got {self.samples}"),
            (self.executed_prefix >= 0 and self.policy_rate_hz > 0, "corft.executed_prefix >= 0, policy_rate_hz > 0"),
            (self.awr_temperature > 0 and self.q_floor > 0, "corft.awr_temperature and q_floor must be > 0"),
            (self.deploy_proposals in PROPOSALS,
             f"corft.deploy_proposals must be one of {', '.join(PROPOSALS)}, got {self.deploy_proposals!r}"),
            (0 <= self.holdout < 1, f"corft.holdout must be in [0, 1), got {self.holdout}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)


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
