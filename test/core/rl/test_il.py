"""Stage 1: imitation learning overfits a tiny dataset of real bags; a run resumes from its checkpoint; stage 2's
critic-only warmup leaves the IL policy as it was."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from corft_ros.core.dataset import synthetic
from corft_ros.core.policy.checkpoint import load_checkpoint
from corft_ros.core.rl.augment import random_shift
from corft_ros.core.rl.trainer import config_from_params, train
from corft_ros.core.rl.training_data import load_training_data
from corft_ros.core.robot import load_robot_config

ROBOT = load_robot_config()
TINY = {"d_model": 32, "heads": 2, "ff_dim": 64, "encoder_layers": 1, "decoder_layers": 1, "cnn_channels": [8, 16],
        "chunk_size": 4}


@pytest.fixture(scope="module")
def episodes(tmp_path_factory):
    root = tmp_path_factory.mktemp("il")
    synthetic.write_dataset(root / "eps", ROBOT, 2, image_hw=(24, 32), duration_s=1.2)
    return root


def _cfg(root, out, **extra):
    params = {
        "output": str(out), "export": False, "progress": False, "batch_size": 16, "log_every": 10,
        "checkpoint_every": 1000, "seed": 0,
        "dataset": {"cache_dir": str(root / "cache"), "image_size": [32, 32]},
        "policy": TINY, "il": {"lr": 2e-3, "shift_pad": 0, "loss": "l1"},
    }
    params.update(extra)
    return config_from_params(params)


def test_random_shift_moves_whole_images():
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).reshape(2, 3, 8, 8)
    y = random_shift(x, 2, torch.Generator().manual_seed(0))
    assert y.shape == x.shape
    assert not torch.equal(x, y)
    assert torch.equal(random_shift(x, 0), x)
    # a shift never invents values: every output pixel is some input pixel of the same image and channel
    for i in range(2):
        for c in range(3):
            assert set(y[i, c].flatten().tolist()) <= set(x[i, c].flatten().tolist())


def test_il_overfits_a_tiny_dataset(episodes, tmp_path):
    torch.set_num_threads(1)
    cfg = _cfg(episodes, tmp_path / "run", stage="il", il_steps=250)
    summary = train(episodes / "eps", cfg, ROBOT, log=lambda m: None)
    assert summary["stages"]["il"]["steps"] == 250

    policy, _ = load_checkpoint(tmp_path / "run" / "checkpoints" / "final.pt")
    tdata = load_training_data(cfg, episodes / "eps", ROBOT, policy.config.chunk_size, log=lambda m: None)
    rows = tdata.data.rows_of("success")
    batch = tdata.data.batch(rows)
    with torch.no_grad():
        pred = policy(batch["images"].float() / 255, batch["state"], batch["text"])
    valid = batch["valid"].unsqueeze(-1).float()
    err = ((pred - batch["action"]).abs() * valid).sum() / (valid.sum() * pred.shape[-1])
    # the trivial predictor (the mean action) for comparison
    mean = torch.from_numpy(tdata.data.action.mean(0))
    base = ((mean - batch["action"]).abs() * valid).sum() / (valid.sum() * pred.shape[-1])
    assert err < 0.15 * base, (float(err), float(base))
    assert summary["stages"]["il"]["final"]["il/loss"] < 0.2


def test_il_resumes_from_its_last_checkpoint(episodes, tmp_path):
    torch.set_num_threads(1)
    out = tmp_path / "run"
    train(episodes / "eps", _cfg(episodes, out, stage="il", il_steps=10), ROBOT, log=lambda m: None)
    first = torch.load(out / "checkpoints" / "latest.pt", weights_only=True)
    assert first["extra"]["step"] == 10
    lines: list[str] = []
    summary = train(episodes / "eps", _cfg(episodes, out, stage="il", il_steps=15), ROBOT, log=lines.append)
    assert any("resuming" in line and "step 10" in line for line in lines)
    assert summary["stages"]["il"]["steps"] == 15
    latest = torch.load(out / "checkpoints" / "latest.pt", weights_only=True)
    assert latest["extra"]["step"] == 15
    changed = [not torch.equal(latest["state_dict"][k], first["state_dict"][k]) for k in first["state_dict"]]
    assert any(changed)
    # the critic is not trained in stage 1
    critic = [k for k in first["state_dict"] if k.startswith("critics.")]
    assert critic and all(torch.equal(latest["state_dict"][k], first["state_dict"][k]) for k in critic)
    assert np.isfinite(summary["stages"]["il"]["final"]["il/loss"])


def test_a_resumed_stage_draws_fresh_batches_instead_of_replaying_the_first_ones(episodes, tmp_path):
    """An IL run continued in segments (the experiment trains until its screen stops improving) must not see the
    same batch order in every segment: the stream is seeded by the step the stage resumes at."""
    from corft_ros.core.policy.model import ChunkPolicy
    from corft_ros.core.rl.distributed import Runtime
    from corft_ros.core.rl.trainer import make_learner
    from corft_ros.core.rl.training_data import policy_config

    cfg = _cfg(episodes, tmp_path / "run", stage="il", batch_size=4)
    policy = ChunkPolicy(policy_config(cfg, ROBOT))
    tdata = load_training_data(cfg, episodes / "eps", ROBOT, policy.config.chunk_size, log=lambda m: None)
    rt = Runtime(rank=0, world=1, device=torch.device("cpu"), distributed=False)

    def first_actions(start: int) -> torch.Tensor:
        _, batches = make_learner("il", policy, tdata, cfg, rt, lambda m: None, start)
        return torch.cat([next(batches)["action"] for _ in range(3)])

    assert torch.equal(first_actions(0), first_actions(0))  # deterministic for one start
    assert not torch.equal(first_actions(0), first_actions(2000))


def _actions(checkpoint, batch) -> torch.Tensor:
    policy, _ = load_checkpoint(checkpoint)
    with torch.no_grad():
        return policy(batch["images"].float() / 255, batch["state"], batch["text"])


def test_the_critic_only_warmup_of_co_rft_leaves_the_il_policy_unchanged(episodes, tmp_path):
    """Stage 2 starts with critic-only steps on features of the frozen backbone, so the policy that comes out of the
    warmup acts exactly like the IL policy; actor updates move the action expert only, never the backbone.
    Measured in the sim: a backbone trained by the critic at lr 3e-5 took the experiment's IL policy from 5/20 to
    0/20 in 500 critic-only steps, which is why stage 2 trains on cached features of the frozen backbone."""
    torch.set_num_threads(1)
    train(episodes / "eps", _cfg(episodes, tmp_path / "il", stage="il", il_steps=20), ROBOT, log=lambda m: None)
    il = tmp_path / "il" / "checkpoints" / "final.pt"
    policy, _ = load_checkpoint(il)
    tdata = load_training_data(_cfg(episodes, tmp_path / "il"), episodes / "eps", ROBOT, policy.config.chunk_size,
                               log=lambda m: None)
    batch = tdata.data.batch(tdata.data.rows_of("all")[:16])
    before = _actions(il, batch)
    after = {}
    for name, corft in (("warmup only", {"actor_warmup_steps": 100, "extraction": "rank_distill"}),
                        ("actor trained", {"actor_warmup_steps": 0, "extraction": "rank_distill"})):
        cfg = _cfg(episodes, tmp_path / name, stage="rl", rl_steps=20, init_checkpoint=str(il), corft=corft)
        train(episodes / "eps", cfg, ROBOT, log=lambda m: None)
        after[name] = _actions(tmp_path / name / "checkpoints" / "final.pt", batch)
    assert torch.equal(after["warmup only"], before)
    assert not torch.allclose(after["actor trained"], before)
    trained = torch.load(tmp_path / "actor trained" / "checkpoints" / "final.pt", weights_only=True)["state_dict"]
    start = torch.load(il, weights_only=True)["state_dict"]
    backbone = [k for k in start if k.split(".")[0] in ("image_encoders", "state_mlp", "text_proj", "encoder",
                                                        "encoder_norm", "token_pos")]
    assert backbone and all(torch.equal(trained[k], start[k]) for k in backbone)


def test_checkpoints_carry_the_weight_average_and_a_resume_trains_on_from_the_raw_weights(episodes, tmp_path):
    from corft_ros.core.rl.distributed import Runtime
    from corft_ros.core.rl.il import il_parameters
    from corft_ros.core.rl.trainer import make_learner

    torch.set_num_threads(1)
    il = {"lr": 2e-3, "shift_pad": 0, "loss": "l1", "ema_decay": 0.9, "lr_half_life": 10, "lr_floor": 0.25}
    cfg = _cfg(episodes, tmp_path / "run", stage="il", il_steps=30, checkpoint_every=30, il=il)
    train(episodes / "eps", cfg, ROBOT, log=lambda m: None)
    state = torch.load(tmp_path / "run" / "checkpoints" / "latest.pt", weights_only=True)
    ema = state["extra"]["learner"]["ema"]
    policy, _ = load_checkpoint(tmp_path / "run" / "checkpoints" / "latest.pt")
    params = list(il_parameters(policy))
    assert all(torch.equal(p.detach(), s) for p, s in zip(params, ema["shadow"], strict=True))  # saved: the average
    assert any(not torch.equal(s, r) for s, r in zip(ema["shadow"], ema["raw"], strict=True))
    rt = Runtime(rank=0, world=1, device=torch.device("cpu"), distributed=False)
    tdata = load_training_data(cfg, episodes / "eps", ROBOT, policy.config.chunk_size, log=lambda m: None)
    learner, _ = make_learner("il", policy, tdata, cfg, rt, lambda m: None, 30)
    learner.load_state_dict(state["extra"]["learner"])
    assert all(torch.equal(p.detach(), r) for p, r in zip(params, ema["raw"], strict=True))  # resumed: the raw ones
    # the learning rate halved every 10 steps down to its floor: 2e-3 * max(0.25, 0.5 ** 3) at step 30
    learner.optim.step(sum(p.sum() * 0 for p in params), 30)
    assert learner.optim.opt.param_groups[0]["lr"] == pytest.approx(2e-3 * 0.25)
