"""The optimisation every learner shares: AdamW with gradient sync and clipping (`Optimizer`), a learning-rate
half-life, a weight EMA, and the two learner bases that hold them (`OneOptimizer`: one optimizer's state in
checkpoints; `Averaged`: that plus a weight EMA whose average the checkpoints and the stage's end carry)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import torch
from torch import Tensor


class Optimizer:
    """AdamW over some parameters, the one gradient step every learner takes (backward, average over the ranks
    when the trainer sets `grad_sync`, clip, step) and its state for checkpoints."""

    def __init__(self, params, lr: float, weight_decay: float, grad_clip: float,
                 schedule: Callable[[int], float] | None = None) -> None:
        self.params = list(params)
        self.opt = torch.optim.AdamW(self.params, lr=lr, weight_decay=weight_decay)
        self.grad_clip = grad_clip
        self.grad_sync = None  # averages gradients over ranks (torchrun), set by the trainer
        self.base_lr, self.schedule = lr, schedule  # schedule(step) -> factor of the base learning rate

    def step(self, loss: Tensor, step: int | None = None) -> Tensor:
        """One step on `loss` (at the learning rate of `step` under the schedule); returns the gradient norm before
        clipping."""
        if self.schedule is not None and step is not None:
            for group in self.opt.param_groups:
                group["lr"] = self.base_lr * self.schedule(step)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        if self.grad_sync:
            self.grad_sync(self.params)
        norm = torch.nn.utils.clip_grad_norm_(self.params, self.grad_clip)
        self.opt.step()
        return norm

    def state_dict(self) -> dict:
        return {"opt": self.opt.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        if state.get("opt"):
            self.opt.load_state_dict(state["opt"])


class OneOptimizer:
    """A learner with one Optimizer (`self.optim`): the trainer's grad_sync and the checkpoint state go to it."""

    optim: Optimizer

    @property
    def grad_sync(self):
        return self.optim.grad_sync

    @grad_sync.setter
    def grad_sync(self, value) -> None:
        self.optim.grad_sync = value

    def state_dict(self) -> dict:
        return self.optim.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.optim.load_state_dict(state)


def half_life_schedule(half_life: int, floor: float) -> Callable[[int], float] | None:
    """step -> max(floor, 0.5 ** (step / half_life)); None (constant) when half_life is 0."""
    if half_life <= 0:
        return None
    return lambda step: max(floor, 0.5 ** (step / half_life))


class WeightEMA:
    """An exponential moving average of parameters (decay ramped up as min(decay, (1 + step) / (10 + step)), as
    Diffusion Policy's EMA warms up). `swapped()` puts the average into the parameters for a while (a checkpoint is
    written with it), `apply()` for good (the end of the stage)."""

    def __init__(self, params, decay: float) -> None:
        self.params = list(params)
        self.decay = decay
        self.shadow = [p.detach().clone() for p in self.params]

    @torch.no_grad()
    def update(self, step: int) -> None:
        d = min(self.decay, (1.0 + step) / (10.0 + step))
        torch._foreach_lerp_(self.shadow, [p.detach() for p in self.params], 1.0 - d)

    @contextlib.contextmanager
    def swapped(self):
        raw = [p.detach().clone() for p in self.params]
        with torch.no_grad():
            for p, s in zip(self.params, self.shadow, strict=True):
                p.copy_(s)
        try:
            yield
        finally:
            with torch.no_grad():
                for p, r in zip(self.params, raw, strict=True):
                    p.copy_(r)

    @torch.no_grad()
    def apply(self) -> None:
        for p, s in zip(self.params, self.shadow, strict=True):
            p.copy_(s)

    def state_dict(self) -> dict:
        return {"shadow": [s.cpu() for s in self.shadow]}

    def load_state_dict(self, state: dict) -> None:
        if state.get("shadow"):
            with torch.no_grad():
                for s, v in zip(self.shadow, state["shadow"], strict=True):
                    s.copy_(v.to(s.device))


class Averaged(OneOptimizer):
    """A learner whose parameters keep a weight EMA (`self.ema`, None = off): checkpoints are written with the
    average (the raw weights go into state_dict to resume), the stage ends with it (export, next stage)."""

    ema: WeightEMA | None

    def saving(self):
        """The parameters a checkpoint is written with: the average (the raw ones go into state_dict to resume)."""
        return self.ema.swapped() if self.ema is not None else contextlib.nullcontext()

    def finish(self) -> None:
        """End of the stage: the policy keeps the average (what the export and the next stage start from)."""
        if self.ema is not None:
            self.ema.apply()

    def state_dict(self) -> dict:
        state = self.optim.state_dict()
        if self.ema is not None:
            # the checkpoint's policy weights are the average (saving()): keep the raw ones and the average here
            state["ema"] = {**self.ema.state_dict(), "raw": [p.detach().cpu().clone() for p in self.ema.params]}
        return state

    def load_state_dict(self, state: dict) -> None:
        self.optim.load_state_dict(state)
        ema = state.get("ema")
        if self.ema is not None and ema:
            self.ema.load_state_dict(ema)
            with torch.no_grad():  # training goes on from the raw weights, not from the average it was saved with
                for p, r in zip(self.ema.params, ema["raw"], strict=True):
                    p.copy_(r.to(p.device))

    def averaged_step(self, loss: Tensor, step: int) -> Tensor:
        """One optimizer step, then the average; returns the gradient norm."""
        norm = self.optim.step(loss, step)
        if self.ema is not None:
            self.ema.update(step)
        return norm
