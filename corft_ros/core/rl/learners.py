"""Every training objective as a learner (CORL's shape): `update(batch, step) -> metrics`, `state_dict()`,
`load_state_dict()`; one stage loop (`corft_ros.core.rl.loop`) runs any of them.

Notation: B batch, h chunk size, M critic heads, k the executed prefix (the actions of a chunk that run before the
next chunk replaces it: policy period / action dt, 2 at 10 Hz re-planning of 20 Hz chunks), Q_m^(j)(s, a_{0..j}) head
m's value of prefix j, π the action expert, θ̄ Polyak targets. Actions are in normalized units.

ILLearner (stage 1; images → backbone → action expert, the whole model except the critic):
    regression head: L = masked mean |π(s) − a_{t:t+h}|   (or squared)
    flow head:       L = flow matching toward a_{t:t+h}  (ChunkPolicy.flow_loss)

CO-RFT (stage 2) runs on *features*: the backbone is frozen (the critic must not move what the IL actor reads), so
every tick is encoded once (`FeatureBank`) and no image is decoded again.
CriticLearner, every step, for each sample b and prefix j with target_mask[b, j]:
    y_{t,j}  = Σ_{i≤j} γ^i r_{t+i} + γ^{j+1} (1 − d_{t,j}) · min_m Q̄_m^(h−1)(s_{t+j+1}, ã),
    ã        = π̄(s_{t+j+1}) (+ clip(N(0, σ²), ±c) with corft.policy_noise > 0; the flow head samples its noise)
    L_TD     = mean (Q_m^(j)(s_t, a_{t:t+j}) − y_{t,j})²
    Cal-QL:  L_cons = mean [τ (logsumexp_{c∈C} max(Q_m^(j)(s, c), G_t)/τ − log K) − Q_m^(j)(s, a)]  over policy
             samples and noisy policy chunks (bounded below by the return-to-go G_t, which for a failure includes
             the failure's value) and uniform chunks (unbounded)
    L        = L_TD + α_cql · L_cons;  θ̄ ← τθ + (1 − τ)θ̄
Extraction (the action expert; every `policy_delay` steps after `actor_warmup_steps`), one of:
    none          the action expert stays the IL policy; the critic acts at deployment only, choosing the best of N
                  chunks (critic-guided selection)
    td3bc         L = −λ · mean_b Q_1^(k−1)(s, π(s)) + w_bc · mean_{b ∈ S} Σ_j mean_d (π(s) − a)²,
                  λ = α / max(mean|Q|, q_floor)      (the paper-style baseline)
    rank_distill  sample N chunks from π (regression head: N candidates around its chunk, white noise of
                  corft.noisy_std or the deployment's proposals), rank them by the pessimistic prefix value
                  mean_m Q^(k−1) − β std_m, regress π toward each state's winner (flow matching or L1), + the BC term
                  on S
                  (policy-agnostic RL: the policy never climbs the critic's gradient, it imitates its own best)
    awr           advantage-weighted BC on S: w = min(exp(A/β_awr), w_max), A = min_m Q^(k−1)(s, a) − mean_n
                  min_m Q^(k−1)(s, π_n(s))
S = the samples of successful episodes (demos and successful rollouts): BC never imitates a failure.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from corft_ros.core.policy.config import executed_prefix  # noqa: F401 (re-exported for the trainer)
from corft_ros.core.rl.corft import (
    CORFTConfig,
    QDivergenceError,
    calql_bound,
    make_target,
    masked_mean,
    polyak_update,
    td_targets,
)
from corft_ros.core.rl.il import ILConfig, chunk_regression
from corft_ros.core.rl.optim import Averaged, OneOptimizer, Optimizer, WeightEMA, half_life_schedule

EXTRACTIONS = ("none", "td3bc", "rank_distill", "awr")


def pessimistic(q: Tensor, beta: float) -> Tensor:
    """Ensemble value mean_m − β·std_m over the heads (dim 0)."""
    if q.shape[0] == 1 or beta == 0:
        return q.mean(dim=0)
    return q.mean(dim=0) - beta * q.std(dim=0)


# --------------------------------------------------------------------------------------------- stage 1


class ILLearner(Averaged):
    """Backbone + action expert on demonstration chunks (images in the batch), with an optional weight EMA and a
    learning-rate half-life (ILConfig)."""

    def __init__(self, policy, cfg: ILConfig) -> None:
        from corft_ros.core.rl.augment import random_shift
        from corft_ros.core.rl.il import il_parameters

        self.policy = policy
        self.cfg = cfg
        self._shift = random_shift
        params = list(il_parameters(policy))
        self.optim = Optimizer(params, cfg.lr, cfg.weight_decay, cfg.grad_clip,
                               schedule=half_life_schedule(cfg.lr_half_life, cfg.lr_floor))
        self.ema = WeightEMA(params, cfg.ema_decay) if cfg.ema_decay > 0 else None

    def loss(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict]:
        p, cfg = self.policy, self.cfg
        images = self._shift(batch["images"], cfg.shift_pad) if p.training else batch["images"]
        feats = p.encode(images, batch["state"], batch["text"])
        target = p.normalize_action(batch["action"])
        if p.config.stochastic:
            loss = p.flow_loss(feats, target, batch["valid"])
            return loss, {"il/loss": loss.detach()}
        pred = p.act(feats)
        loss = chunk_regression(pred, target, batch["valid"], cfg.loss)
        with torch.no_grad():
            err = (p.unnormalize_action(pred) - batch["action"]).abs()
            w = batch["valid"].unsqueeze(-1).to(err.dtype)
            joint_err = (err * w).sum() / (w.sum().clamp_min(1.0) * err.shape[-1])
        return loss, {"il/loss": loss.detach(), "il/abs_error_rad": joint_err}

    def update(self, batch: dict[str, Tensor], step: int) -> dict:
        loss, logs = self.loss(batch)
        if not torch.isfinite(loss):
            raise QDivergenceError(f"IL loss became NaN/Inf at step {step} (lower il.lr)")
        logs["il/grad_norm"] = self.averaged_step(loss, step)
        if self.optim.schedule is not None:
            logs["il/lr"] = torch.tensor(self.optim.opt.param_groups[0]["lr"])
        return logs


# --------------------------------------------------------------------------------------------- stage 2


class CriticLearner(OneOptimizer):
    """The per-prefix chunk critic (TD + Cal-QL) on cached features; owns the Polyak targets."""

    def __init__(self, policy, cfg: CORFTConfig, value_scale: float) -> None:
        self.policy = policy
        self.cfg = cfg
        self.target = make_target(policy)
        self.optim = Optimizer(policy.critic_parameters(), cfg.critic_lr, cfg.weight_decay, cfg.grad_clip)
        self.q_limit = cfg.divergence_factor * max(value_scale, 1e-3)

    def td_target(self, batch: dict[str, Tensor]) -> Tensor:
        cfg, tgt = self.cfg, self.target
        nxt = batch["next_features"]  # [B, h, T, D]
        b, h = nxt.shape[:2]
        with torch.no_grad():
            feats = nxt.flatten(0, 1)
            noise = torch.randn(b * h, tgt.config.chunk_size, tgt.config.action_dim) if tgt.config.stochastic else None
            a_next = tgt.act(feats, noise)
            if cfg.policy_noise > 0:
                a_next = a_next + (torch.randn_like(a_next) * cfg.policy_noise).clamp(-cfg.noise_clip, cfg.noise_clip)
            q_next = tgt.critic(feats, a_next)[..., -1].min(dim=0).values.view(b, h)
            return td_targets(batch["reward"], batch["done"], q_next, cfg.gamma)

    def candidates(self, feats: Tensor) -> tuple[Tensor, Tensor]:
        """[B, K, h, d] candidate chunks and which ones Cal-QL bounds (policy samples and noisy ones)."""
        cfg, p = self.cfg, self.policy
        with torch.no_grad():
            pi = p.sample(feats, 1)[:, 0]
        cands = [pi.unsqueeze(1)]
        if cfg.num_noisy:
            cands.append(pi.unsqueeze(1) + cfg.noisy_std * torch.randn(pi.shape[0], cfg.num_noisy, *pi.shape[1:]))
        if cfg.num_uniform:
            cands.append((torch.rand(pi.shape[0], cfg.num_uniform, *pi.shape[1:]) * 2 - 1) * cfg.uniform_range)
        bounded = torch.tensor([True] * (1 + cfg.num_noisy) + [False] * cfg.num_uniform)
        return torch.cat(cands, dim=1), bounded

    def update(self, batch: dict[str, Tensor], step: int) -> dict:
        cfg, p = self.cfg, self.policy
        mask = batch["target_mask"]
        if "held_out" in batch:  # the diagnostics' episodes: never a critic target
            mask = mask & ~batch["held_out"].unsqueeze(1)
        y = self.td_target(batch)
        feats = batch["features"]
        q = p.critic(feats, p.normalize_action(batch["action"]))  # [M, B, h]
        td_loss = masked_mean((q - y.unsqueeze(0)).pow(2), mask)
        loss, logs = td_loss, {}
        if cfg.cql_alpha > 0:
            cands, bounded = self.candidates(feats)
            b, k = cands.shape[:2]
            q_c = p.critic(feats.repeat_interleave(k, dim=0), cands.flatten(0, 1)).view(q.shape[0], b, k, -1)
            if cfg.calql_bound:
                q_c = calql_bound(q_c, batch["mc_return"], bounded)
            t = cfg.cql_temperature
            gap = masked_mean(t * (torch.logsumexp(q_c / t, dim=2) - math.log(k)) - q, mask)
            loss = loss + cfg.cql_alpha * gap
            logs["rl/conservative_gap"] = gap.detach()
        q_abs = masked_mean(q.abs(), mask).detach()
        if not torch.isfinite(loss) or not math.isfinite(float(q_abs)):
            raise QDivergenceError(f"step {step}: CO-RFT loss became NaN/Inf (lower corft.critic_lr)")
        if float(q_abs) > self.q_limit:
            raise QDivergenceError(f"step {step}: Q diverged: mean |Q| = {float(q_abs):.3g} exceeds {self.q_limit:.3g} "
                                   f"({cfg.divergence_factor:g} x the largest |return| in the data)")
        logs["rl/critic_grad_norm"] = self.optim.step(loss)
        with torch.no_grad():
            logs.update({
                "rl/critic_loss": loss.detach(), "rl/td_loss": td_loss.detach(), "rl/q_abs": q_abs,
                "rl/q_data": masked_mean(q, mask), "rl/target": masked_mean(y, mask),
                "rl/mc_return": batch["mc_return"].mean(),
            })
        return logs

    def polyak(self) -> None:
        polyak_update(self.target, self.policy, self.cfg.tau)

    def state_dict(self) -> dict:
        return {**self.optim.state_dict(), "target": self.target.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.optim.load_state_dict(state)
        if state.get("target"):
            self.target.load_state_dict(state["target"])


@dataclass
class ExtractionConfig:
    """How the action expert learns from the critic (`corft.extraction` and friends)."""

    method: str = "none"  # none | td3bc | rank_distill | awr
    samples: int = 8  # N chunks sampled per state (rank_distill, awr's value baseline)
    beta: float = 1.0  # pessimism: mean_m Q − β std_m
    prefix: int = 2  # k: executed prefix (policy period / action dt); the value of prefix k−1 ranks chunks
    awr_temperature: float = 0.05  # β_awr, in return units
    awr_max_weight: float = 20.0
    q_floor: float = 0.1  # td3bc: λ = α / max(mean|Q|, q_floor): returns that straddle 0 make mean|Q| → 0
    proposals: str = "white"  # rank_distill, regression head: the candidates ranked (as the deployment proposes them)
    noise_std: float = 0.3  # their size (action standard deviations) for proposals other than white


def chunk_errors(pred: Tensor, target: Tensor, valid: Tensor, loss: str = "l2") -> Tensor:
    """[B]: per sample Σ over the chunk's valid steps of the mean over joints of |Δ| (l1) or Δ² (l2)."""
    diff = pred - target
    err = (diff.abs() if loss == "l1" else diff.pow(2)).mean(dim=-1) * valid.to(target.dtype)  # [B, h]
    return err.sum(dim=1)


