"""Critic diagnostics on held-out episodes: can the chunk critic be trusted to tell success from failure?

The RL stage holds out a stratified fraction of the episodes (`corft.holdout`, successes and failures alike, by a
fixed seed) and never trains on them. On those episodes:

(a) calibration: Q^(h−1)(s_t, a_{t:t+h}) of the logged chunk (mean over heads) against the Monte-Carlo return G_t
    that followed, per outcome: Spearman rank correlation and bias (mean Q − G). A critic that ranks progress but
    not success shows a high Spearman inside each outcome and a small gap between them.
(b) prediction: the AUC of V(s_t) = Q^(h−1)(s_t, π(s_t)) for eventual success against failure, over the held-out
    episodes still running at t = 1, 3, 5 s (an episode that ended before t is left out at t). 0.5 is chance.
    This chooses the reward (`corft-ros experiment` trains one critic per candidate reward on the same data and keeps
    the one with the highest AUC at 3 s): a critic must see success coming before it can improve the policy.
(c) same-start ranking (two episodes from one start, one solved and one not) needs pairs the training data does
    not have: the collection rounds never repeat a start. Not computed; `same_start` says so.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

HORIZONS_S = (1.0, 3.0, 5.0)


def split_holdout(success: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Held-out episode ids: round(fraction · n) of the successful and of the failed episodes each (at least one of
    each outcome that has ≥ 2 episodes, so both classes are seen by the diagnostics and by training); sorted."""
    success = np.asarray(success, dtype=bool)
    if fraction <= 0:
        return np.empty(0, dtype=np.int64)
    rng = np.random.default_rng(seed)
    held = []
    for outcome in (True, False):
        ids = np.nonzero(success == outcome)[0]
        if len(ids) < 2:
            continue
        k = min(len(ids) - 1, max(1, int(round(fraction * len(ids)))))
        held.append(rng.choice(ids, size=k, replace=False))
    return np.sort(np.concatenate(held)) if held else np.empty(0, dtype=np.int64)


