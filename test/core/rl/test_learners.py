"""The learners of stage 2, one defect of the 2026-11-30 experiment per test (issue 14), plus the flow-matching head
and the three extraction methods on a real ChunkPolicy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from corft_ros.core.dataset.episode import Episode
from corft_ros.core.policy.config import PolicyConfig
from corft_ros.core.policy.model import ChunkPolicy
from corft_ros.core.rl.batches import ChunkData
from corft_ros.core.rl.corft import CORFTConfig
from corft_ros.core.rl.features import FeatureBank
from corft_ros.core.rl.il import ILConfig
from corft_ros.core.rl.learners import (
    ActorLearner,
    CriticLearner,
    ExtractionConfig,
    ILLearner,
    bc_term,
    executed_prefix,
)
from corft_ros.core.rl.rewards import RewardConfig

CFG = RewardConfig(step_cost=0.01, gamma=0.9)
H = 4


def _policy(head: str = "regression", seed: int = 0) -> ChunkPolicy:
    torch.manual_seed(seed)
    cfg = PolicyConfig(joint_names=["a", "b"], camera_names=["front"], image_height=16, image_width=16,
                       chunk_size=H, d_model=16, heads=2, ff_dim=32, encoder_layers=1, decoder_layers=1,
                       cnn_channels=[8], text_dim=4, action_head=head, flow_steps=4)
    return ChunkPolicy(cfg).eval()


def _episode(length: int, success: bool, seed: int) -> Episode:
    rng = np.random.default_rng(seed)
    return Episode(bag=Path(f"memory-{seed}"), key=str(seed), instruction="go", success=success,
                   images={"front": rng.integers(0, 255, (length, 16, 16, 3), dtype=np.uint8)},
                   state=rng.normal(size=(length, 2)).astype(np.float32),
                   action=rng.normal(size=(length, 2)).astype(np.float32),
                   tick_ns=np.arange(length, dtype=np.int64), stats={})


def _data(policy) -> tuple[ChunkData, FeatureBank]:
    data = ChunkData([_episode(8, True, 1), _episode(8, False, 2)], H, CFG, ["front"],
                     {"go": np.array([0.1, -0.2, 0.3, 0.4], np.float32)})
    return data, FeatureBank(data, policy)


def test_bc_imitates_successful_episodes_only():
    """Defect 1: the actor's BC term imitated every episode the critic saw; with the benchmark's failed rollouts
    ~70% of BC samples imitated failures. Changing what a failed episode did must not change the BC term."""
    policy = _policy()
    data, bank = _data(policy)
    batch = bank.batch(np.arange(len(data)))
    target = policy.normalize_action(batch["action"])
    failed = ~batch["success"]
    assert failed.any() and (~failed).any()
    moved = target.clone()
    moved[failed] += 5.0
    with torch.no_grad():
        a = bc_term(policy, batch["features"], target, batch["valid"], batch["success"])
        b = bc_term(policy, batch["features"], moved, batch["valid"], batch["success"])
    assert float(a) == pytest.approx(float(b))
    only_failures = torch.zeros_like(batch["success"])
    assert float(bc_term(policy, batch["features"], target, batch["valid"], only_failures)) == 0.0


def test_the_bc_term_weighs_a_whole_chunk_like_the_q_term_weighs_a_sample():
    """Defect 2 (balance): BC was averaged over all h·d numbers while the Q term is one number per sample, which
    made the Q term ~h times stronger than TD3+BC intends. Now BC is summed over the chunk's steps."""
    policy = _policy()
    data, bank = _data(policy)
    batch = bank.batch(data.rows_of("success"))
    target = policy.normalize_action(batch["action"])
    with torch.no_grad():
        per_step = ((policy.act(batch["features"]) - target).pow(2).mean(-1) * batch["valid"]).sum() / len(target)
        bc = bc_term(policy, batch["features"], target, batch["valid"], batch["success"])
    assert float(bc) == pytest.approx(float(per_step), rel=1e-5)  # Σ over steps, mean over joints, per sample


