"""Chunked sampling tables: for every start t of every episode, what a chunked TD backup needs.

For start t of an episode of T steps, chunk size h, prefix j = 0..h-1:
    action_index[t, j] = min(t + j, T - 1)              (past the end the last action is repeated)
    valid[t, j]        = t + j <= T - 1                  (the step exists in the recording)
    reward[t, j]       = Σ_{i<=j, t+i<=T-1} γ^i r_{t+i}  (cumulative discounted reward of the prefix)
    done[t, j]         = a terminal step lies in t..t+j  (mask = 1 - done: running min of 1 - terminal)
    next_index[t, j]   = t + j + 1                       (the state the prefix's backup bootstraps from;
                                                          clipped to T - 1 where it does not exist)
    target_mask[t, j]  = (valid[t, j] or done[t, j-1]) and (done[t, j] or t + j + 1 <= T - 1)
        a prefix is trained when its value is defined by the data: it ends inside the episode (or after
        a terminal, where the episode is absorbing and later actions change nothing) and either ends
        the episode at a terminal or has a next state to bootstrap from.
    mc_return[t]       = G_t, the Monte-Carlo return-to-go (Cal-QL's lower bound)
Indices are global (episodes laid end to end in the order given).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from corft_ros.core.rl.rewards import returns_to_go


@dataclass
class ChunkTable:
    horizon: int
    gamma: float
    episode: np.ndarray  # [N] episode id of each start
    start: np.ndarray  # [N] global index of s_t
    action_index: np.ndarray  # [N, h]
    valid: np.ndarray  # [N, h] bool
    reward: np.ndarray  # [N, h] float32
    done: np.ndarray  # [N, h] bool
    next_index: np.ndarray  # [N, h]
    target_mask: np.ndarray  # [N, h] bool
    mc_return: np.ndarray  # [N] float32

    def __len__(self) -> int:
        return len(self.start)

    def subset(self, keep: np.ndarray) -> ChunkTable:
        return ChunkTable(
            self.horizon, self.gamma, *(getattr(self, f)[keep] for f in (
                "episode", "start", "action_index", "valid", "reward", "done", "next_index", "target_mask",
                "mc_return",
            ))
        )


def episode_chunks(rewards: np.ndarray, terminals: np.ndarray, horizon: int, gamma: float, offset: int = 0) -> dict:
    """The table rows of one episode (see the module docstring)."""
    T = len(rewards)
    h = horizon
    t = np.arange(T)[:, None]
    j = np.arange(h)[None, :]
    step = t + j
    valid = step <= T - 1
    clipped = np.minimum(step, T - 1)
    r = np.where(valid, rewards[clipped], 0.0)
    term = valid & terminals[clipped]
    done = np.logical_or.accumulate(term, axis=1)
    done_before = np.zeros_like(done)
    done_before[:, 1:] = done[:, :-1]
    r = np.where(done_before, 0.0, r)  # nothing is earned after a terminal step
    reward = np.cumsum(r * gamma ** j, axis=1)
    has_next = step + 1 <= T - 1
    target_mask = (valid | done_before) & (done | has_next)
    return {
        "start": offset + np.arange(T),
        "action_index": offset + clipped,
        "valid": valid,
        "reward": reward.astype(np.float32),
        "done": done,
        "next_index": offset + np.minimum(step + 1, T - 1),
        "target_mask": target_mask,
        "mc_return": returns_to_go(rewards, gamma).astype(np.float32),
    }


def build_chunk_table(
    rewards: Sequence[np.ndarray], terminals: Sequence[np.ndarray], horizon: int, gamma: float
) -> ChunkTable:
    if horizon < 1:
        raise ValueError(f"chunk horizon must be >= 1, got {horizon}")
    rows = []
    offset = 0
    for e, (r, d) in enumerate(zip(rewards, terminals, strict=True)):
        row = episode_chunks(np.asarray(r, np.float64), np.asarray(d, bool), horizon, gamma, offset)
        row["episode"] = np.full(len(r), e)
        rows.append(row)
        offset += len(r)
    cat = {k: np.concatenate([row[k] for row in rows]) for k in rows[0]}
    return ChunkTable(horizon=horizon, gamma=gamma, **cat)
