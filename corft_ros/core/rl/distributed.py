"""Where the training job runs: one process, or one rank of `torchrun --nproc_per_node N` (gloo on CPU, NCCL on
GPU); gradients are averaged over the ranks after each backward, as DistributedDataParallel does."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from corft_ros.core.robot import ConfigError


@dataclass
class Runtime:
    rank: int
    world: int
    device: Any
    distributed: bool

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup_runtime(cfg) -> Runtime:
    """cfg: a TrainConfig (threads, device)."""
    import torch
    import torch.distributed as dist

    if cfg.threads:
        torch.set_num_threads(int(cfg.threads))
    use_cuda = torch.cuda.is_available() and cfg.device != "cpu"
    if cfg.device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device is 'cuda' but no CUDA device is available")
    device = torch.device("cpu")
    if use_cuda:  # one GPU per local rank, chosen before NCCL starts
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        device = torch.device("cuda", local)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    rank = dist.get_rank() if dist.is_initialized() else 0
    world = dist.get_world_size() if dist.is_initialized() else 1
    return Runtime(rank, world, device, dist.is_initialized())


def barrier(rt: Runtime) -> None:
    if rt.distributed:
        import torch.distributed as dist

        dist.barrier()


def any_rank(rt: Runtime, flag: bool) -> bool:
    if not rt.distributed:
        return flag
    import torch
    import torch.distributed as dist

    t = torch.tensor([1.0 if flag else 0.0], device=rt.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def grad_sync(rt: Runtime) -> Callable[[list], None] | None:
    """Average gradients over the ranks after each backward (what DistributedDataParallel does), or None."""
    if not rt.distributed:
        return None
    import torch.distributed as dist

    def sync(params: list) -> None:
        for p in params:
            if p.grad is not None:
                dist.all_reduce(p.grad)
                p.grad /= rt.world

    return sync
