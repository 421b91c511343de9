"""The training job: bags → dataset → stage 1 (IL) → stage 2 (CO-RFT) → models/<name>/.

Runs as one process or under `torchrun --nproc_per_node N` (DistributedDataParallel: gloo on CPU, NCCL
on GPU; every rank reads the same cached dataset, a DistributedSampler shards the chunk starts).
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
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any

import numpy as np

from corft_ros.core.rl.corft import CORFTConfig, QDivergenceError
from corft_ros.core.rl.dataset import DatasetConfig, LoadReport, dataset_summary, load_episodes
from corft_ros.core.rl.il import ILConfig
from corft_ros.core.rl.rewards import RewardConfig
from corft_ros.core.robot import ConfigError, RobotConfig

STAGES = ("il", "rl", "all")


@dataclass
class TrainConfig:
    stage: str = "all"  # il | rl | all
    name: str = "corft"  # the exported model: <models_dir>/<name>/
    output: str = "runs/corft"  # checkpoints/, tensorboard/, train.json
    models_dir: str = "models"
    il_steps: int = 3000
    rl_steps: int = 3000
    batch_size: int = 32
    seed: int = 0
    log_every: int = 20
    checkpoint_every: int = 500
    resume: bool = True
    init_checkpoint: str = ""  # start from this policy checkpoint (IL fine-tuning, or RL from an IL run)
    export: bool = True
    device: str = "auto"  # auto | cpu | cuda
    num_workers: int = 0
    progress: bool = True
    strict: bool = False
    threads: int = 0  # torch intra-op threads per process (0: torch's default)
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    rewards: RewardConfig = field(default_factory=RewardConfig)
    il: ILConfig = field(default_factory=ILConfig)
    corft: CORFTConfig = field(default_factory=CORFTConfig)
    policy: dict = field(default_factory=dict)  # PolicyConfig overrides (chunk_size, d_model, ...)

    def validate(self) -> None:
        if self.stage not in STAGES:
            raise ConfigError(f"stage must be one of {', '.join(STAGES)}, got {self.stage!r}")
        for name in ("il_steps", "rl_steps", "batch_size", "log_every", "checkpoint_every"):
            if int(getattr(self, name)) < (0 if name.endswith("steps") else 1):
                raise ConfigError(f"{name} must be a positive integer, got {getattr(self, name)!r}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ConfigError(f"device must be auto, cpu or cuda, got {self.device!r}")
        self.il.validate()
        self.corft.validate()
        self.rewards.gamma = self.corft.gamma


def config_from_params(params: dict[str, Any], base: TrainConfig | None = None) -> TrainConfig:
    """Apply parameters to a TrainConfig: flat dotted names ('corft.gamma': 0.98, 'il_steps': 100) or nested
    mappings ({'corft': {'gamma': 0.98}}). The same names are the trainer node's ROS parameters and
    config/train.yaml's keys; an unknown name is a ConfigError."""
    cfg = base or TrainConfig()
    for key, value in _flatten(params).items():
        target: Any = cfg
        parts = key.split(".")
        for part in parts[:-1]:
            if not (is_dataclass(target) and hasattr(target, part)):
                raise ConfigError(f"unknown training parameter '{key}'")
            target = getattr(target, part)
        leaf = parts[-1]
        if isinstance(target, dict):  # free-form overrides (policy.*)
            target[leaf] = value
            continue
        if not is_dataclass(target) or leaf not in {f.name for f in fields(target)}:
            raise ConfigError(f"unknown training parameter '{key}'")
        setattr(target, leaf, _coerce(key, getattr(target, leaf), value))
    cfg.dataset.image_size = tuple(int(v) for v in cfg.dataset.image_size)  # type: ignore[assignment]
    return cfg