def bc_term(policy, feats: Tensor, target: Tensor, valid: Tensor, success: Tensor, loss: str = "l2") -> Tensor:
    """Behaviour cloning on successful samples only, per sample Σ_j mean_d (summed over the chunk, like the Q term
    is one number per sample); the flow head uses flow matching instead of regression."""
    keep = success.to(target.dtype)
    if keep.sum() == 0:
        return target.new_zeros(())
    if policy.config.stochastic:
        return policy.flow_loss(feats, target, valid, weights=keep) * target.shape[1]
    return (chunk_errors(policy.act(feats), target, valid, loss) * keep).sum() / keep.sum()


class ActorLearner(Averaged):
    """One of the extraction methods above, updating the action expert only (the backbone is frozen), with its
    weight EMA (corft.actor_ema_decay) and loss (corft.actor_loss) as IL trained it."""

    def __init__(self, policy, cfg: CORFTConfig, ex: ExtractionConfig) -> None:
        if ex.method not in EXTRACTIONS:
            raise ValueError(f"corft.extraction must be one of {', '.join(EXTRACTIONS)}, got {ex.method!r}")
        self.policy = policy
        self.cfg = cfg
        self.ex = ex
        self.optim = Optimizer(policy.actor_parameters(), cfg.actor_lr, cfg.weight_decay, cfg.grad_clip)
        self.ema = WeightEMA(self.optim.params, cfg.actor_ema_decay) if cfg.actor_ema_decay > 0 else None

    def around(self, chunks: Tensor) -> Tensor:
        """[B, N, h, d] candidates around the regression head's chunks [B, h, d] (normalized units), candidate 0 the
        chunk itself: the deployment's proposals (`ex.proposals`, core/policy/proposals.py; their noise_std is in
        action standard deviations, 1 in normalized units), or white noise of corft.noisy_std."""
        n = self.ex.samples
        if self.ex.proposals == "white":
            out = chunks.unsqueeze(1) + self.cfg.noisy_std * torch.randn(chunks.shape[0], n, *chunks.shape[1:])
            out[:, 0] = chunks
            return out
        from corft_ros.core.policy.proposals import propose

        ones = np.ones(chunks.shape[-1])
        base = chunks.detach().cpu().numpy()
        seeds = torch.randint(0, 2**31 - 1, (len(base),)).tolist()  # torch's seeded stream decides the draws
        out = np.stack([propose(b, n, self.ex.proposals, np.random.default_rng(sd), self.ex.noise_std, ones)
                        for b, sd in zip(base, seeds, strict=True)])
        return torch.from_numpy(out).to(chunks.device, chunks.dtype)

    def prefix_value(self, feats: Tensor, chunks: Tensor) -> Tensor:
        """Pessimistic value of the executed prefix, [B] for chunks [B, h, d]."""
        return pessimistic(self.policy.critic(feats, chunks)[..., self.ex.prefix - 1], self.ex.beta)

    def loss(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict]:
        p, cfg, ex = self.policy, self.cfg, self.ex
        feats = batch["features"]
        target = p.normalize_action(batch["action"])
        valid, success = batch["valid"], batch["success"]
        logs: dict[str, Any] = {}
        if ex.method == "td3bc":
            noise = torch.randn_like(target) if p.config.stochastic else None
            pi = p.act(feats, noise)
            q_pi = p.critic(feats, pi)[0, :, ex.prefix - 1]
            lam = cfg.td3_alpha / q_pi.abs().mean().detach().clamp_min(ex.q_floor)
            bc = bc_term(p, feats, target, valid, success, cfg.actor_loss)
            loss = -lam * q_pi.mean() + cfg.bc_weight * bc
            logs.update({"rl/q_policy": q_pi.detach().mean(), "rl/lambda": lam.detach(), "rl/bc_loss": bc.detach()})
        elif ex.method == "rank_distill":
            b, n = feats.shape[0], ex.samples
            with torch.no_grad():
                samples = p.sample(feats, n)  # [B, N, h, d]
                if not p.config.stochastic:  # one deterministic chunk: explore around it
                    samples = self.around(samples[:, 0])
                values = self.prefix_value(feats.repeat_interleave(n, dim=0), samples.flatten(0, 1)).view(b, n)
                best = values.argmax(dim=1)
                winner = samples[torch.arange(b), best]
            ones = torch.ones_like(valid)
            if p.config.stochastic:
                distill = p.flow_loss(feats, winner, ones) * target.shape[1]
            else:
                distill = (p.act(feats) - winner).pow(2).mean(dim=-1).sum(dim=1).mean()
            bc = bc_term(p, feats, target, valid, success, cfg.actor_loss)
            loss = distill + cfg.bc_weight * bc
            logs.update({"rl/distill_loss": distill.detach(), "rl/bc_loss": bc.detach(),
                         "rl/q_winner": values.max(dim=1).values.mean(), "rl/q_samples": values.mean()})
        else:  # awr
            with torch.no_grad():
                b, n = feats.shape[0], ex.samples
                q_data = self.policy.critic(feats, target)[..., ex.prefix - 1].min(dim=0).values
                samples = p.sample(feats, n)
                q_pi = self.policy.critic(feats.repeat_interleave(n, dim=0), samples.flatten(0, 1))
                v = q_pi[..., ex.prefix - 1].min(dim=0).values.view(b, n).mean(dim=1)
                weights = torch.exp((q_data - v) / ex.awr_temperature).clamp(max=ex.awr_max_weight)
                weights = weights * success.to(weights.dtype)
            if p.config.stochastic:
                loss = p.flow_loss(feats, target, valid, weights=weights) * target.shape[1]
            else:
                err = chunk_errors(p.act(feats), target, valid, cfg.actor_loss)
                loss = (err * weights).sum() / weights.sum().clamp_min(1e-6)
            logs.update({"rl/awr_weight": weights.mean(), "rl/advantage": (q_data - v).mean()})
        logs["rl/actor_loss"] = loss.detach()
        return loss, logs

    def update(self, batch: dict[str, Tensor], step: int) -> dict:
        loss, logs = self.loss(batch)
        if not torch.isfinite(loss):
            raise QDivergenceError(f"step {step}: the actor loss became NaN/Inf")
        self.averaged_step(loss, step)
        return logs


