"""ChunkPolicy: a small VLA that predicts action chunks, with a chunked critic expert for CO-RFT.

    images [B, n_cams, 3, H, W] ──per-camera CNN──► n_cams × (H/16 · W/16) tokens ┐
    joint state [B, d] ──normalize──► MLP ──────────────────────────► 1 token      ├─► fusion transformer ─► features
    instruction embedding [B, E] ──linear──────────────────────────► 1 token      ┘        [B, T, D]
    features ─► action expert ─► chunk [B, h, d] (normalized), one of two heads (PolicyConfig.action_head):
        regression: h learned chunk queries, cross-attending (ACT-style); the noise input is ignored
        flow:       noise [B, h, d] ─► K Euler steps of a learned velocity field v(x_τ, τ | features) (π0-style
                    flow matching): each noise draw gives another chunk
    features + h action tokens ─► critic expert (causal over the action tokens) ─► Q [num_critics, B, h]

Q[m, b, j] is head m's value of the chunk prefix a_{0..j}: the causal mask guarantees it never reads a_{j+1..h-1}.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
from torch import Tensor, nn

from corft_ros.core.policy.config import PolicyConfig

# Standard deviations below this (a joint that never moved in the data) would blow up normalized values.
MIN_STD = 1e-3


class Attention(nn.Module):
    """Multi-head attention written out with plain ops: exports to compact ONNX and runs the same in eager."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.head_dim = dim // heads
        self.scale = 1.0 / math.sqrt(self.head_dim)
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.out = nn.Linear(dim, dim)

    def forward(self, x: Tensor, memory: Tensor, mask: Tensor | None = None) -> Tensor:
        b, t, d = x.shape
        s = memory.shape[1]
        q = self.q(x).reshape(b, t, self.heads, self.head_dim).transpose(1, 2)
        kv = self.kv(memory).reshape(b, s, 2, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        k, v = kv[0], kv[1]
        scores = torch.matmul(q, k.transpose(-2, -1)) * self.scale
        if mask is not None:
            scores = scores + mask
        weights = scores.softmax(dim=-1)
        return self.out(torch.matmul(weights, v).transpose(1, 2).reshape(b, t, d))


class FeedForward(nn.Module):
    def __init__(self, dim: int, hidden: int, dropout: float) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, dim))

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class Block(nn.Module):
    """Pre-LayerNorm transformer block: self-attention, optional cross-attention to `memory`, feed-forward."""

    def __init__(self, cfg: PolicyConfig, cross: bool) -> None:
        super().__init__()
        d = cfg.d_model
        self.norm1 = nn.LayerNorm(d)
        self.self_attn = Attention(d, cfg.heads)
        self.cross = cross
        if cross:
            self.norm_x = nn.LayerNorm(d)
            self.norm_mem = nn.LayerNorm(d)
            self.cross_attn = Attention(d, cfg.heads)
        self.norm2 = nn.LayerNorm(d)
        self.ff = FeedForward(d, cfg.ff_dim, cfg.dropout)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: Tensor, memory: Tensor | None = None, mask: Tensor | None = None) -> Tensor:
        h = self.norm1(x)
        x = x + self.drop(self.self_attn(h, h, mask))
        if self.cross:
            assert memory is not None
            x = x + self.drop(self.cross_attn(self.norm_x(x), self.norm_mem(memory)))
        return x + self.drop(self.ff(self.norm2(x)))


