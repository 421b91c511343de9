"""The training job: bags → dataset → stage 1 (IL) → stage 2 (CO-RFT) or the control arm (BC) → models/<name>/.

Runs as one process or under `torchrun --nproc_per_node N` (gloo on CPU, NCCL on GPU; gradients averaged over the
ranks after each backward, as DistributedDataParallel does; every rank reads the same cached dataset and trains on
its shard of the chunk starts).
Rank 0 builds the cache first, writes TensorBoard scalars, checkpoints and the export; every rank can
resume from `<output>/checkpoints/latest.pt`.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from corft_ros.core.dataset.load import LoadReport, dataset_summary, load_episodes
from corft_ros.core.policy.checkpoint import read_checkpoint
from corft_ros.core.rl.config import STAGES, TrainConfig, config_from_params  # noqa: F401 (the job's API)
from corft_ros.core.rl.distributed import Runtime, any_rank, barrier, grad_sync, setup_runtime
from corft_ros.core.robot import ConfigError, RobotConfig

# --------------------------------------------------------------------------------------------- setup


def instruction_table(instructions: list[str], cache_dir: Path) -> dict[str, np.ndarray]:
    """Sentence embeddings of the instructions, remembered in the dataset cache (the encoder takes seconds)."""
    from corft_ros.core.policy.config import TEXT_ENCODER
    from corft_ros.core.policy.text import InstructionEmbeddings, clean_instruction

    file = cache_dir / f"instructions-{TEXT_ENCODER}.json"
    known: dict[str, list[float]] = {}
    with contextlib.suppress(OSError, ValueError):
        known = json.loads(file.read_text())
    wanted = [clean_instruction(i) for i in instructions]
    emb = InstructionEmbeddings({k: v for k, v in known.items() if k in wanted})
    missing = [w for w in wanted if w not in emb]
    if missing:
        emb.add(missing)
        known.update({k: [float(x) for x in v] for k, v in emb.table().items()})
        with contextlib.suppress(OSError):
            cache_dir.mkdir(parents=True, exist_ok=True)
            tmp = file.with_suffix(f".tmp{os.getpid()}")
            tmp.write_text(json.dumps(known))
            tmp.replace(file)
    table = emb.table()
    return {raw: table[clean] for raw, clean in zip(instructions, wanted, strict=True)}


def policy_config(cfg: TrainConfig, robot: RobotConfig, from_checkpoint: Any = None):
    from corft_ros.core.policy.config import PolicyConfig

    if from_checkpoint is not None:
        pcfg = from_checkpoint
        if pcfg.joint_names != robot.joint_names:
            raise ConfigError(f"checkpoint joints {pcfg.joint_names} differ from the robot's {robot.joint_names}")
    else:
        overrides = dict(cfg.policy)
        overrides.setdefault("image_height", cfg.dataset.image_size[0])
        overrides.setdefault("image_width", cfg.dataset.image_size[1])
        overrides.setdefault("action_dt", 1.0 / (cfg.dataset.rate_hz or robot.action_rate_hz))
        pcfg = PolicyConfig.for_robot(robot, camera_names=cfg.dataset.camera_names, **overrides)
    # the dataset follows the model: cameras and image size
    cfg.dataset.camera_names = list(pcfg.camera_names)
    cfg.dataset.image_size = (pcfg.image_height, pcfg.image_width)
    return pcfg


@dataclass
class TrainingData:
    report: LoadReport
    data: Any  # batches.ChunkData
    texts: dict[str, np.ndarray]


def load_training_data(
    cfg: TrainConfig, bags: Any, robot: RobotConfig, horizon: int, rt: Runtime | None = None,
    log: Callable[[str], None] = print,
) -> TrainingData:
    from corft_ros.core.rl.batches import ChunkData

    rt = rt or Runtime(0, 1, None, False)
    cache = cfg.dataset.resolved_cache_dir()
    report = texts = None
    if rt.main:
        report = load_episodes(bags, robot, cfg.dataset, strict=cfg.strict, log=log)
        texts = instruction_table(sorted({e.instruction for e in report.episodes}), cache)
    barrier(rt)  # rank 0 built the cache and embedded the instructions; the others now only read them
    if not rt.main:
        report = load_episodes(bags, robot, cfg.dataset, strict=cfg.strict, log=lambda _m: None)
        texts = instruction_table(sorted({e.instruction for e in report.episodes}), cache)
    assert report is not None and texts is not None
    data = ChunkData(report.episodes, horizon, cfg.rewards, cfg.dataset.camera_names, texts)
    return TrainingData(report, data, texts)


# --------------------------------------------------------------------------------------------- loop pieces


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


def _save(path: Path, policy: Any, texts: dict, extra: dict, update_latest: bool = True) -> None:
    from corft_ros.core.policy.checkpoint import save_checkpoint

    tmp = path.with_name(path.name + ".tmp")
    save_checkpoint(policy, tmp, texts, extra=extra)
    tmp.replace(path)
    if not update_latest:
        return
    latest = path.parent / "latest.pt"
    shutil.copyfile(path, latest.with_name("latest.pt.tmp"))
    latest.with_name("latest.pt.tmp").replace(latest)


# --------------------------------------------------------------------------------------------- stages


ProgressFn = Callable[[str, int, int, dict], None]
STAGE_TITLES = {"il": "IL", "rl": "CO-RFT", "bc": "BC (control)"}


def _stage_steps(cfg: TrainConfig, stage: str, cap: int | None) -> int:
    steps = {"il": cfg.il_steps, "rl": cfg.rl_steps, "bc": cfg.bc_steps or cfg.rl_steps}[stage]
    return min(steps, cap) if cap is not None else steps


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
                    _save(ckpt_dir / f"{stage}_{step:07d}.pt", policy, tdata.texts,
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


def make_learner(stage: str, policy: Any, tdata: TrainingData, cfg: TrainConfig, rt: Runtime,
                 say: Callable[[str], None], start: int = 0) -> tuple[Any, Any]:
    """(learner, batches) of a stage. IL reads images; CO-RFT and the BC control train the action expert (and
    critic) on features of the frozen backbone, encoded once. A stage resumed at step `start` draws its batches
    (and noise) from seeds of that step: it continues with fresh samples instead of replaying the first ones."""
    import torch

    torch.manual_seed(cfg.seed + 1000 * rt.rank + 1 + start)
    from corft_ros.core.rl.diagnostics import critic_diagnostics, split_holdout
    from corft_ros.core.rl.features import FeatureBank, FeatureBatches
    from corft_ros.core.rl.learners import BCLearner, CORFTLearner, ExtractionConfig, ILLearner, executed_prefix

    if stage == "il":
        for p in policy.critic_parameters():
            p.requires_grad_(False)
        learner = ILLearner(policy, cfg.il)
        learner.grad_sync = grad_sync(rt)
        return learner, Batches(tdata.data, tdata.data.rows_of(cfg.il.episodes), False, cfg, rt, cfg.seed + start)
    say(f"encoding {len(tdata.data.state)} ticks with the frozen backbone (once)")
    bank = FeatureBank(tdata.data, policy)
    rows = tdata.data.rows_of("success" if stage == "bc" else cfg.corft.episodes)
    if rt.distributed:
        rows = rows[rt.rank::rt.world]
    batches = FeatureBatches(bank, rows, cfg.batch_size, seed=cfg.seed + rt.rank + start)
    if stage == "bc":
        learner = BCLearner(policy, cfg.corft)
    else:
        c = cfg.corft
        prefix = c.executed_prefix or executed_prefix(c.policy_rate_hz, policy.config.action_dt,
                                                      policy.config.chunk_size)
        ex = ExtractionConfig(method=c.extraction, samples=c.samples, beta=c.beta, prefix=prefix,
                              awr_temperature=c.awr_temperature, awr_max_weight=c.awr_max_weight, q_floor=c.q_floor,
                              proposals=c.deploy_proposals, noise_std=c.deploy_noise_std)
        learner = CORFTLearner(policy, c, ex, tdata.data.value_scale())
        held = split_holdout(tdata.data.success_of_episode, c.holdout, cfg.seed)
        tdata.data.hold_out(held)
        say(f"critic diagnostics: {len(held)} of {len(tdata.data.episodes)} episodes held out "
            f"({int(tdata.data.success_of_episode[held].sum())} successful; corft.holdout {c.holdout:g})")
        rate = 1.0 / policy.config.action_dt
        learner.probe = lambda: critic_diagnostics(policy, bank, held, rate)
    learner.grad_sync = grad_sync(rt)
    return learner, batches


# --------------------------------------------------------------------------------------------- the job


def train(
    bags: Any,
    cfg: TrainConfig,
    robot: RobotConfig,
    steps_cap: int | None = None,
    log: Callable[[str], None] = print,
    on_progress: ProgressFn | None = None,
    should_stop: Callable[[], bool] | None = None,
    return_policy: bool = False,
) -> Any:
    """Run the configured stages; returns a summary (also written to <output>/train.json on rank 0), or
    (summary, trained ChunkPolicy on this rank) with `return_policy`."""
    import torch

    from corft_ros.core.policy.config import PolicyConfig

    cfg.validate()
    rt = setup_runtime(cfg)
    say = log if rt.main else (lambda _m: None)
    out = Path(cfg.output)
    ckpt_dir = out / "checkpoints" if rt.main else None
    if rt.main:
        ckpt_dir.mkdir(parents=True, exist_ok=True)

    resume, init = _starting_point(cfg, out, say)
    ckpt_cfg = PolicyConfig.from_dict(init["config"], source="checkpoint") if init else None
    pcfg = policy_config(cfg, robot, ckpt_cfg)

    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed + rt.rank)
    tdata = load_training_data(cfg, bags, robot, pcfg.chunk_size, rt, say)
    for line in tdata.report.lines():
        say(line)
    summary: dict[str, Any] = {"dataset": dataset_summary(tdata.report), "world_size": rt.world,
                               "device": str(rt.device), "policy": pcfg.to_dict(), "stages": {}}

    policy = _initial_policy(pcfg, init, tdata, rt)
    extra = (resume.get("extra") or {}) if resume else {}
    scalars = ScalarLog(out / "tensorboard" if rt.main else None)
    try:
        stages = ["il", "rl"] if cfg.stage == "all" else [cfg.stage]
        for stage in stages:
            _train_stage(stage, policy, tdata, cfg, rt, steps_cap, extra, summary, ckpt_dir, scalars, on_progress,
                         should_stop, say)
    finally:
        scalars.close()

    if rt.main:
        _finish(policy, tdata, cfg, stages[-1], out, ckpt_dir, summary, say)
    barrier(rt)
    return (summary, policy) if return_policy else summary


def _starting_point(cfg: TrainConfig, out: Path, say: Callable[[str], None]) -> tuple[dict, dict]:
    """(resume, init): a resumable run, an explicit checkpoint, or scratch (both empty)."""
    resume: dict = {}
    latest = out / "checkpoints" / "latest.pt"
    if cfg.resume and latest.is_file():
        resume = read_checkpoint(latest)
        extra = resume.get("extra") or {}
        say(f"resuming from {latest} (stage {extra.get('stage')}, step {extra.get('step')})")
    init = resume or (read_checkpoint(Path(cfg.init_checkpoint)) if cfg.init_checkpoint else {})
    if cfg.stage in ("rl", "bc") and not init:
        raise ConfigError(f"stage '{cfg.stage}' starts from an IL policy: pass init_checkpoint (--init) or resume a "
                          "run whose IL stage finished")
    return resume, init


def _initial_policy(pcfg: Any, init: dict, tdata: TrainingData, rt: Runtime) -> Any:
    """The ChunkPolicy on this rank's device: the checkpoint's weights, or fresh with the dataset's normalization."""
    import torch

    from corft_ros.core.policy.model import ChunkPolicy

    policy = ChunkPolicy(pcfg)
    if init:
        policy.load_state_dict(init["state_dict"])
    else:
        policy.set_normalization(*[torch.as_tensor(x) for x in tdata.data.normalization()])
    policy.to(rt.device)
    return policy


