"""Stage 2, CO-RFT: chunked offline RL on the critic expert and the action expert (CORL-style: the
whole loss is in `CORFTObjective.critic_loss` and `.actor_loss`).

Notation: B batch, h chunk size, M critic heads, Q_m^(j)(s, a_{0..j}) head m's value of the prefix j.
All actions are in normalized units. θ̄ are Polyak-averaged target weights (backbone, actor, critic).

Critic (every step), for each sample b and prefix j with target_mask[b, j]:
    ã      = π̄(s_{t+j+1}) + clip(N(0, σ²), −c, c)                          target-policy smoothing
    y_{t,j} = Σ_{i≤j} γ^i r_{t+i} + γ^{j+1} (1 − d_{t,j}) · min_m Q̄_m^(h−1)(s_{t+j+1}, ã)
    L_TD   = mean_{m, (b,j) masked} (Q_m^(j)(s_t, a_{t:t+j}) − y_{t,j})²      j = h−1: the Q-chunking backup
    candidates C(s_t) = {π(s_t)} ∪ {π(s_t) + N(0, σ_c²)}×n_noisy ∪ {U(−u, u)^{h×d}}×n_uniform
    Cal-QL:  Q̃ = max(Q, G_t) for the policy and noisy candidates (G_t: Monte-Carlo return-to-go);
             uniform candidates unbounded
    L_cons = mean_{m, (b,j) masked} [ τ_c (logsumexp_{c∈C} Q̃_m^(j)(s_t, c)/τ_c − log K) − Q_m^(j)(s_t, a_{t:t+j}) ]
    L_critic = L_TD + α_cql · L_cons        (updates the critic expert; the backbone too, at its own LR, only
                                             with freeze_backbone: false)
Actor (every `policy_delay` steps once `actor_warmup_steps` critic-only steps are done), on detached
backbone features:
    λ = α / mean|Q_1^(h−1)(s, π(s))|   (no gradient through λ)
    L_actor = −λ · mean Q_1^(h−1)(s, π(s)) + w_bc · masked_mean (π(s) − a_{t:t+h})²
Targets, every step: θ̄ ← τ θ + (1 − τ) θ̄
Guard: a non-finite loss, or mean|Q| above `divergence_factor` × the largest |Monte-Carlo return| (or
|reward|) of the data, stops training with QDivergenceError (on every rank).
"""

from __future__ import annotations