class CORFTLearner:
    """Critic every step, the extraction every `policy_delay` steps after `actor_warmup_steps`, then Polyak."""

    def __init__(self, policy, cfg: CORFTConfig, ex: ExtractionConfig, value_scale: float) -> None:
        for p in policy.backbone_parameters():
            p.requires_grad_(False)  # features are cached: the backbone cannot move
        self.cfg = cfg
        self.critic = CriticLearner(policy, cfg, value_scale)
        self.actor = None if ex.method == "none" else ActorLearner(policy, cfg, ex)
        self.probe: Callable[[], dict] | None = None  # held-out critic diagnostics (set by the trainer)

    def diagnose(self) -> dict | None:
        return self.probe() if self.probe is not None else None

    def saving(self):
        """Checkpoints carry the action expert's average (the critic is saved as it is)."""
        return self.actor.saving() if self.actor is not None else contextlib.nullcontext()

    def finish(self) -> None:
        if self.actor is not None:
            self.actor.finish()

    @property
    def grad_sync(self):
        return self.critic.grad_sync

    @grad_sync.setter
    def grad_sync(self, fn) -> None:
        self.critic.grad_sync = fn
        if self.actor is not None:
            self.actor.grad_sync = fn

    def update(self, batch: dict[str, Tensor], step: int) -> dict:
        logs = self.critic.update(batch, step)
        if self.actor is not None and step >= self.cfg.actor_warmup_steps and step % self.cfg.policy_delay == 0:
            logs.update(self.actor.update(batch, step))
        self.critic.polyak()
        return logs

    def state_dict(self) -> dict:
        return {"critic": self.critic.state_dict(), "actor": self.actor.state_dict() if self.actor else {}}

    def load_state_dict(self, state: dict) -> None:
        self.critic.load_state_dict(state.get("critic") or {})
        if self.actor is not None:
            self.actor.load_state_dict(state.get("actor") or {})


class BCLearner(Averaged):
    """The control arm: the same number of extra supervised steps on cached features, demos/successes only, no
    critic (what RL adds is measured against this, at an equal gradient budget), trained as the actor is."""

    def __init__(self, policy, cfg: CORFTConfig) -> None:
        for p in policy.backbone_parameters():
            p.requires_grad_(False)
        self.policy = policy
        self.cfg = cfg
        self.optim = Optimizer(policy.actor_parameters(), cfg.actor_lr, cfg.weight_decay, cfg.grad_clip)
        self.ema = WeightEMA(self.optim.params, cfg.actor_ema_decay) if cfg.actor_ema_decay > 0 else None

    def update(self, batch: dict[str, Tensor], step: int) -> dict:
        p = self.policy
        bc = bc_term(p, batch["features"], p.normalize_action(batch["action"]), batch["valid"], batch["success"],
                     self.cfg.actor_loss)
        self.averaged_step(bc, step)
        return {"bc/loss": bc.detach()}
