"""The training job's configuration: every trainer parameter (config/train.yaml's `trainer:` section, dotted
names for the grouped ones) as one dataclass, each field declared once with `param` (default, description, checks),
and how parameter dicts become it. `python -m corft_ros.core.rl.config > docs/training_parameters.md` writes the
reference."""

from __future__ import annotations

from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any

from corft_ros.core.dataset.config import DatasetConfig
from corft_ros.core.params import ParamInfo, coerce, declared, declared_tree, flatten, markdown_table, param
from corft_ros.core.policy.proposals import PROPOSALS
from corft_ros.core.rl.rewards import RewardConfig
from corft_ros.core.robot import ConfigError

STAGES = ("il", "rl", "bc", "all")  # bc: the control arm (extra supervised steps, no critic)


@dataclass
class ILConfig:
    """Stage 1, imitation learning (the `il.*` parameters)."""

    lr: float = param(3e-4, "AdamW learning rate of stage 1", above=0)
    weight_decay: float = param(1e-4, "AdamW weight decay of stage 1")
    loss: str = param("l1", "the regression head's loss to the data", choices=("l1", "l2"))
    shift_pad: int = param(0, "random-shift augmentation in px (0 = off; docs/training.md §4 says why before turning "
                              "it on)", min=0)
    grad_clip: float = param(10.0, "gradient norm clip of stage 1")
    episodes: str = param("success", "episodes IL imitates: the successful ones (and an operator's corrections), or "
                                     "all", choices=("success", "all"))
    # Weight EMA and learning-rate decay, as ACT and Diffusion Policy train.
    ema_decay: float = param(0.999, "IL weight EMA decay, < 1: checkpoints and the export carry the average (the "
                                    "decay ramps up as min(ema_decay, (1 + step) / (10 + step)); 0 = off)", min=0)
    # A half-life rather than a cosine over the total: the experiment trains IL in resumed segments whose total is
    # not known in advance.
    lr_half_life: int = param(4000, "IL learning rate halves every this many steps: il.lr · max(il.lr_floor, "
                                    "0.5^(step / il.lr_half_life)) (0 = constant)", min=0)
    lr_floor: float = param(0.1, "IL learning rate never below this fraction of il.lr", above=0, max=1)

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
        if self.episodes not in ("success", "all"):
            raise ConfigError(f"il.episodes must be 'success' or 'all', got {self.episodes!r}")


