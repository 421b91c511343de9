"""The one stage loop: `learner.update(batch, step)` until the stage's steps, with the batches it draws (an endless,
rank-sharded stream of chunk-table rows), the scalars it averages and writes to TensorBoard, the progress bar, the
checkpoints it writes (atomically, with `latest.pt` to resume from), the critic diagnostics and stop requests.
"""

from __future__ import annotations

import contextlib
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from corft_ros.core.rl.config import TrainConfig
from corft_ros.core.rl.distributed import Runtime, any_rank
from corft_ros.core.rl.training_data import TrainingData
from corft_ros.core.robot import ConfigError


class Batches:
    """An endless stream of batches from rows of the chunk table, sharded across ranks."""

    def __init__(self, data: Any, rows: np.ndarray, with_next: bool, cfg: TrainConfig, rt: Runtime,
                 seed: int) -> None:
        from torch.utils.data import BatchSampler, DataLoader, DistributedSampler

        from corft_ros.core.rl.batches import ChunkBatches

        if len(rows) == 0:
            raise ConfigError("no training samples (no episodes selected for this stage)")
        ds = ChunkBatches(data, rows, with_next)
        self.sampler = DistributedSampler(ds, num_replicas=rt.world, rank=rt.rank, shuffle=True, seed=seed)
        per_rank = len(self.sampler)
        batch = min(cfg.batch_size, per_rank)
        self.loader = DataLoader(
            ds, sampler=BatchSampler(self.sampler, batch, drop_last=True), batch_size=None,
            num_workers=cfg.num_workers, pin_memory=rt.device is not None and rt.device.type == "cuda",
            persistent_workers=cfg.num_workers > 0,
        )
        self.epoch = 0
        self._it = None
        self.device = rt.device

    def __next__(self) -> dict:
        from corft_ros.core.rl.batches import to_device

        while True:
            if self._it is None:
                self.sampler.set_epoch(self.epoch)
                self._it = iter(self.loader)
            try:
                return to_device(next(self._it), self.device)
            except StopIteration:
                self._it = None
                self.epoch += 1


class ScalarLog:
    """Averages scalars over `every` steps; rank 0 writes them to TensorBoard."""

    def __init__(self, folder: Path | None) -> None:
        self.writer = None
        if folder is not None:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(folder))
        self.sums: dict[str, float] = {}
        self.counts: dict[str, int] = {}
        self.last: dict[str, float] = {}

    def add(self, logs: dict) -> None:
        for k, v in logs.items():
            self.sums[k] = self.sums.get(k, 0.0) + float(v)
            self.counts[k] = self.counts.get(k, 0) + 1

    def flush(self, step: int) -> dict[str, float]:
        means = {k: self.sums[k] / self.counts[k] for k in self.sums}
        if self.writer is not None:
            for k, v in means.items():
                self.writer.add_scalar(k, v, step)
            self.writer.flush()
        self.last.update(means)
        self.sums.clear()
        self.counts.clear()
        return means

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def _progress(total: int, initial: int, desc: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc=desc, disable=not enabled, dynamic_ncols=True, leave=True)


def write_checkpoint(path: Path, policy: Any, texts: dict, extra: dict, update_latest: bool = True) -> None:
    """Save a training checkpoint atomically (a temporary file renamed into place), then, with `update_latest`, copy
    it to `latest.pt` beside it (what a run resumes from) the same way."""
    from corft_ros.core.policy.checkpoint import save_checkpoint

    tmp = path.with_name(path.name + ".tmp")
    save_checkpoint(policy, tmp, texts, extra=extra)
    tmp.replace(path)
    if not update_latest:
        return
    latest = path.parent / "latest.pt"
    shutil.copyfile(path, latest.with_name("latest.pt.tmp"))
    latest.with_name("latest.pt.tmp").replace(latest)


ProgressFn = Callable[[str, int, int, dict], None]
STAGE_TITLES = {"il": "IL", "rl": "CO-RFT", "bc": "BC (control)"}


def run_stage(stage: str, learner: Any, batches: Any, policy: Any, tdata: TrainingData, cfg: TrainConfig,
              rt: Runtime, steps: int, start: int, ckpt_dir: Path | None, scalars: ScalarLog,
              on_progress: ProgressFn | None, should_stop: Callable[[], bool] | None, step_offset: int = 0,
              say: Callable[[str], None] = print) -> dict:
    """The one training loop: `learner.update(batch, step)` until `steps`, logging, checkpoints, stop requests."""
    from corft_ros.core.rl.diagnostics import lines as diag_lines
    from corft_ros.core.rl.diagnostics import scalars as diag_scalars

    bar = _progress(steps, start, STAGE_TITLES[stage], cfg.progress and rt.main)
    t0, done, step = time.perf_counter(), 0, start
    diagnose = getattr(learner, "diagnose", None) if rt.main else None
    diag: dict | None = None
    policy.train()
    try:
        while step < steps:
            logs = learner.update(next(batches), step)
            step += 1
            done += 1
            scalars.add(logs)
            if step % cfg.log_every == 0 or step == steps:
                means = scalars.flush(step_offset + step)
                key = {"il": "il/loss", "rl": "rl/td_loss", "bc": "bc/loss"}[stage]
                bar.set_postfix(loss=f"{means.get(key, float('nan')):.4f}")
                if on_progress:
                    on_progress(stage, step, steps, means)
            bar.update(1)
            if diagnose is not None and (step % cfg.checkpoint_every == 0 or step == steps):
                diag = diagnose()
                if diag is not None and scalars.writer is not None:
                    for k, v in diag_scalars(diag).items():
                        scalars.writer.add_scalar(k, v, step_offset + step)
                    scalars.writer.flush()
            if ckpt_dir is not None and (step % cfg.checkpoint_every == 0 or step == steps):
                state = learner.state_dict()  # before saving(): the learner keeps what training resumes from
                with getattr(learner, "saving", contextlib.nullcontext)():  # IL: the checkpoint holds the EMA
                    write_checkpoint(ckpt_dir / f"{stage}_{step:07d}.pt", policy, tdata.texts,
                                     {"stage": stage, "step": step, "steps": steps, "learner": state})
            if should_stop is not None and any_rank(rt, should_stop()):
                break
    finally:
        bar.close()
    elapsed = time.perf_counter() - t0
    prefix = {"il": "il/", "rl": "rl/", "bc": "bc/"}[stage]
    result = {"steps": step, "steps_per_s": done / elapsed if elapsed > 0 and done else None,
              "final": {k: v for k, v in scalars.last.items() if k.startswith(prefix)}}
    if diagnose is not None:
        if diag is None:  # stopped between checkpoints, or resumed at the end: the critic as it is now
            diag = diagnose()
        if diag is not None:
            result["diagnostics"] = diag
            for line in diag_lines(diag):
                say(line)
    return result
