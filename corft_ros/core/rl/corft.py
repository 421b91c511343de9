"""Stage 2, CO-RFT: the target arithmetic. Its configuration (CORFTConfig) is in core/rl/config.py with the rest;
the learners themselves, with the whole loss on one screen each, are in corft_ros/core/rl/learners.py.

The losses are written out in learners.py's docstring and in docs/training.md.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from corft_ros.core.rl.config import CORFTConfig  # noqa: F401  (the stage's configuration)


class QDivergenceError(RuntimeError):
    """The critic's values left the range any return can have: training stops."""


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
