"""Stage 2, CO-RFT: its configuration and the target arithmetic (the learners themselves, with the whole loss on
one screen each, are in corft_ros/core/rl/learners.py).

The losses are written out in learners.py's docstring and in docs/training.md.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn


class QDivergenceError(RuntimeError):
    """The critic's values left the range any return can have: training stops."""


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
    executed_prefix: int = 0  # k: actions of a chunk executed before the next replaces it (0: from the rates)
    policy_rate_hz: float = 10.0  # the deployed policy's re-planning rate (sets k with the chunk dt)
    awr_temperature: float = 0.05
    awr_max_weight: float = 20.0
    q_floor: float = 0.1  # td3bc: λ = α / max(mean|Q|, q_floor)

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
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)


def calql_bound(q_candidates: torch.Tensor, mc_return: torch.Tensor, bounded: torch.Tensor) -> torch.Tensor:
    """Cal-QL: max(Q, G_t) where `bounded` [K] marks policy candidates; others unchanged.

    q_candidates [M, B, K, h], mc_return [B], bounded [K] bool."""
    g = mc_return.view(1, -1, 1, 1).to(q_candidates.dtype)
    return torch.where(bounded.view(1, 1, -1, 1), torch.maximum(q_candidates, g), q_candidates)


def td_targets(reward: torch.Tensor, done: torch.Tensor, q_next: torch.Tensor, gamma: float) -> torch.Tensor:
    """y[b, j] = reward[b, j] + γ^{j+1} (1 − done[b, j]) q_next[b, j]; reward is the prefix's discounted sum."""
    h = reward.shape[-1]
    discount = gamma ** torch.arange(1, h + 1, device=reward.device, dtype=reward.dtype)
    return reward + discount * (1.0 - done.to(reward.dtype)) * q_next


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of x [..., B, h] over entries where mask [B, h] (broadcast over leading dims)."""
    w = mask.to(x.dtype).expand_as(x)
    return (x * w).sum() / w.sum().clamp_min(1.0)


def make_target(policy: nn.Module) -> nn.Module:
    target = copy.deepcopy(policy)
    for p in target.parameters():
        p.requires_grad_(False)
    return target.eval()


@torch.no_grad()
def polyak_update(target: nn.Module, online: nn.Module, tau: float) -> None:
    for tp, p in zip(target.parameters(), online.parameters(), strict=True):
        tp.lerp_(p.detach(), tau)
    for tb, b in zip(target.buffers(), online.buffers(), strict=True):
        tb.copy_(b)
