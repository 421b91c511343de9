"""Stage 1, imitation learning: full-parameter training of backbone + action expert on data chunks.

    loss = Σ_{b,j,k} valid[b,j] · ℓ(π(s_b)[j,k] − norm(a_{t_b+j})[k]) / (d · Σ valid),   ℓ = |·| (L1) or (·)² (L2)
with π(s) = act(encode(shift(images), state, text)) in normalized action units. Chunk steps past the
end of the episode (valid = 0) are not imitated.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class ILConfig:
    lr: float = 3e-4
    weight_decay: float = 1e-4
    loss: str = "l1"  # l1 | l2
    shift_pad: int = 0  # random-shift augmentation in pixels (0: off; see docs/training.md before turning it on)
    grad_clip: float = 10.0
    episodes: str = "success"  # imitate 'success'ful episodes only, or 'all'

    def validate(self) -> None:
        from corft_ros.core.robot import ConfigError

        if self.loss not in ("l1", "l2"):
            raise ConfigError(f"il.loss must be 'l1' or 'l2', got {self.loss!r}")
        if self.lr <= 0:
            raise ConfigError(f"il.lr must be > 0, got {self.lr}")
        if self.shift_pad < 0:
            raise ConfigError(f"il.shift_pad must be >= 0, got {self.shift_pad}")


def chunk_regression(pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor, kind: str) -> torch.Tensor:
    """Masked L1/L2 between chunks [B, h, d]; `valid` [B, h]."""
    diff = pred - target
    err = diff.abs() if kind == "l1" else diff.pow(2)
    w = valid.to(err.dtype).unsqueeze(-1)
    return (err * w).sum() / (w.sum().clamp_min(1.0) * err.shape[-1])


def il_parameters(policy: nn.Module) -> list[nn.Parameter]:
    """Backbone + action expert (the critic is left alone in stage 1)."""
    return list(policy.backbone_parameters()) + list(policy.actor_parameters())
