"""Backbone features of every tick, encoded once: CO-RFT trains on a frozen backbone, so its critic and actor never
need images again. An order of magnitude cheaper per step than re-encoding the current and the h next observations
of every sample (the TD backups' next states), which made stage 2 run at 1-2 steps/s on 2 cores."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from corft_ros.core.rl.batches import ChunkData


class FeatureBank:
    """features[i] = policy.encode(observation of global tick i), float16 [N, T, D]."""

    def __init__(self, data: ChunkData, policy, batch_size: int = 256,
                 progress: Callable[[int, int], None] | None = None) -> None:
        self.data = data
        n = len(data.state)
        chunks = []
        policy.eval()
        with torch.no_grad():
            for start in range(0, n, batch_size):
                index = np.arange(start, min(n, start + batch_size))
                images = torch.from_numpy(data.images(index)).float().div_(255.0)
                state = torch.from_numpy(data.state[index])
                text = torch.from_numpy(data.text[data.text_of_episode[data.episode_of[index]]])
                chunks.append(policy.encode(images, state, text).to(torch.float16))
                if progress is not None:
                    progress(index[-1] + 1, n)
        self.features = torch.cat(chunks)

    def batch(self, rows: np.ndarray) -> dict[str, torch.Tensor]:
        d, tb = self.data, self.data.table
        rows = np.asarray(rows)
        start = tb.start[rows]
        nxt = tb.next_index[rows]
        return {
            "features": self.features[torch.from_numpy(start)].float(),
            "next_features": self.features[torch.from_numpy(nxt.reshape(-1))].float().view(
                len(rows), nxt.shape[1], *self.features.shape[1:]),
            **d.chunk_fields(rows),
        }


class FeatureBatches:
    """An endless shuffled stream of feature batches over chunk-table rows."""

    def __init__(self, bank: FeatureBank, rows: np.ndarray, batch_size: int, seed: int = 0) -> None:
        if len(rows) == 0:
            raise ValueError("no training samples for this stage")
        self.bank = bank
        self.rows = np.asarray(rows)
        self.batch_size = min(batch_size, len(self.rows))
        self.rng = np.random.default_rng(seed)
        self._order = np.empty(0, dtype=np.int64)
        self.epoch = 0

    def __next__(self) -> dict[str, torch.Tensor]:
        if len(self._order) < self.batch_size:
            self._order = self.rng.permutation(self.rows)
            self.epoch += 1
        take, self._order = self._order[: self.batch_size], self._order[self.batch_size:]
        return self.bank.batch(take)