def ranks(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n with ties averaged."""
    x = np.asarray(x, dtype=np.float64)
    order = np.argsort(x, kind="mergesort")
    r = np.empty(len(x), dtype=np.float64)
    r[order] = np.arange(1, len(x) + 1)
    uniq, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    if len(uniq) < len(x):
        sums = np.bincount(inverse, weights=r)
        r = (sums / counts)[inverse]
    return r


def spearman(x: np.ndarray, y: np.ndarray) -> float | None:
    """Spearman's rank correlation (None for fewer than 3 points or a constant side)."""
    if len(x) < 3:
        return None
    rx, ry = ranks(x), ranks(y)
    sx, sy = rx.std(), ry.std()
    if sx == 0 or sy == 0:
        return None
    return float(((rx - rx.mean()) * (ry - ry.mean())).mean() / (sx * sy))


def auc(positive: Sequence[float], negative: Sequence[float]) -> float | None:
    """P(score of a positive > score of a negative) + ½ P(tie) (Mann-Whitney); None when a class is empty."""
    pos, neg = np.asarray(positive, np.float64), np.asarray(negative, np.float64)
    if len(pos) == 0 or len(neg) == 0:
        return None
    r = ranks(np.concatenate([pos, neg]))
    return float((r[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


@torch.no_grad()
def critic_values(policy, features: torch.Tensor, chunks: torch.Tensor | None, batch: int = 512) -> np.ndarray:
    """Q^(h−1) (mean over heads) of normalized `chunks` [N, h, d] at `features` [N, T, D]; with chunks None, of the
    policy's own chunk π(s) (its noiseless one for the flow head): V(s)."""
    out = []
    for i in range(0, len(features), batch):
        f = features[i:i + batch].float()
        if chunks is None:
            noise = (torch.zeros(len(f), policy.config.chunk_size, policy.config.action_dim)
                     if policy.config.stochastic else None)
            c = policy.act(f, noise)
        else:
            c = chunks[i:i + batch]
        out.append(policy.critic(f, c)[..., -1].mean(dim=0).cpu().numpy())
    return np.concatenate(out) if out else np.empty(0)


def _r(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else round(float(x), 4)


@torch.no_grad()
def critic_diagnostics(policy, bank, episodes: np.ndarray, rate_hz: float,
                       horizons_s: Sequence[float] = HORIZONS_S) -> dict:
    """(a) and (b) above on the held-out `episodes` (ids into bank.data.episodes); a JSON-ready dict."""
    data = bank.data
    tb = data.table
    episodes = np.asarray(episodes, dtype=np.int64)
    rows = np.nonzero(np.isin(tb.episode, episodes))[0]
    result: dict = {"episodes": int(len(episodes)),
                    "successes": int(data.success_of_episode[episodes].sum()) if len(episodes) else 0,
                    "ticks": int(len(rows)),
                    "same_start": "not computed: no two training episodes share a start"}
    if len(rows) == 0:
        return result
    was_training = policy.training
    policy.eval()
    try:
        feats = bank.features[torch.from_numpy(tb.start[rows])]
        chunks = policy.normalize_action(torch.from_numpy(data.action[tb.action_index[rows]]))
        q = critic_values(policy, feats, chunks)
        v = critic_values(policy, feats, None)
    finally:
        policy.train(was_training)
    g = tb.mc_return[rows].astype(np.float64)
    won = data.success_of_episode[tb.episode[rows]]
    calib = {}
    for name, sel in (("all", np.ones(len(rows), bool)), ("success", won), ("failure", ~won)):
        calib[name] = {"ticks": int(sel.sum()), "spearman": _r(spearman(q[sel], g[sel])) if sel.any() else None,
                       "bias": _r(float((q[sel] - g[sel]).mean())) if sel.any() else None,
                       "q_mean": _r(float(q[sel].mean())) if sel.any() else None,
                       "return_mean": _r(float(g[sel].mean())) if sel.any() else None}
    result["calibration"] = calib
    tick = tb.start[rows] - data.offsets[tb.episode[rows]]
    pred = {}
    for t_s in horizons_s:
        at = tick == int(round(t_s * rate_hz))
        pos, neg = v[at & won], v[at & ~won]
        pred[f"{t_s:g}s"] = {"auc": _r(auc(pos, neg)), "successes": int(len(pos)), "failures": int(len(neg)),
                             "v_success": _r(float(pos.mean())) if len(pos) else None,
                             "v_failure": _r(float(neg.mean())) if len(neg) else None}
    result["auc"] = pred
    return result


def scalars(diag: dict) -> dict[str, float]:
    """The diagnostics as flat TensorBoard scalars (diag/...), numbers only."""
    out = {}
    for name, row in (diag.get("calibration") or {}).items():
        for key in ("spearman", "bias"):
            if row.get(key) is not None:
                out[f"diag/{key}_{name}"] = float(row[key])
    for t, row in (diag.get("auc") or {}).items():
        if row.get("auc") is not None:
            out[f"diag/auc_{t}"] = float(row["auc"])
    return out


def lines(diag: dict) -> list[str]:
    """Human-readable lines the trainer prints."""
    if not diag.get("ticks"):
        return ["critic diagnostics: no held-out episode (corft.holdout 0, or too few episodes)"]
    c = diag["calibration"]
    out = [f"critic diagnostics on {diag['episodes']} held-out episodes ({diag['successes']} successful, "
           f"{diag['ticks']} ticks):"]
    for name in ("success", "failure", "all"):
        row = c[name]
        if row["ticks"]:
            out.append(f"  Q vs return, {name:7s}: Spearman {_fmt(row['spearman'])}, bias {_fmt(row['bias'])} "
                       f"(Q {_fmt(row['q_mean'])}, return {_fmt(row['return_mean'])}, {row['ticks']} ticks)")
    auc_text = ", ".join(f"{t} {_fmt(r['auc'])} ({r['successes']}+/{r['failures']}-)" for t, r in diag["auc"].items())
    out.append(f"  AUC of V(s_t) for eventual success: {auc_text}")
    return out


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:+.3f}" if x < 0 else f"{x:.3f}"
