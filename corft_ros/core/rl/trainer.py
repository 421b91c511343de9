"""The training job: bags → dataset → stage 1 (IL) → stage 2 (CO-RFT) or the control arm (BC) → models/<name>/.

Runs as one process or under `torchrun --nproc_per_node N` (gloo on CPU, NCCL on GPU; gradients averaged over the
ranks after each backward, as DistributedDataParallel does; every rank reads the same cached dataset and trains on
its shard of the chunk starts).
Rank 0 builds the cache first, writes TensorBoard scalars, checkpoints and the export; every rank can
resume from `<output>/checkpoints/latest.pt`. The job's inputs are training_data.py's, the stage loop is loop.py's.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from corft_ros.core.dataset.load import dataset_summary
from corft_ros.core.policy.checkpoint import read_checkpoint
from corft_ros.core.rl.config import STAGES, TrainConfig, config_from_params  # noqa: F401 (the job's API)
from corft_ros.core.rl.distributed import Runtime, barrier, grad_sync, setup_runtime
from corft_ros.core.rl.loop import Batches, ProgressFn, ScalarLog, run_stage, write_checkpoint
from corft_ros.core.rl.training_data import TrainingData, load_training_data, policy_config
from corft_ros.core.robot import ConfigError, RobotConfig


def _stage_steps(cfg: TrainConfig, stage: str, cap: int | None) -> int:
    steps = {"il": cfg.il_steps, "rl": cfg.rl_steps, "bc": cfg.bc_steps or cfg.rl_steps}[stage]
    return min(steps, cap) if cap is not None else steps


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
    from corft_ros.core.policy.export import export_policy
    from corft_ros.core.policy.model_files import ModelError

    final = ckpt_dir / "final.pt"
    write_checkpoint(final, policy, tdata.texts, {"stage": last_stage, "final": True}, update_latest=False)
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
