"""Critic diagnostics (issue 27, Build 3): the statistics against scipy, the stratified hold-out, a critic that
never trains on held-out episodes, and diagnostics that tell a critic which learned success from one which did not."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import stats

from corft_ros.core.dataset.episode import Episode
from corft_ros.core.policy.config import PolicyConfig
from corft_ros.core.policy.model import ChunkPolicy
from corft_ros.core.rl.batches import ChunkData
from corft_ros.core.rl.corft import CORFTConfig
from corft_ros.core.rl.diagnostics import auc, critic_diagnostics, lines, scalars, spearman, split_holdout
from corft_ros.core.rl.features import FeatureBank
from corft_ros.core.rl.learners import CriticLearner
from corft_ros.core.rl.rewards import RewardConfig

H, RATE = 4, 10.0
TEXT = {"go": np.array([0.1, -0.2, 0.3, 0.4], np.float32)}


def test_spearman_and_auc_match_scipy():
    rng = np.random.default_rng(0)
    x = rng.normal(size=50)
    y = x + rng.normal(size=50)
    x[:5] = x[5]  # ties
    assert spearman(x, y) == pytest.approx(stats.spearmanr(x, y).statistic, abs=1e-12)
    pos, neg = rng.normal(1, 1, 30).round(1), rng.normal(0, 1, 40).round(1)  # rounding makes ties
    u = stats.mannwhitneyu(pos, neg).statistic
    assert auc(pos, neg) == pytest.approx(u / (len(pos) * len(neg)), abs=1e-12)
    assert auc([1.0, 2.0], [0.0]) == 1.0 and auc([0.0], [1.0, 2.0]) == 0.0 and auc([1.0], [1.0]) == 0.5
    assert auc([], [1.0]) is None and spearman(np.ones(5), y[:5]) is None


def test_holdout_is_stratified_deterministic_and_leaves_each_outcome_in_training():
    success = np.array([True] * 20 + [False] * 7)
    held = split_holdout(success, 0.15, seed=3)
    assert np.array_equal(held, split_holdout(success, 0.15, seed=3))
    assert success[held].sum() == 3 and (~success[held]).sum() == 1
    assert not np.array_equal(held, split_holdout(success, 0.15, seed=4))
    assert len(split_holdout(success, 0.0, seed=3)) == 0
    lone = split_holdout(np.array([True, True, False]), 0.5, seed=0)  # one failure: it stays in training
    assert len(lone) == 1 and success[lone].all()


def _policy(seed: int = 0) -> ChunkPolicy:
    torch.manual_seed(seed)
    cfg = PolicyConfig(joint_names=["a", "b"], camera_names=["front"], image_height=16, image_width=16,
                       chunk_size=H, d_model=16, heads=2, ff_dim=32, encoder_layers=1, decoder_layers=1,
                       cnn_channels=[8], text_dim=4, action_dt=1.0 / RATE)
    return ChunkPolicy(cfg)


def _episode(i: int, success: bool, length: int) -> Episode:
    """A success is visibly one from its first frame: its images are bright, a failure's dark."""
    rng = np.random.default_rng(i)
    level = 200 if success else 40
    images = np.clip(rng.normal(level, 10, (length, 16, 16, 3)), 0, 255).astype(np.uint8)
    return Episode(bag=Path(f"memory-{i}"), key=str(i), instruction="go", success=success,
                   images={"front": images}, state=rng.normal(size=(length, 2)).astype(np.float32),
                   action=rng.normal(size=(length, 2)).astype(np.float32) * 0.1,
                   tick_ns=np.arange(length, dtype=np.int64), stats={})


def _data(policy: ChunkPolicy, flip: bool = False) -> tuple[ChunkData, FeatureBank]:
    """16 episodes, half successful; with `flip` every label is the opposite of what the images show."""
    episodes = [_episode(i, i % 2 == 0, 30 + 20 * (i % 2) + i) for i in range(16)]
    for e in episodes:
        e.success ^= flip
    data = ChunkData(episodes, H, RewardConfig(gamma=0.9, step_cost=0.01), ["front"], TEXT)
    policy.set_normalization(*[torch.as_tensor(x) for x in data.normalization()])
    return data, FeatureBank(data, policy)


def test_the_critic_never_trains_on_held_out_episodes():
    torch.set_num_threads(1)
    policy = _policy().train()
    data, bank = _data(policy)
    data.hold_out(np.arange(len(data.episodes)))  # everything held out: no TD target, no conservative term
    learner = CriticLearner(policy, CORFTConfig(), data.value_scale())
    before = [p.detach().clone() for p in policy.critic_parameters()]
    learner.update(bank.batch(np.arange(len(data))), 0)
    assert all(torch.equal(a, b) for a, b in zip(before, policy.critic_parameters(), strict=True))
    data.hold_out(np.array([0]))
    learner.update(bank.batch(np.arange(len(data))), 1)
    assert any(not torch.equal(a, b) for a, b in zip(before, policy.critic_parameters(), strict=True))


def _trained_critic_diagnostics(flip: bool) -> dict:
    """A critic trained on the true labels (or on flipped ones), diagnosed on held-out episodes with the truth."""
    torch.set_num_threads(1)
    policy = _policy().train()
    data, bank = _data(policy, flip)
    held = split_holdout(data.success_of_episode, 0.25, seed=0)
    data.hold_out(held)
    learner = CriticLearner(policy, CORFTConfig(cql_alpha=0.0), data.value_scale())
    rng = np.random.default_rng(0)
    for step in range(300):
        learner.update(bank.batch(rng.choice(len(data), 64)), step)
        learner.polyak()
    truth, truth_bank = _data(policy) if flip else (data, bank)
    truth_bank.features = bank.features  # the backbone is frozen: the same features
    return critic_diagnostics(policy, truth_bank, held, RATE), truth.success_of_episode[held]


def test_diagnostics_see_whether_the_critic_learned_success():
    right, won = _trained_critic_diagnostics(flip=False)
    wrong, _ = _trained_critic_diagnostics(flip=True)
    assert 0 < won.sum() < len(won)
    assert right["episodes"] == len(won) and right["successes"] == int(won.sum())
    one_s = right["auc"]["1s"]
    assert one_s["successes"] + one_s["failures"] == len(won)  # every held-out episode runs past 1 s
    assert one_s["auc"] >= 0.99 and one_s["v_success"] > one_s["v_failure"]
    assert wrong["auc"]["1s"]["auc"] <= 0.01 and wrong["auc"]["3s"]["auc"] <= 0.01
    assert right["calibration"]["all"]["spearman"] > 0.5 > wrong["calibration"]["all"]["spearman"]
    # at 5 s the successes (3.0-4.4 s long) have ended: no AUC, said so
    assert right["auc"]["5s"]["successes"] == 0 and right["auc"]["5s"]["auc"] is None
    assert {"diag/auc_1s", "diag/spearman_success", "diag/bias_failure"} <= set(scalars(right))
    text = "\n".join(lines(right))
    assert "AUC of V(s_t)" in text and "held-out" in text