def _train_stage(stage: str, policy: Any, tdata: TrainingData, cfg: TrainConfig, rt: Runtime, steps_cap: int | None,
                 extra: dict, summary: dict, ckpt_dir: Path | None, scalars: ScalarLog,
                 on_progress: ProgressFn | None, should_stop: Callable[[], bool] | None,
                 say: Callable[[str], None]) -> None:
    """One stage of the job, resumed from `extra` where the resumed run stopped in it; its result goes to `summary`."""
    r_stage, r_step = extra.get("stage"), int(extra.get("step", 0))
    steps = _stage_steps(cfg, stage, steps_cap)
    start, state = 0, {}
    if r_stage == stage:
        start, state = min(r_step, steps), extra
    elif r_stage in ("rl", "bc") and stage == "il":
        say("IL stage already finished in the resumed run")
        return
    if start >= steps:
        say(f"{stage.upper()} stage already at step {start}/{steps}")
        summary["stages"][stage] = {"steps": start, "resumed": True}
        return
    say(f"stage {stage.upper()}: {steps - start} steps on {rt.world} process(es), device {rt.device}")
    learner, batches = make_learner(stage, policy, tdata, cfg, rt, say, start)
    if state.get("learner"):
        learner.load_state_dict(state["learner"])
    offset = _stage_steps(cfg, "il", steps_cap) if (cfg.stage == "all" and stage == "rl") else 0
    summary["stages"][stage] = run_stage(stage, learner, batches, policy, tdata, cfg, rt, steps, start,
                                         ckpt_dir, scalars, on_progress, should_stop, offset, say)
    if hasattr(learner, "finish"):
        learner.finish()  # IL: the policy keeps the weight average (export, next stage)
    if stage != "il":
        for p in policy.backbone_parameters():
            p.requires_grad_(True)
    for p in policy.critic_parameters():
        p.requires_grad_(True)
    barrier(rt)