def test_lambda_stays_bounded_when_returns_straddle_zero():
    """Defect 2 (λ): λ = α / mean|Q| blew up when Q ≈ 0 (returns of successes > 0, of failures < 0). Now the
    denominator has a floor."""
    policy = _policy()
    data, bank = _data(policy)
    with torch.no_grad():
        for head in policy.critics:
            head.q[-1].weight.zero_()
            head.q[-1].bias.fill_(1e-6)
    actor = ActorLearner(policy, CORFTConfig(td3_alpha=2.5), ExtractionConfig(method="td3bc", prefix=2, q_floor=0.1))
    _, logs = actor.loss(bank.batch(np.arange(len(data))))
    assert float(logs["rl/lambda"]) == pytest.approx(25.0)  # 2.5 / 0.1, not 2.5 / 1e-6


def test_target_smoothing_is_off_by_default_so_targets_are_unbiased():
    """Defect 5: TD3's smoothing noise (0.2, on all 70 numbers of a chunk) biased the targets low: Q(data) −0.068
    vs its Monte-Carlo return +0.071. By default the target is the target policy's own chunk."""
    assert CORFTConfig().policy_noise == 0.0
    policy = _policy()
    data, bank = _data(policy)
    critic = CriticLearner(policy, CORFTConfig(), data.value_scale())
    batch = bank.batch(np.arange(len(data)))
    torch.manual_seed(1)
    first = critic.td_target(batch)
    torch.manual_seed(2)
    torch.testing.assert_close(critic.td_target(batch), first)  # no noise: the same target every time


def test_chunks_are_ranked_by_the_prefix_that_executes():
    """Defect 6: training scored whole open-loop chunks while deployment re-plans at 10 Hz, so only the first
    policy period / dt actions of a chunk run. The ranking uses the value of that prefix."""
    assert executed_prefix(10.0, 0.05, 10) == 2
    assert executed_prefix(2.0, 0.05, 10) == 10 and executed_prefix(50.0, 0.05, 10) == 1
    policy = _policy()
    data, bank = _data(policy)
    feats = bank.batch(np.arange(1))["features"]
    chunks = torch.zeros(2, H, 2)
    q = torch.zeros(2, 2, H)  # [M, N, h]: chunk 0 is better over the executed prefix, chunk 1 over the whole chunk
    q[:, 0, 1], q[:, 1, 1] = 1.0, 0.0
    q[:, 0, -1], q[:, 1, -1] = 0.0, 1.0
    policy.critic = lambda _f, _c: q  # the ranking rule under test, on values set by hand
    actor = ActorLearner(policy, CORFTConfig(), ExtractionConfig(method="rank_distill", prefix=2, beta=0.0))
    values = actor.prefix_value(feats.expand(2, -1, -1), chunks)
    assert int(values.argmax()) == 0


@pytest.mark.parametrize("head", ["regression", "flow"])
def test_il_learns_with_either_head(head):
    torch.set_num_threads(1)
    policy = _policy(head).train()
    data = ChunkData([_episode(10, True, 5)], H, CFG, ["front"], {"go": np.zeros(4, np.float32)})
    learner = ILLearner(policy, ILConfig(lr=3e-3))
    batch = data.batch(np.arange(len(data)))
    batch["images"] = batch["images"].float() / 255
    first = float(learner.update(batch, 0)["il/loss"])
    for step in range(1, 150):
        last = float(learner.update(batch, step)["il/loss"])
    assert last < 0.5 * first, (head, first, last)


def test_the_flow_head_samples_different_chunks_and_the_regression_head_one():
    flow, regression = _policy("flow"), _policy("regression")
    feats = torch.randn(1, 3, 16)
    with torch.no_grad():
        samples = flow.sample(feats, 5)
        same = regression.sample(feats, 5)
    assert samples.shape == (1, 5, H, 2)
    assert float(samples.std(dim=1).mean()) > 1e-3
    assert float(same.std(dim=1).max()) == 0.0


