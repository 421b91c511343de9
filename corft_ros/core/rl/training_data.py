"""The training job's inputs: every episode loaded (rank 0 builds the dataset cache first, the other ranks then read
it), the instructions' sentence embeddings remembered in the dataset cache, the chunk table the stages sample from,
and the policy config the dataset follows (cameras and image size of the model, or of a checkpoint's model).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from corft_ros.core.dataset.load import LoadReport, load_episodes
from corft_ros.core.rl.config import TrainConfig
from corft_ros.core.rl.distributed import Runtime, barrier
from corft_ros.core.robot import ConfigError, RobotConfig


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