def _finish(policy: Any, tdata: TrainingData, cfg: TrainConfig, last_stage: str, out: Path, ckpt_dir: Path,
            summary: dict, say: Callable[[str], None]) -> None:
    """Rank 0: the final checkpoint, the export (if configured) and <output>/train.json."""
    from corft_ros.core.policy.export import ModelError, export_policy

    final = ckpt_dir / "final.pt"
    _save(final, policy, tdata.texts, {"stage": last_stage, "final": True}, update_latest=False)
    summary["checkpoint"] = str(final)
    if cfg.export:
        target = Path(cfg.models_dir) / cfg.name
        try:
            # a CO-RFT policy is deployed with critic-guided selection; IL and the BC control arm without
            deploy = ({"best_of_n": cfg.corft.deploy_best_of_n, "selection_beta": cfg.corft.beta,
                       "proposals": cfg.corft.deploy_proposals, "noise_std": cfg.corft.deploy_noise_std}
                      if last_stage == "rl" else {"best_of_n": 1})
            export_policy(policy.cpu().eval(), target, tdata.texts, deploy=deploy)
        except ModelError as exc:
            raise ModelError(f"export to {target} failed: {exc}") from None
        summary["export"] = str(target)
        say(f"exported {target}")
    (out / "train.json").write_text(json.dumps(_jsonable(summary), indent=2))


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_jsonable(v) for v in x]
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, np.generic):
        return x.item()
    return x