@pytest.mark.parametrize("method", ["td3bc", "rank_distill", "awr"])
@pytest.mark.parametrize("head", ["regression", "flow"])
def test_every_extraction_trains_the_action_expert_only(method, head):
    torch.set_num_threads(1)
    policy = _policy(head).train()
    data, bank = _data(policy)
    actor = ActorLearner(policy, CORFTConfig(), ExtractionConfig(method=method, samples=4, prefix=2))
    critic_before = [p.detach().clone() for p in policy.critic_parameters()]
    actor_before = [p.detach().clone() for p in policy.actor_parameters()]
    logs = actor.update(bank.batch(np.arange(len(data))), 0)
    assert np.isfinite(float(logs["rl/actor_loss"]))
    assert all(torch.equal(a, b) for a, b in zip(critic_before, policy.critic_parameters(), strict=True))
    assert any(not torch.equal(a, b) for a, b in zip(actor_before, policy.actor_parameters(), strict=True))


def test_extraction_none_trains_the_critic_and_leaves_the_il_actor_bit_identical():
    """The measured default (docs/training.md §8): the action expert stays the IL policy; the critic acts only at
    deployment, choosing among sampled chunks."""
    from corft_ros.core.rl.learners import CORFTLearner

    torch.set_num_threads(1)
    assert CORFTConfig().extraction == "none"
    policy = _policy().train()
    data, bank = _data(policy)
    cfg = CORFTConfig(actor_warmup_steps=0, policy_delay=1)
    learner = CORFTLearner(policy, cfg, ExtractionConfig(method="none"), data.value_scale())
    critic_before = [p.detach().clone() for p in policy.critic_parameters()]
    actor_before = [p.detach().clone() for p in policy.actor_parameters()]
    for step in range(3):
        logs = learner.update(bank.batch(np.arange(len(data))), step)
    assert "rl/actor_loss" not in logs and np.isfinite(float(logs["rl/critic_loss"]))
    assert all(torch.equal(a, b) for a, b in zip(actor_before, policy.actor_parameters(), strict=True))
    assert any(not torch.equal(a, b) for a, b in zip(critic_before, policy.critic_parameters(), strict=True))
    assert learner.state_dict()["actor"] == {}


def test_rank_distill_ranks_the_deployments_proposals_around_the_regression_chunk():
    """Distilling the critic's winners among the candidates the deployment will propose (scored as they will
    execute): candidate 0 is the policy's chunk, the others its time-warped and smoothly offset copies."""
    from corft_ros.core.policy.proposals import time_warp

    torch.set_num_threads(1)
    torch.manual_seed(0)
    policy = _policy().train()
    data, bank = _data(policy)
    actor = ActorLearner(policy, CORFTConfig(), ExtractionConfig(method="rank_distill", samples=5, prefix=2,
                                                                 proposals="mixed", noise_std=0.3))
    chunks = torch.randn(3, H, 2)
    cands = actor.around(chunks)
    assert cands.shape == (3, 5, H, 2)
    torch.testing.assert_close(cands[:, 0], chunks)
    np.testing.assert_allclose(cands[1, 1].numpy(), time_warp(chunks[1].numpy(), 0.7), atol=1e-6)
    torch.testing.assert_close(cands[:, 2, 0], chunks[:, 0])  # smooth offsets start at the chunk's first action
    before = [p.detach().clone() for p in policy.actor_parameters()]
    logs = actor.update(bank.batch(np.arange(len(data))), 0)
    assert np.isfinite(float(logs["rl/distill_loss"]))
    assert any(not torch.equal(a, b) for a, b in zip(before, policy.actor_parameters(), strict=True))
    white = ActorLearner(policy, CORFTConfig(noisy_std=0.3), ExtractionConfig(method="rank_distill", samples=5))
    spread = white.around(chunks)
    torch.testing.assert_close(spread[:, 0], chunks)
    assert 0.2 < float((spread[:, 1:] - chunks.unsqueeze(1)).std()) < 0.4