import copy
import math
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
    backbone_lr: float = 3e-5
    freeze_backbone: bool = True  # the critic must not move the features the IL actor reads (docs/training.md)
    weight_decay: float = 0.0
    policy_delay: int = 2
    actor_warmup_steps: int = 500  # critic-only steps first: the actor follows a critic that has seen data
    policy_noise: float = 0.2
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
    episodes: str = "all"

    def validate(self) -> None:
        from corft_ros.core.robot import ConfigError

        checks = [
            (0.0 < self.gamma <= 1.0, f"corft.gamma must be in (0, 1], got {self.gamma}"),
            (0.0 < self.tau <= 1.0, f"corft.tau must be in (0, 1], got {self.tau}"),
            (self.critic_lr > 0 and self.actor_lr > 0, "corft learning rates must be > 0"),
            (self.backbone_lr >= 0, f"corft.backbone_lr must be >= 0, got {self.backbone_lr}"),
            (self.policy_delay >= 1, f"corft.policy_delay must be >= 1, got {self.policy_delay}"),
            (self.actor_warmup_steps >= 0, f"corft.actor_warmup_steps must be >= 0, got {self.actor_warmup_steps}"),
            (self.cql_alpha >= 0, f"corft.cql_alpha must be >= 0, got {self.cql_alpha}"),
            (self.cql_temperature > 0, f"corft.cql_temperature must be > 0, got {self.cql_temperature}"),
            (self.num_noisy >= 0 and self.num_uniform >= 0, "corft.num_noisy/num_uniform must be >= 0"),
            (self.divergence_factor > 1, f"corft.divergence_factor must be > 1, got {self.divergence_factor}"),
            (self.episodes in ("all", "success"), f"corft.episodes must be 'all' or 'success', got {self.episodes!r}"),
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


class CORFTObjective(nn.Module):
    """forward(batch, part) with part 'critic' or 'actor' → (loss, logs). One module so that one
    DistributedDataParallel wrapper syncs both updates (each forward is followed by its backward)."""

    def __init__(self, policy: nn.Module, target: nn.Module, cfg: CORFTConfig, value_scale: float) -> None:
        """`value_scale`: the largest |value| the data shows (max |G_t| and max |r_t|)."""
        super().__init__()
        self.policy = policy
        self.target = [target]  # a list: not a submodule, so DDP neither syncs nor checks it
        self.cfg = cfg
        self.q_limit = cfg.divergence_factor * max(value_scale, 1e-3)

    def forward(self, batch: dict[str, torch.Tensor], part: str):
        return self.critic_loss(batch) if part == "critic" else self.actor_loss(batch)

    # ------------------------------------------------------------------------------------------ critic
    def td_target(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """y [B, h] (no gradient)."""
        cfg, tgt = self.cfg, self.target[0]
        nxt_img, nxt_state = batch["next_images"], batch["next_state"]  # [B, h, ...]
        b, h = nxt_state.shape[:2]
        with torch.no_grad():
            text = batch["text"].repeat_interleave(h, dim=0)
            feats = tgt.encode(nxt_img.flatten(0, 1), nxt_state.flatten(0, 1), text)
            a_next = tgt.act(feats)
            noise = (torch.randn_like(a_next) * cfg.policy_noise).clamp(-cfg.noise_clip, cfg.noise_clip)
            q_next = tgt.critic(feats, a_next + noise)[..., -1].min(dim=0).values.view(b, h)
            return td_targets(batch["reward"], batch["done"], q_next, cfg.gamma)

    def candidates(self, features: torch.Tensor, data_chunk: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Candidate chunks [B, K, h, d] and which are policy samples [K] (bounded by Cal-QL)."""
        cfg = self.cfg
        with torch.no_grad():
            pi = self.policy.act(features.detach())
        cands = [pi.unsqueeze(1)]
        if cfg.num_noisy:
            cands.append(pi.unsqueeze(1) + cfg.noisy_std * torch.randn(
                pi.shape[0], cfg.num_noisy, *pi.shape[1:], device=pi.device, dtype=pi.dtype))
        if cfg.num_uniform:
            cands.append((torch.rand(pi.shape[0], cfg.num_uniform, *pi.shape[1:], device=pi.device,
                                     dtype=pi.dtype) * 2 - 1) * cfg.uniform_range)
        bounded = torch.tensor([True] * (1 + cfg.num_noisy) + [False] * cfg.num_uniform, device=pi.device)
        return torch.cat(cands, dim=1), bounded

    def critic_loss(self, batch: dict[str, torch.Tensor]):
        cfg, p = self.cfg, self.policy
        mask = batch["target_mask"]
        y = self.td_target(batch)
        feats = p.encode(batch["images"], batch["state"], batch["text"])
        data_chunk = p.normalize_action(batch["action"])
        q = p.critic(feats, data_chunk)  # [M, B, h]
        td_loss = masked_mean((q - y.unsqueeze(0)).pow(2), mask)
        loss = td_loss
        logs = {}
        if cfg.cql_alpha > 0:
            cands, bounded = self.candidates(feats, data_chunk)
            b, k = cands.shape[:2]
            q_c = p.critic(feats.repeat_interleave(k, dim=0), cands.flatten(0, 1))  # [M, B*K, h]
            q_c = q_c.view(q_c.shape[0], b, k, -1)
            if cfg.calql_bound:
                q_c = calql_bound(q_c, batch["mc_return"], bounded)
            t = cfg.cql_temperature
            # soft maximum over the K candidates, minus τ log K so that equal values give a gap of 0
            pushed_down = t * (torch.logsumexp(q_c / t, dim=2) - math.log(k))  # [M, B, h]
            gap = masked_mean(pushed_down - q, mask)
            loss = loss + cfg.cql_alpha * gap
            logs["rl/conservative_gap"] = gap.detach()
            logs["rl/q_candidates"] = q_c.detach().mean()
        with torch.no_grad():
            q_abs = masked_mean(q.abs(), mask)
            logs.update({
                "rl/critic_loss": loss.detach(),
                "rl/td_loss": td_loss.detach(),
                "rl/td_error": masked_mean((q - y.unsqueeze(0)).abs(), mask),
                "rl/q_data": masked_mean(q, mask),
                "rl/q_data_last": q[..., -1].mean(),
                "rl/target": masked_mean(y, mask),
                "rl/mc_return": batch["mc_return"].mean(),
            })
        logs["rl/q_abs"] = q_abs
        return loss, logs

    # ------------------------------------------------------------------------------------------ actor
    def actor_loss(self, batch: dict[str, torch.Tensor]):
        cfg, p = self.cfg, self.policy
        with torch.no_grad():
            feats = p.encode(batch["images"], batch["state"], batch["text"])
        pi = p.act(feats)
        q_pi = p.critic(feats, pi)[0, :, -1]  # head 1, whole chunk
        lam = cfg.td3_alpha / q_pi.abs().mean().detach().clamp_min(1e-6)
        target = p.normalize_action(batch["action"])
        w = batch["valid"].to(pi.dtype).unsqueeze(-1)
        bc = ((pi - target).pow(2) * w).sum() / (w.sum().clamp_min(1.0) * pi.shape[-1])
        loss = -lam * q_pi.mean() + cfg.bc_weight * bc
        return loss, {"rl/actor_loss": loss.detach(), "rl/bc_loss": bc.detach(), "rl/q_policy": q_pi.detach().mean(),
                      "rl/lambda": lam.detach()}

    def divergence(self, loss: torch.Tensor, q_abs: torch.Tensor) -> str | None:
        """None while the values are plausible, else the one-line reason to stop."""
        value = float(q_abs)
        if not torch.isfinite(loss) or not math.isfinite(value):
            return "CO-RFT loss became NaN/Inf: Q diverged (lower corft.critic_lr, raise corft.cql_alpha)"
        if value > self.q_limit:
            return (
                f"Q diverged: mean |Q| = {value:.3g} exceeds {self.q_limit:.3g} "
                f"({self.cfg.divergence_factor:g} x the largest |return| in the data); lower corft.critic_lr or "
                f"corft.cql_alpha, or shorten the chunk"
            )
        return None