@dataclass
class CORFTConfig:
    """Stage 2, CO-RFT chunked offline RL (the `corft.*` parameters; the losses: corft_ros/core/rl/learners.py)."""

    gamma: float = param(0.99, "discount γ of the rewards, the returns and the TD targets", above=0, max=1)
    tau: float = param(0.005, "Polyak rate of the target networks", above=0, max=1)
    critic_lr: float = param(3e-4, "AdamW learning rate of the critic", above=0)
    actor_lr: float = param(1e-4, "AdamW learning rate of the actor", above=0)
    # Fine-tuning the action expert as IL trained it (L1, weight EMA) was measured against these defaults on the IL
    # screen's dev starts (2026-12-07, 3000 BC steps from the same IL checkpoint): 47 vs 50 of 100, McNemar p = 0.70,
    # 27 discordant starts: no effect seen, so the defaults stay (docs/training.md §8).
    actor_loss: str = param("l2", "the action expert's supervised loss in stage 2 and the BC control (the BC terms, "
                                  "awr's weighted regression); il.loss is IL's", choices=("l1", "l2"))
    actor_ema_decay: float = param(0.0, "weight EMA decay of the action expert in stage 2 and the BC control, as "
                                        "il.ema_decay: checkpoints and the export carry the average (0 = off)", min=0)
    weight_decay: float = param(0.0, "AdamW weight decay of stage 2")
    policy_delay: int = param(2, "critic steps per actor step", min=1)
    actor_warmup_steps: int = param(500, "critic-only steps first: the actor follows a critic that has seen data",
                                    min=0)
    # Target-policy smoothing: 0 by default. On all h·d numbers of a chunk, TD3's 0.2 biased the targets low (Q of
    # the data −0.068 vs its Monte-Carlo return +0.071, measured), which with Cal-QL's max(Q, G) gave the actor a
    # free margin toward chunks that run ahead of the demos.
    policy_noise: float = param(0.0, "target-policy smoothing noise on the next-state chunk, in action standard "
                                     "deviations (TD3's 0.2 biased chunked targets low, measured: 0 = off)")
    noise_clip: float = param(0.5, "clip of the target-policy smoothing noise")
    td3_alpha: float = param(2.5, "td3bc: α of λ = α / max(mean absolute Q, corft.q_floor), the weight of the Q term")
    bc_weight: float = param(1.0, "weight w_bc of the actor's BC term (successful episodes only)")
    cql_alpha: float = param(0.1, "weight α_cql of the Cal-QL conservative term: Q(data) settles ~cql_alpha/2 above "
                                  "its TD target, so scale it with the rewards", min=0)
    cql_temperature: float = param(0.1, "temperature τ_c of the conservative term's soft max over candidates, in "
                                        "return units (1.0 drifted down here)", above=0)
    calql_bound: bool = param(True, "Cal-QL: policy and noisy candidates bounded below by the Monte-Carlo return")
    num_noisy: int = param(4, "noisy-policy candidate chunks per sample in the conservative term", min=0)
    noisy_std: float = param(0.3, "their noise σ_c, in action standard deviations")
    num_uniform: int = param(4, "uniform candidate chunks per sample in the conservative term", min=0)
    uniform_range: float = param(3.0, "their range u: U(−u, u) in normalized action units")
    grad_clip: float = param(10.0, "gradient norm clip of stage 2")
    divergence_factor: float = param(5.0, "Q diverged (the job stops) when the mean absolute Q exceeds this × the "
                                          "largest absolute return (or reward) in the data", above=1)
    episodes: str = param("all", "episodes the critic learns from (BC terms only ever imitate successful ones)",
                          choices=("all", "success"))
    extraction: str = param("none", "how the actor uses the critic (none: stays the IL policy; docs/training.md §8: "
                                    "chosen by measurement)", choices=("none", "td3bc", "rank_distill", "awr"))
    samples: int = param(8, "chunks sampled per state to rank (rank_distill) or to estimate V(s) (awr)", min=2)
    beta: float = param(1.0, "pessimism of the ranking: mean over critic heads − beta · std (also the export's "
                             "selection_beta)")
    deploy_best_of_n: int = param(8, "the exported CO-RFT model asks its runtime for best-of-N selection (1: none)")
    deploy_proposals: str = param("white", "the exported model's candidates (corft_ros/core/policy/proposals.py)",
                                  choices=PROPOSALS)
    deploy_noise_std: float = param(0.1, "their size, in action standard deviations")
    executed_prefix: int = param(0, "k: actions of a chunk executed before the next replaces it, what chunks are "
                                    "valued by (0: from corft.policy_rate_hz and the chunk dt)", min=0)
    policy_rate_hz: float = param(10.0, "the deployed policy's re-planning rate (sets k with the chunk dt)", above=0)
    awr_temperature: float = param(0.05, "awr: β_awr of the weights min(exp(A / β_awr), w_max)", above=0)
    awr_max_weight: float = param(20.0, "awr: w_max, the largest weight")
    q_floor: float = param(0.1, "td3bc: λ = α / max(mean absolute Q, q_floor)", above=0)
    # The held-out diagnostics: corft_ros/core/rl/diagnostics.py.
    holdout: float = param(0.15, "fraction (< 1) of the successful and of the failed episodes the critic never trains "
                                 "on, for its held-out diagnostics (the actor's supervised terms still use them; 0: "
                                 "none)", min=0)

    def validate(self) -> None:
        from corft_ros.core.robot import ConfigError

        checks = [
            (0.0 < self.gamma <= 1.0, f"corft.gamma must be in (0, 1], got {self.gamma}"),
            (0.0 < self.tau <= 1.0, f"corft.tau must be in (0, 1], got {self.tau}"),
            (self.critic_lr > 0 and self.actor_lr > 0, "corft learning rates must be > 0"),
            (0 <= self.actor_ema_decay < 1, f"corft.actor_ema_decay must be in [0, 1), got {self.actor_ema_decay}"),
            (self.actor_loss in ("l1", "l2"), f"corft.actor_loss must be l1 or l2, got {self.actor_loss!r}"),
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
    """The training job: its own parameters and the groups `dataset.*`, `rewards.*`, `il.*`, `corft.*`, plus
    `policy.*` (PolicyConfig overrides)."""

    stage: str = param("all", "what to run (all: il, then rl; bc: the control arm, extra supervised steps from an IL "
                              "checkpoint, no critic)", choices=STAGES)
    name: str = param("corft", "exported model name: <models_dir>/<name>/")
    output: str = param("runs/corft", "run folder: checkpoints/, tensorboard/, train.json")
    models_dir: str = param("models", "where exported models go")
    il_steps: int = param(3000, "gradient steps of stage 1 (imitation learning)", min=0)
    rl_steps: int = param(3000, "gradient steps of stage 2 (CO-RFT)", min=0)
    bc_steps: int = param(0, "gradient steps of the control arm (0: rl_steps, the same gradient budget)")
    batch_size: int = param(32, "samples (chunk starts) per gradient step, per process", min=1)
    seed: int = param(0, "random seed: initialization, batches, the critic's held-out episodes")
    log_every: int = param(20, "steps between logged scalars (TensorBoard, progress, the node's diagnostics)", min=1)
    checkpoint_every: int = param(500, "steps between checkpoints (and one at the end of each stage)", min=1)
    resume: bool = param(True, "continue from <output>/checkpoints/latest.pt when it exists")
    init_checkpoint: str = param("", "policy checkpoint to start from: IL fine-tuning, or RL from an IL run ('' = "
                                     "scratch, or resume)")
    export: bool = param(True, "export the policy to <models_dir>/<name>/ when the job ends")
    device: str = param("auto", "torch device (auto: CUDA when available)", choices=("auto", "cpu", "cuda"))
    num_workers: int = param(0, "DataLoader worker processes of stage 1 (0: load in the training process)")
    progress: bool = param(True, "progress bars")
    strict: bool = param(False, "a bad bag stops the job instead of being skipped")
    threads: int = param(0, "torch intra-op threads per process (0: torch's default)")
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


# --------------------------------------------------------------------------- the parameters, by their dotted names

# PolicyConfig fields the trainer node declares as `policy.<field>` (the rest follow the robot and the dataset;
# `corft-ros train` takes any PolicyConfig field there)
POLICY_KEYS = ("chunk_size", "d_model", "heads", "ff_dim", "encoder_layers", "decoder_layers", "critic_layers",
               "num_critics", "cnn_channels", "keypoints", "dropout")
DERIVED = {"rewards.gamma": "corft.gamma"}  # fields set from another parameter, not parameters of their own


def training_params() -> dict[str, tuple[Any, ParamInfo]]:
    """Dotted name -> (default, ParamInfo) of every training parameter, named as config_from_params reads them (and
    so `corft-ros train --set`, config/train.yaml and the trainer node): TrainConfig's own, those of its groups
    (`dataset.*`, `rewards.*`, `il.*`, `corft.*`) and `policy.<field>` for POLICY_KEYS. Defaults as the node declares
    them (ROS-typable): a None default ('from elsewhere': dataset.rate_hz, dataset.cache_dir) is 0.0 or '', which
    mean the same, and a tuple is a list."""
    from corft_ros.core.policy.config import PolicyConfig

    specs = {name: spec for name, spec in declared_tree(TrainConfig).items() if name not in DERIVED}
    policy = declared(PolicyConfig)
    specs.update({f"policy.{key}": policy[key] for key in POLICY_KEYS})
    out = {}
    for name, (default, info) in specs.items():
        if default is None:
            default = 0.0 if name.endswith("rate_hz") else ""
        out[name] = (list(default) if isinstance(default, tuple) else default, info)
    return out


def reference_markdown() -> str:
    """docs/training_parameters.md: every training parameter from its one declaration (generated; a test keeps the
    file equal to it)."""
    from corft_ros.core.policy.config import PolicyConfig

    specs = training_params()
    lines = ["# Training parameters", "",
             "Generated from the training config's dataclasses (each parameter's one declaration) by "
             "`python -m corft_ros.core.rl.config > docs/training_parameters.md`; a test keeps this file equal to it. "
             "The names are those of `corft-ros train --set NAME=VALUE` (a YAML value), of `config/train.yaml` (its "
             "`trainer:` section, dotted names written flat; it holds only what differs from these defaults) and of "
             "the trainer node's ROS parameters (which also has `bags`, `robot_config`, `steps` and "
             "`shutdown_when_done`: [parameters.md](parameters.md#trainer)). What they do and what was measured: "
             "[training.md](training.md).", ""]
    groups = {f.name: f.default_factory for f in fields(TrainConfig)
              if isinstance(f.default_factory, type) and is_dataclass(f.default_factory)}
    for prefix, cls in [("", TrainConfig), *groups.items(), ("policy", PolicyConfig)]:
        path = cls.__module__.replace(".", "/") + ".py"
        title = f"`{prefix}.*`" if prefix else "The job"
        lines += [f"## {title}", "", f"`{cls.__name__}` in `{path}`.", ""]
        group = {name: spec for name, spec in specs.items() if name.rpartition(".")[0] == prefix}
        lines += markdown_table(group)
        derived = [f"`{name}` is `{source}`" for name, source in DERIVED.items() if name.startswith(f"{prefix}.")]
        if derived:
            lines += ["", f"Not parameters of their own: {', '.join(derived)}."]
        if prefix == "policy":
            others = {f"policy.{name}": spec for name, spec in declared(PolicyConfig).items()
                      if name not in POLICY_KEYS}
            lines += ["", "`corft-ros train` (`--set`, `--config`) also takes the other PolicyConfig fields; the "
                      "trainer node does not declare them. Unset, `camera_names`, `image_height`/`image_width` and "
                      "`action_dt` follow `dataset.camera_names`, `dataset.image_size` and the dataset's tick rate.",
                      "", *markdown_table(others)]
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":  # python -m corft_ros.core.rl.config > docs/training_parameters.md
    from corft_ros.core.rl.config import reference_markdown as _reference  # the module's classes, not __main__'s

    print(_reference(), end="")
