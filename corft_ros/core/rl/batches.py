"""Episodes + rewards + chunk table → training batches (torch), sampled from the memory-mapped cache.

`ChunkData.batch(rows)` gathers, for chunk-table rows: the observation at t (images uint8, state, text
embedding), the data chunk a_{t:t+h} (absolute), the chunk table's masks/rewards/returns, and, when
asked, the observations at t+j+1 for every prefix j (the TD backups' next states).
`ChunkBatches` exposes it as a map-style torch Dataset indexed by a list of rows, so the standard
DataLoader + BatchSampler + DistributedSampler shard and shuffle it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from corft_ros.core.dataset.episode import Episode
from corft_ros.core.rl.chunks import ChunkTable, build_chunk_table
from corft_ros.core.rl.rewards import RewardConfig, episode_rewards


class ChunkData:
    def __init__(
        self,
        episodes: Sequence[Episode],
        horizon: int,
        rewards: RewardConfig,
        camera_names: Sequence[str],
        text_table: dict[str, np.ndarray],
    ) -> None:
        self.episodes = list(episodes)
        self.cams = list(camera_names)
        self.horizon = horizon
        lengths = np.array([len(e) for e in self.episodes])
        self.offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        self.episode_of = np.repeat(np.arange(len(self.episodes)), lengths)
        self.tick_of = np.concatenate([np.arange(n) for n in lengths])
        self.state = np.concatenate([np.asarray(e.state, np.float32) for e in self.episodes])
        self.action = np.concatenate([np.asarray(e.action, np.float32) for e in self.episodes])
        instructions = sorted({e.instruction for e in self.episodes})
        self.instructions = instructions
        self.text = np.stack([np.asarray(text_table[i], np.float32) for i in instructions])
        self.text_of_episode = np.array([instructions.index(e.instruction) for e in self.episodes])
        rs, ds = [], []
        for e in self.episodes:
            r, d = episode_rewards(len(e), e.success, rewards, np.asarray(e.state), np.asarray(e.intervention))
            rs.append(r)
            ds.append(d)
        self.rewards = rs
        self.table: ChunkTable = build_chunk_table(rs, ds, horizon, rewards.gamma)
        self.success_of_episode = np.array([e.success for e in self.episodes])
        # What supervised terms may imitate, per tick (HG-DAgger): every tick of a success nobody had to rescue, and
        # the ticks an operator drove (a takeover's corrections, in any episode). Without takeovers: the successes.
        taken = np.array([bool(np.asarray(e.intervention).any()) for e in self.episodes])
        self.imitable = np.concatenate([
            np.asarray(e.intervention, dtype=bool) | (e.success and not was_taken)
            for e, was_taken in zip(self.episodes, taken, strict=True)])
        # episodes the critic never trains on (the RL stage's held-out set for its diagnostics)
        self.held_out_of_episode = np.zeros(len(self.episodes), dtype=bool)

    def hold_out(self, episodes: np.ndarray) -> None:
        """Mark episodes the critic must not train on: their rows carry held_out = True."""
        self.held_out_of_episode[:] = False
        self.held_out_of_episode[np.asarray(episodes, dtype=np.int64)] = True

    def __len__(self) -> int:
        return len(self.table)

    def rows_of(self, which: str) -> np.ndarray:
        """Chunk-table rows of 'all' episodes or only the 'success'ful ones."""
        if which == "all":
            return np.arange(len(self.table))
        if which == "success":  # what BC imitates: successes (and an operator's corrections, HG-DAgger)
            return np.nonzero(self.imitable[self.table.start])[0]
        raise ValueError(f"episodes selector must be 'all' or 'success', got {which!r}")

    def normalization(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        return (self.state.mean(0), self.state.std(0), self.action.mean(0), self.action.std(0))

    def max_abs_reward(self) -> float:
        return float(max(np.abs(r).max() for r in self.rewards))

    def value_scale(self) -> float:
        """The largest |value| the data shows: max |G_t| and max |r_t| (the divergence guard's yardstick)."""
        return max(self.max_abs_reward(), float(np.abs(self.table.mc_return).max()))

    def images(self, index: np.ndarray) -> np.ndarray:
        """uint8 [n, cams, 3, H, W] for global tick indices (read from the memory maps)."""
        index = np.asarray(index).reshape(-1)
        eps = self.episode_of[index]
        ticks = self.tick_of[index]
        first = self.episodes[0].images[self.cams[0]]
        out = np.empty((len(index), len(self.cams), *first.shape[1:]), dtype=np.uint8)
        for e in np.unique(eps):
            sel = np.nonzero(eps == e)[0]
            t = ticks[sel]
            for c, cam in enumerate(self.cams):
                out[sel, c] = self.episodes[e].images[cam][t]
        return out.transpose(0, 1, 4, 2, 3)

    def chunk_fields(self, rows: np.ndarray) -> dict[str, torch.Tensor]:
        """What a batch holds besides its observations: the action chunk, which of its steps are valid, the
        prefixes' rewards, ends and TD-target mask, the return-to-go and the episode's success."""
        tb = self.table
        return {
            "action": torch.from_numpy(self.action[tb.action_index[rows]]),
            "valid": torch.from_numpy(tb.valid[rows]),
            "reward": torch.from_numpy(tb.reward[rows]),
            "done": torch.from_numpy(tb.done[rows]),
            "target_mask": torch.from_numpy(tb.target_mask[rows]),
            "mc_return": torch.from_numpy(tb.mc_return[rows]),
            "success": torch.from_numpy(self.imitable[tb.start[rows]]),  # BC may imitate this sample
            "held_out": torch.from_numpy(self.held_out_of_episode[tb.episode[rows]]),
        }

    def batch(self, rows: np.ndarray, with_next: bool = False) -> dict[str, torch.Tensor]:
        tb = self.table
        rows = np.asarray(rows)
        start = tb.start[rows]
        text = self.text[self.text_of_episode[tb.episode[rows]]]
        out = {
            "images": torch.from_numpy(self.images(start)),
            "state": torch.from_numpy(self.state[start]),
            "text": torch.from_numpy(text),
            **self.chunk_fields(rows),
        }
        if with_next:
            nxt = tb.next_index[rows]  # [B, h]
            b, h = nxt.shape
            out["next_images"] = torch.from_numpy(self.images(nxt)).reshape(b, h, *out["images"].shape[1:])
            out["next_state"] = torch.from_numpy(self.state[nxt])
        return out


class ChunkBatches(torch.utils.data.Dataset):
    """Map-style dataset over a subset of chunk-table rows; `ds[list_of_positions]` is a whole batch."""

    def __init__(self, data: ChunkData, rows: np.ndarray, with_next: bool) -> None:
        self.data = data
        self.rows = np.asarray(rows)
        self.with_next = with_next

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, positions):  # a list of positions (BatchSampler) or one position
        pos = np.atleast_1d(np.asarray(positions))
        return self.data.batch(self.rows[pos], self.with_next)


def to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    out = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
    for key in ("images", "next_images"):
        if key in out:
            out[key] = out[key].float().div_(255.0)
    return out