def _flatten(params: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


def _coerce(key: str, current: Any, value: Any) -> Any:
    try:
        if isinstance(current, bool):
            if isinstance(value, str):
                return value.strip().lower() in ("1", "true", "yes", "on")
            return bool(value)
        if isinstance(current, int) and not isinstance(value, bool):
            return int(value)
        if isinstance(current, float):
            return float(value)
        if isinstance(current, tuple | list):
            if isinstance(value, str):  # one item, or a comma-separated list (launch arguments)
                return [v.strip() for v in value.split(",") if v.strip()]
            return list(value)
    except (TypeError, ValueError):
        raise ConfigError(f"training parameter '{key}': cannot use {value!r}") from None
    if current is None and isinstance(value, str) and value == "":
        return None
    return value


# --------------------------------------------------------------------------------------------- setup


@dataclass
class Runtime:
    rank: int
    world: int
    device: Any
    distributed: bool

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup_runtime(cfg: TrainConfig) -> Runtime:
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

    def __init__(self, data: Any, rows: np.ndarray, with_next: bool, cfg: TrainConfig, rt: Runtime) -> None:
        from torch.utils.data import BatchSampler, DataLoader, DistributedSampler

        from corft_ros.core.rl.batches import ChunkBatches

        if len(rows) == 0:
            raise ConfigError("no training samples (no episodes selected for this stage)")
        ds = ChunkBatches(data, rows, with_next)
        self.sampler = DistributedSampler(ds, num_replicas=rt.world, rank=rt.rank, shuffle=True, seed=cfg.seed)
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


def _any_rank(rt: Runtime, flag: bool) -> bool:
    if not rt.distributed:
        return flag
    import torch
    import torch.distributed as dist

    t = torch.tensor([1.0 if flag else 0.0], device=rt.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def _save(path: Path, policy: Any, texts: dict, extra: dict, update_latest: bool = True) -> None:
    from corft_ros.core.policy.export import save_checkpoint

    tmp = path.with_name(path.name + ".tmp")
    save_checkpoint(policy, tmp, texts, extra=extra)
    tmp.replace(path)
    if not update_latest:
        return
    latest = path.parent / "latest.pt"
    shutil.copyfile(path, latest.with_name("latest.pt.tmp"))
    latest.with_name("latest.pt.tmp").replace(latest)


def _load_raw(path: Path) -> dict:
    import torch

    from corft_ros.core.policy.export import ModelError

    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ModelError(f"{path}: unreadable checkpoint ({str(exc).splitlines()[0][:200]})") from None
    if not isinstance(data, dict) or "state_dict" not in data:
        raise ModelError(f"{path}: not a corft_ros checkpoint")
    return data


# --------------------------------------------------------------------------------------------- stages


ProgressFn = Callable[[str, int, int, dict], None]


def _stage_steps(cfg: TrainConfig, stage: str, cap: int | None) -> int:
    steps = cfg.il_steps if stage == "il" else cfg.rl_steps
    return min(steps, cap) if cap is not None else steps


def run_il(policy, tdata: TrainingData, cfg: TrainConfig, rt: Runtime, steps: int, start: int, resume_state: dict,
           ckpt_dir: Path | None, scalars: ScalarLog, on_progress: ProgressFn | None,
           should_stop: Callable[[], bool] | None) -> dict:
    import torch

    from corft_ros.core.rl.il import ILObjective, il_parameters

    for p in policy.critic_parameters():
        p.requires_grad_(False)
    objective = ILObjective(policy, cfg.il).train()
    model = objective
    if rt.distributed:
        from torch.nn.parallel import DistributedDataParallel as DDP

        model = DDP(objective, device_ids=[rt.device.index] if rt.device.type == "cuda" else None)
    params = il_parameters(policy)
    opt = torch.optim.AdamW(params, lr=cfg.il.lr, weight_decay=cfg.il.weight_decay)
    if resume_state.get("optim"):
        opt.load_state_dict(resume_state["optim"][0])
    batches = Batches(tdata.data, tdata.data.rows_of(cfg.il.episodes), False, cfg, rt)
    bar = _progress(steps, start, "IL", cfg.progress and rt.main)
    t0, done = time.perf_counter(), 0
    step = start
    try:
        while step < steps:
            batch = next(batches)
            loss, logs = model(batch)
            if _any_rank(rt, not torch.isfinite(loss).item()):
                raise QDivergenceError(f"IL loss became NaN/Inf at step {step} (lower il.lr)")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            logs["il/grad_norm"] = torch.nn.utils.clip_grad_norm_(params, cfg.il.grad_clip)
            opt.step()
            step += 1
            done += 1
            scalars.add(logs)
            if step % cfg.log_every == 0 or step == steps:
                means = scalars.flush(step)
                bar.set_postfix(loss=f"{means.get('il/loss', float('nan')):.4f}")
                if on_progress:
                    on_progress("il", step, steps, means)
            bar.update(1)
            if ckpt_dir is not None and (step % cfg.checkpoint_every == 0 or step == steps):
                _save(ckpt_dir / f"il_{step:07d}.pt", policy, tdata.texts,
                      {"stage": "il", "step": step, "steps": steps, "optim": [opt.state_dict()]})
            if should_stop is not None and _any_rank(rt, should_stop()):
                break
    finally:
        bar.close()
    elapsed = time.perf_counter() - t0
    for p in policy.critic_parameters():
        p.requires_grad_(True)
    return {"steps": step, "steps_per_s": done / elapsed if elapsed > 0 and done else None,
            "final": {k: v for k, v in scalars.last.items() if k.startswith("il/")}}


def run_rl(policy, tdata: TrainingData, cfg: TrainConfig, rt: Runtime, steps: int, start: int, resume_state: dict,
           ckpt_dir: Path | None, scalars: ScalarLog, on_progress: ProgressFn | None,
           should_stop: Callable[[], bool] | None, step_offset: int = 0) -> dict:
    """Stage 2; TensorBoard steps continue after stage 1's (`step_offset`)."""
    import torch

    from corft_ros.core.rl.corft import CORFTObjective, make_target, polyak_update

    c = cfg.corft
    freeze = c.freeze_backbone or c.backbone_lr == 0
    for p in policy.backbone_parameters():
        p.requires_grad_(not freeze)
    target = make_target(policy)
    if resume_state.get("target"):
        target.load_state_dict(resume_state["target"])
    objective = CORFTObjective(policy, target, c, tdata.data.value_scale()).train()
    model = objective
    if rt.distributed:
        from torch.nn.parallel import DistributedDataParallel as DDP

        model = DDP(objective, device_ids=[rt.device.index] if rt.device.type == "cuda" else None,
                    find_unused_parameters=True)
    critic_params = list(policy.critic_parameters())
    backbone = [] if freeze else list(policy.backbone_parameters())
    actor_params = list(policy.actor_parameters())
    groups = [{"params": critic_params, "lr": c.critic_lr}]
    if backbone:
        groups.append({"params": backbone, "lr": c.backbone_lr})
    critic_opt = torch.optim.AdamW(groups, weight_decay=c.weight_decay)
    actor_opt = torch.optim.AdamW(actor_params, lr=c.actor_lr, weight_decay=c.weight_decay)
    if resume_state.get("optim"):
        critic_opt.load_state_dict(resume_state["optim"][0])
        actor_opt.load_state_dict(resume_state["optim"][1])
    batches = Batches(tdata.data, tdata.data.rows_of(c.episodes), True, cfg, rt)
    bar = _progress(steps, start, "CO-RFT", cfg.progress and rt.main)
    t0, done = time.perf_counter(), 0
    step = start
    try:
        while step < steps:
            batch = next(batches)
            loss, logs = model(batch, "critic")
            message = objective.divergence(loss, logs["rl/q_abs"])
            if _any_rank(rt, message is not None):
                raise QDivergenceError(f"step {step}: " + (message or "Q diverged on another rank"))
            critic_opt.zero_grad(set_to_none=True)
            loss.backward()
            logs["rl/critic_grad_norm"] = torch.nn.utils.clip_grad_norm_(critic_params + backbone, c.grad_clip)
            critic_opt.step()
            if step >= c.actor_warmup_steps and step % c.policy_delay == 0:
                a_loss, a_logs = model(batch, "actor")
                message = objective.divergence(a_loss, a_logs["rl/q_policy"].abs())
                if _any_rank(rt, message is not None):
                    raise QDivergenceError(f"step {step}: " + (message or "Q diverged on another rank"))
                actor_opt.zero_grad(set_to_none=True)
                a_loss.backward()
                torch.nn.utils.clip_grad_norm_(actor_params, c.grad_clip)
                actor_opt.step()
                logs.update(a_logs)
            polyak_update(target, policy, c.tau)
            step += 1
            done += 1
            scalars.add(logs)
            if step % cfg.log_every == 0 or step == steps:
                means = scalars.flush(step_offset + step)
                bar.set_postfix(q=f"{means.get('rl/q_data', float('nan')):.3f}",
                                td=f"{means.get('rl/td_error', float('nan')):.3f}")
                if on_progress:
                    on_progress("rl", step, steps, means)
            bar.update(1)
            if ckpt_dir is not None and (step % cfg.checkpoint_every == 0 or step == steps):
                _save(ckpt_dir / f"rl_{step:07d}.pt", policy, tdata.texts,
                      {"stage": "rl", "step": step, "steps": steps, "target": target.state_dict(),
                       "optim": [critic_opt.state_dict(), actor_opt.state_dict()]})
            if should_stop is not None and _any_rank(rt, should_stop()):
                break
    finally:
        bar.close()
    for p in policy.backbone_parameters():
        p.requires_grad_(True)
    elapsed = time.perf_counter() - t0
    return {"steps": step, "steps_per_s": done / elapsed if elapsed > 0 and done else None,
            "final": {k: v for k, v in scalars.last.items() if k.startswith("rl/")}}


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
    from corft_ros.core.policy.export import ModelError, export_policy
    from corft_ros.core.policy.model import ChunkPolicy

    cfg.validate()
    rt = setup_runtime(cfg)
    say = log if rt.main else (lambda _m: None)
    out = Path(cfg.output)
    ckpt_dir = out / "checkpoints" if rt.main else None
    if rt.main:
        ckpt_dir.mkdir(parents=True, exist_ok=True)

    # where to start: a resumable run, an explicit checkpoint, or scratch
    resume: dict = {}
    latest = out / "checkpoints" / "latest.pt"
    if cfg.resume and latest.is_file():
        resume = _load_raw(latest)
        extra = resume.get("extra") or {}
        say(f"resuming from {latest} (stage {extra.get('stage')}, step {extra.get('step')})")
    init = resume or (_load_raw(Path(cfg.init_checkpoint)) if cfg.init_checkpoint else {})
    if cfg.stage == "rl" and not init:
        raise ConfigError("stage 'rl' starts from an IL policy: pass init_checkpoint (--init) or resume a run "
                          "whose IL stage finished")
    ckpt_cfg = PolicyConfig.from_dict(init["config"], source="checkpoint") if init else None
    pcfg = policy_config(cfg, robot, ckpt_cfg)

    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed + rt.rank)
    tdata = load_training_data(cfg, bags, robot, pcfg.chunk_size, rt, say)
    for line in tdata.report.lines():
        say(line)
    summary: dict[str, Any] = {"dataset": dataset_summary(tdata.report), "world_size": rt.world,
                               "device": str(rt.device), "policy": pcfg.to_dict(), "stages": {}}

    policy = ChunkPolicy(pcfg)
    if init:
        policy.load_state_dict(init["state_dict"])
    else:
        policy.set_normalization(*[torch.as_tensor(x) for x in tdata.data.normalization()])
    policy.to(rt.device)
    torch.manual_seed(cfg.seed + 1000 * rt.rank + 1)

    extra = (resume.get("extra") or {}) if resume else {}
    r_stage, r_step = extra.get("stage"), int(extra.get("step", 0))
    scalars = ScalarLog(out / "tensorboard" if rt.main else None)
    try:
        stages = ["il", "rl"] if cfg.stage == "all" else [cfg.stage]
        for stage in stages:
            steps = _stage_steps(cfg, stage, steps_cap)
            start, state = 0, {}
            if r_stage == stage:
                start, state = min(r_step, steps), extra
            elif r_stage == "rl" and stage == "il":
                say("IL stage already finished in the resumed run")
                continue
            if start >= steps:
                say(f"{stage.upper()} stage already at step {start}/{steps}")
                summary["stages"][stage] = {"steps": start, "resumed": True}
                continue
            say(f"stage {stage.upper()}: {steps - start} steps on {rt.world} process(es), device {rt.device}")
            if stage == "il":
                summary["stages"][stage] = run_il(policy, tdata, cfg, rt, steps, start, state, ckpt_dir, scalars,
                                                  on_progress, should_stop)
            else:
                offset = _stage_steps(cfg, "il", steps_cap) if cfg.stage == "all" else 0
                summary["stages"][stage] = run_rl(policy, tdata, cfg, rt, steps, start, state, ckpt_dir, scalars,
                                                  on_progress, should_stop, offset)
            barrier(rt)
    finally:
        scalars.close()

    if rt.main:
        final = ckpt_dir / "final.pt"
        _save(final, policy, tdata.texts, {"stage": stages[-1], "final": True}, update_latest=False)
        summary["checkpoint"] = str(final)
        if cfg.export:
            target = Path(cfg.models_dir) / cfg.name
            try:
                export_policy(policy.cpu().eval(), target, tdata.texts)
            except ModelError as exc:
                raise ModelError(f"export to {target} failed: {exc}") from None
            summary["export"] = str(target)
            say(f"exported {target}")
        (out / "train.json").write_text(json.dumps(_jsonable(summary), indent=2))
    barrier(rt)
    return (summary, policy) if return_policy else summary


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

