"""Stage 1, imitation learning: full-parameter training of backbone + action expert on data chunks.

    loss = Σ_{b,j,k} valid[b,j] · ℓ(π(s_b)[j,k] − norm(a_{t_b+j})[k]) / (d · Σ valid),   ℓ = |·| (L1) or (·)² (L2)
with π(s) = act(encode(shift(images), state, text)) in normalized action units. Chunk steps past the
end of the episode (valid = 0) are not imitated.
"""

from __future__ import annotations

import torch
from torch import nn

from corft_ros.core.rl.config import ILConfig  # noqa: F401  (the stage's configuration)


def chunk_regression(pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor, kind: str) -> torch.Tensor:
    """Masked L1/L2 between chunks [B, h, d]; `valid` [B, h]."""
    diff = pred - target
    err = diff.abs() if kind == "l1" else diff.pow(2)
    w = valid.to(err.dtype).unsqueeze(-1)
    return (err * w).sum() / (w.sum().clamp_min(1.0) * err.shape[-1])


def il_parameters(policy: nn.Module) -> list[nn.Parameter]:
    """Backbone + action expert (the critic is left alone in stage 1)."""
    return list(policy.backbone_parameters()) + list(policy.actor_parameters())