class SpatialSoftmax(nn.Module):
    """Keypoints: the expected image coordinates (x, y in [-1, 1]) of K learned feature maps, [B, C, H, W] →
    [B, K, 2]. Coordinates are linear in where things are in the image (the cube), which a few dozen
    demonstrations can regress to joint targets; pooled conv tokens hide position inside their channels."""

    def __init__(self, channels: int, keypoints: int, height: int, width: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(channels, keypoints, 1)
        self.log_temperature = nn.Parameter(torch.zeros(1))
        ys, xs = torch.meshgrid(torch.linspace(-1.0, 1.0, height), torch.linspace(-1.0, 1.0, width), indexing="ij")
        self.register_buffer("grid", torch.stack([xs.reshape(-1), ys.reshape(-1)], dim=-1), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        logits = self.proj(x).flatten(2) * torch.exp(-self.log_temperature)  # [B, K, H·W]
        return torch.matmul(logits.softmax(dim=-1), self.grid)


class ImageEncoder(nn.Module):
    """Small strided CNN trained from scratch: [B, 3, H, W] in [0, 1] → [B, (H/16)·(W/16) (+1), D] tokens; with
    keypoints > 0, one more token from a spatial softmax over the stride-4 feature map (see SpatialSoftmax)."""

    def __init__(self, channels: list[int], dim: int, keypoints: int = 0, image_size: tuple[int, int] = (64, 64)):
        super().__init__()
        self.convs = nn.ModuleList()
        c_in = 3
        h, w = image_size
        self.tap = min(1, len(channels) - 1)  # the keypoints read the second conv's map (stride 4)
        tap_shape = (c_in, h, w)
        for i, c_out in enumerate(channels):
            k = 5 if i == 0 else 3
            self.convs.append(nn.Sequential(nn.Conv2d(c_in, c_out, k, stride=2, padding=k // 2), nn.ReLU()))
            c_in, h, w = c_out, (h + 1) // 2, (w + 1) // 2
            if i == self.tap:
                tap_shape = (c_in, h, w)
        self.out = nn.Conv2d(c_in, dim, 3, stride=2, padding=1)
        self.keypoints = SpatialSoftmax(*tap_shape[:1], keypoints, *tap_shape[1:]) if keypoints else None
        self.keypoint_token = nn.Linear(2 * keypoints, dim) if keypoints else None

    def forward(self, x: Tensor) -> Tensor:
        y = x * 2.0 - 1.0
        tapped = y
        for i, conv in enumerate(self.convs):
            y = conv(y)
            if i == self.tap:
                tapped = y
        tokens = self.out(y).flatten(2).transpose(1, 2)
        if self.keypoints is None:
            return tokens
        points = self.keypoints(tapped).flatten(1)  # [B, 2K]
        return torch.cat([tokens, self.keypoint_token(points).unsqueeze(1)], dim=1)


class CriticHead(nn.Module):
    """One critic of the ensemble: action tokens under a causal mask, cross-attending to backbone features."""

    def __init__(self, cfg: PolicyConfig) -> None:
        super().__init__()
        d = cfg.d_model
        self.action_embed = nn.Linear(cfg.action_dim, d)
        self.pos = nn.Parameter(torch.randn(cfg.chunk_size, d) * 0.02)
        self.blocks = nn.ModuleList(Block(cfg, cross=True) for _ in range(cfg.critic_layers))
        self.norm = nn.LayerNorm(d)
        self.q = nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.Linear(d, 1))

    def forward(self, features: Tensor, chunk: Tensor, mask: Tensor) -> Tensor:
        x = self.action_embed(chunk) + self.pos
        for block in self.blocks:
            x = block(x, features, mask)
        return self.q(self.norm(x)).squeeze(-1)


class ChunkPolicy(nn.Module):
    """Backbone + action expert + critic expert; see the module docstring for the data flow."""

    def __init__(self, config: PolicyConfig) -> None:
        super().__init__()
        self.config = config
        cfg = config
        d, a = cfg.d_model, cfg.action_dim
        # --- backbone
        self.image_encoders = nn.ModuleList(ImageEncoder(cfg.cnn_channels, d, cfg.keypoints, cfg.image_size)
                                            for _ in cfg.camera_names)
        self.state_mlp = nn.Sequential(nn.Linear(a, d), nn.GELU(), nn.Linear(d, d))
        self.text_proj = nn.Sequential(nn.Linear(cfg.text_dim, d), nn.LayerNorm(d))
        n_tokens = cfg.num_cameras * cfg.tokens_per_camera + 2
        self.token_pos = nn.Parameter(torch.randn(n_tokens, d) * 0.02)
        self.encoder = nn.ModuleList(Block(cfg, cross=False) for _ in range(cfg.encoder_layers))
        self.encoder_norm = nn.LayerNorm(d)
        # --- action expert
        self.chunk_queries = nn.Parameter(torch.randn(cfg.chunk_size, d) * 0.02)
        self.decoder = nn.ModuleList(Block(cfg, cross=True) for _ in range(cfg.decoder_layers))
        self.decoder_norm = nn.LayerNorm(d)
        self.action_head = nn.Linear(d, a)
        if cfg.stochastic:  # flow matching: the decoder reads the noisy chunk and the flow time
            self.flow_in = nn.Linear(a, d)
            self.flow_time = nn.Sequential(nn.Linear(32, d), nn.GELU(), nn.Linear(d, d))
            self.register_buffer("time_freqs", torch.exp(torch.linspace(0.0, math.log(1000.0), 16)),
                                 persistent=False)
        # --- critic expert
        self.critics = nn.ModuleList(CriticHead(cfg) for _ in range(cfg.num_critics))
        causal = torch.triu(torch.full((cfg.chunk_size, cfg.chunk_size), float("-inf")), diagonal=1)
        self.register_buffer("causal_mask", causal, persistent=False)
        # --- normalization statistics: buffers, so they are saved with (and exported into) the weights
        self.register_buffer("state_mean", torch.zeros(a))
        self.register_buffer("state_std", torch.ones(a))
        self.register_buffer("action_mean", torch.zeros(a))
        self.register_buffer("action_std", torch.ones(a))

    # ------------------------------------------------------------------ normalization
    def set_normalization(self, state_mean: Tensor, state_std: Tensor, action_mean: Tensor, action_std: Tensor) -> None:
        d = self.config.action_dim
        for name, value in (
            ("state_mean", state_mean),
            ("state_std", state_std),
            ("action_mean", action_mean),
            ("action_std", action_std),
        ):
            t = torch.as_tensor(value, dtype=torch.float32).reshape(-1)
            if t.numel() != d:
                raise ValueError(f"{name} has {t.numel()} values, expected {d} (one per joint)")
            if not torch.isfinite(t).all():
                raise ValueError(f"{name} contains NaN/Inf")
            if name.endswith("std"):
                t = t.clamp_min(MIN_STD)
            getattr(self, name).copy_(t)

    def normalize_state(self, s: Tensor) -> Tensor:
        return (s - self.state_mean) / self.state_std

    def normalize_action(self, a: Tensor) -> Tensor:
        return (a - self.action_mean) / self.action_std

    def unnormalize_action(self, a: Tensor) -> Tensor:
        return a * self.action_std + self.action_mean

    # ------------------------------------------------------------------ model
    def encode(self, images: Tensor, state: Tensor, text: Tensor) -> Tensor:
        """Backbone tokens [B, T, D] from images [B, n_cams, 3, H, W] in [0, 1], absolute state, text embedding."""
        tokens = [enc(images[:, i]) for i, enc in enumerate(self.image_encoders)]
        tokens.append(self.state_mlp(self.normalize_state(state)).unsqueeze(1))
        tokens.append(self.text_proj(text).unsqueeze(1))
        x = torch.cat(tokens, dim=1) + self.token_pos
        for block in self.encoder:
            x = block(x)
        return self.encoder_norm(x)

    def act(self, features: Tensor, noise: Tensor | None = None) -> Tensor:
        """The action expert: a chunk [B, h, d] in normalized action units. The flow head integrates from `noise`
        [B, h, d] (zeros when None: its most typical chunk); the regression head ignores it."""
        if not self.config.stochastic:
            x = self.chunk_queries.unsqueeze(0).expand(features.shape[0], -1, -1)
            for block in self.decoder:
                x = block(x, features)
            return self.action_head(self.decoder_norm(x))
        b = features.shape[0]
        x = noise if noise is not None else features.new_zeros(b, self.config.chunk_size, self.config.action_dim)
        k = self.config.flow_steps
        for i in range(k):  # Euler: x ← x + v(x, τ)/K, τ = i/K
            tau = features.new_full((b,), i / k)
            x = x + self.velocity(features, x, tau) / k
        return x

    def velocity(self, features: Tensor, x: Tensor, tau: Tensor) -> Tensor:
        """Flow head: the velocity [B, h, d] at the noisy chunk x [B, h, d] (normalized) and flow time τ [B]."""
        angles = tau.unsqueeze(-1) * self.time_freqs * math.pi
        t_emb = self.flow_time(torch.cat([angles.sin(), angles.cos()], dim=-1))  # [B, D]
        y = self.flow_in(x) + self.chunk_queries + t_emb.unsqueeze(1)
        for block in self.decoder:
            y = block(y, features)
        return self.action_head(self.decoder_norm(y))

    def flow_loss(self, features: Tensor, target: Tensor, valid: Tensor, weights: Tensor | None = None) -> Tensor:
        """Conditional flow matching toward `target` chunks [B, h, d] (normalized): x_τ = τ·target + (1 − τ)·x_0,
        x_0 ~ N(0, I), τ ~ U(0, 1); the velocity regresses target − x_0. Steps with valid [B, h] = 0 are ignored;
        optional per-sample weights [B] (advantage-weighted BC)."""
        b = target.shape[0]
        x0 = torch.randn_like(target)
        tau = torch.rand(b, device=target.device, dtype=target.dtype)
        x_tau = tau.view(b, 1, 1) * target + (1 - tau.view(b, 1, 1)) * x0
        err = (self.velocity(features, x_tau, tau) - (target - x0)).pow(2).mean(dim=-1)  # [B, h]
        w = valid.to(err.dtype)
        if weights is not None:
            w = w * weights.view(b, 1)
        return (err * w).sum() / valid.to(err.dtype).sum().clamp_min(1.0)

    def critic(self, features: Tensor, chunk_normalized: Tensor) -> Tensor:
        """Per-prefix Q [num_critics, B, h]; features with batch 1 are shared by every chunk of the batch."""
        features = features.expand(chunk_normalized.shape[0], -1, -1)
        return torch.stack([head(features, chunk_normalized, self.causal_mask) for head in self.critics])

    def forward(self, images: Tensor, state: Tensor, text: Tensor, noise: Tensor | None = None) -> Tensor:
        """The absolute chunk [B, h, d] (joint targets for t + i·dt)."""
        return self.unnormalize_action(self.act(self.encode(images, state, text), noise))

    def sample(self, features: Tensor, n: int, generator: torch.Generator | None = None) -> Tensor:
        """n chunks per observation [B, n, h, d] (normalized): noise draws through the flow head; the regression
        head's single chunk repeated."""
        b = features.shape[0]
        feats = features.repeat_interleave(n, dim=0)
        noise = None
        if self.config.stochastic:
            noise = torch.randn(b * n, self.config.chunk_size, self.config.action_dim, generator=generator,
                                device=features.device, dtype=features.dtype)
        return self.act(feats, noise).view(b, n, self.config.chunk_size, self.config.action_dim)

    # ------------------------------------------------------------------ parameter groups
    def backbone_parameters(self) -> Iterator[nn.Parameter]:
        for module in (self.image_encoders, self.state_mlp, self.text_proj, self.encoder, self.encoder_norm):
            yield from module.parameters()
        yield self.token_pos

    def actor_parameters(self) -> Iterator[nn.Parameter]:
        yield self.chunk_queries
        for module in (self.decoder, self.decoder_norm, self.action_head):
            yield from module.parameters()
        if self.config.stochastic:
            yield from self.flow_in.parameters()
            yield from self.flow_time.parameters()

    def critic_parameters(self) -> Iterator[nn.Parameter]:
        yield from self.critics.parameters()

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


class ActorGraph(nn.Module):
    """What actor.onnx computes: (images, state, text) → absolute chunk."""

    def __init__(self, policy: ChunkPolicy) -> None:
        super().__init__()
        self.policy = policy

    def forward(self, images: Tensor, state: Tensor, text: Tensor) -> Tensor:
        return self.policy(images, state, text)


class CriticGraph(nn.Module):
    """What critic.onnx computes: (images, state, text) of one observation [1, ...] and N absolute chunks
    [N, h, d] → Q [num_critics, N, h] (every head, every prefix; callers take the min over heads)."""

    def __init__(self, policy: ChunkPolicy) -> None:
        super().__init__()
        self.policy = policy

    def forward(self, images: Tensor, state: Tensor, text: Tensor, chunk: Tensor) -> Tensor:
        features = self.policy.encode(images, state, text)
        return self.policy.critic(features, self.policy.normalize_action(chunk))


class SamplerGraph(nn.Module):
    """What sampler.onnx computes, critic-guided chunk selection in one call: one observation [1, ...] and noise
    [N, h, d] → N candidate chunks (absolute) [N, h, d] and their values q [num_critics, N, h].

    Flow head: candidate n integrates from noise[n] (N different chunks). Regression head: candidate n is the one
    chunk plus noise[n] in normalized action units (the caller scales it; noise 0 keeps the chunk itself)."""

    def __init__(self, policy: ChunkPolicy) -> None:
        super().__init__()
        self.policy = policy

    def forward(self, images: Tensor, state: Tensor, text: Tensor, noise: Tensor) -> tuple[Tensor, Tensor]:
        p = self.policy
        features = p.encode(images, state, text)
        many = features.expand(noise.shape[0], -1, -1)
        chunks = p.act(many, noise) if p.config.stochastic else p.act(features) + noise
        return p.unnormalize_action(chunks), p.critic(features, chunks)
