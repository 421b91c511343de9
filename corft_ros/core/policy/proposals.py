"""Candidate chunks for best-of-N selection, around the policy's own chunk (candidate 0 is always that chunk).

    white   i.i.d. Gaussian per action and joint, σ = noise_std action standard deviations: what selection used
            first. Executed through temporal ensembling it averages away: a chosen chunk is ~1/5 of a command.
    smooth  temporally correlated offsets: a Gaussian offset (σ as above) at the middle and at the end of the chunk,
            0 at its start, linearly interpolated: the same start, a different path (no jump at the switch)
    warp    the same path at another speed: the chunk resampled at s·t for speeds s spread over [0.7, 1.4] (past
            its end the last target holds): candidates that run ahead of (or behind) the policy
    mixed   half warp, half smooth
Every proposal is deterministic given the runtime's seeded generator.
"""

from __future__ import annotations

import numpy as np

PROPOSALS = ("white", "smooth", "warp", "mixed")
SPEEDS = (0.7, 1.4)


def time_warp(chunk: np.ndarray, speed: float) -> np.ndarray:
    """[h, d] → the chunk's targets at times speed·i (linear interpolation; the last target past the end)."""
    h = chunk.shape[0]
    t = np.minimum(np.arange(h) * speed, h - 1)
    lo = np.floor(t).astype(int)
    hi = np.minimum(lo + 1, h - 1)
    w = (t - lo)[:, None]
    return chunk[lo] * (1 - w) + chunk[hi] * w


def smooth_offsets(n: int, h: int, d: int, rng: np.random.Generator) -> np.ndarray:
    """[n, h, d] offsets in standard deviations: 0 at i = 0, Gaussian knots at the middle and the end."""
    knots_t = np.array([0.0, (h - 1) / 2, h - 1])
    knots = np.concatenate([np.zeros((n, 1, d)), rng.standard_normal((n, 2, d))], axis=1)
    t = np.arange(h)
    out = np.empty((n, h, d))
    for j in range(d):
        for k in range(n):
            out[k, :, j] = np.interp(t, knots_t, knots[k, :, j])
    return out


def propose(base: np.ndarray, n: int, kind: str, rng: np.random.Generator, noise_std: float,
            action_std: np.ndarray) -> np.ndarray:
    """n candidate chunks [n, h, d] (absolute, float32) around `base` [h, d]; candidate 0 is `base` itself."""
    if kind not in PROPOSALS:
        raise ValueError(f"proposals must be one of {', '.join(PROPOSALS)}, got {kind!r}")
    base = np.asarray(base, dtype=np.float64)
    h, d = base.shape
    scale = noise_std * np.asarray(action_std, dtype=np.float64)
    out = np.repeat(base[None], n, axis=0)
    if n == 1:
        return out.astype(np.float32)
    rest = np.arange(1, n)
    if kind == "white":
        out[rest] += rng.standard_normal((n - 1, h, d)) * scale
    elif kind == "smooth":
        out[rest] += smooth_offsets(n - 1, h, d, rng) * scale
    else:
        warped = rest[::2] if kind == "mixed" else rest
        speeds = np.linspace(*SPEEDS, len(warped)) if len(warped) > 1 else np.array([SPEEDS[1]])
        for k, s in zip(warped, speeds, strict=True):
            out[k] = time_warp(base, float(s))
        if kind == "mixed" and len(rest[1::2]):
            out[rest[1::2]] += smooth_offsets(len(rest[1::2]), h, d, rng) * scale
    return out.astype(np.float32)
