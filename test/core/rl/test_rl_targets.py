"""CO-RFT targets checked against values computed by hand on tiny episodes (episode ends inside a chunk,
truncated failures), the Cal-QL bound, and the TD target's next-state indexing on a real ChunkPolicy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from corft_ros.core.dataset.episode import Episode
from corft_ros.core.policy.config import PolicyConfig
from corft_ros.core.policy.model import ChunkPolicy
from corft_ros.core.rl.batches import ChunkData
from corft_ros.core.rl.chunks import build_chunk_table, episode_chunks
from corft_ros.core.rl.corft import CORFTConfig, QDivergenceError, calql_bound, td_targets
from corft_ros.core.rl.features import FeatureBank
from corft_ros.core.rl.learners import CORFTLearner, CriticLearner, ExtractionConfig
from corft_ros.core.rl.rewards import RewardConfig, episode_rewards, returns_to_go

T_, F_ = True, False
# γ = 0.5 keeps the hand arithmetic exact; step cost 0.1, success reward 1.
CFG = RewardConfig(success_reward=1.0, step_cost=0.1, gamma=0.5)


def test_rewards_and_returns_to_go_by_hand():
    r, d = episode_rewards(4, True, CFG)
    np.testing.assert_allclose(r, [-0.1, -0.1, -0.1, 0.9])
    assert d.tolist() == [F_, F_, F_, T_]
    # G3 = 0.9; G2 = -0.1 + 0.5*0.9 = 0.35; G1 = -0.1 + 0.5*0.35 = 0.075; G0 = -0.1 + 0.5*0.075 = -0.0625
    np.testing.assert_allclose(returns_to_go(r, 0.5), [-0.0625, 0.075, 0.35, 0.9])


def test_a_failed_episode_ends_in_a_terminal_failure_by_default():
    """Defect 3 of issue 14: failure_reward never entered a TD target (failures were truncated). Now the last step of
    a failed episode is terminal with the failure's value, and a prefix reaching it is trained on it."""
    cfg = RewardConfig(step_cost=0.1, gamma=0.5)
    assert cfg.failure_reward == pytest.approx(-RewardConfig().step_cost / (1 - RewardConfig().gamma))
    r, d = episode_rewards(3, False, RewardConfig(step_cost=0.1, failure_reward=-0.5, gamma=0.5))
    np.testing.assert_allclose(r, [-0.1, -0.1, -0.6])
    assert d.tolist() == [F_, F_, T_]
    c = episode_chunks(r, d, horizon=2, gamma=0.5)
    assert c["target_mask"][1, 1] and c["done"][1, 1]  # prefix t=1, j=1 ends on the failure: trained, no bootstrap
    np.testing.assert_allclose(c["reward"][1, 1], -0.1 + 0.5 * -0.6)
    y = td_targets(torch.tensor(c["reward"][1:2]), torch.tensor(c["done"][1:2]), torch.tensor([[5.0, 5.0]]), 0.5)
    assert float(y[0, 1]) == pytest.approx(-0.4)  # the failure's value, not a bootstrap from a made-up next state


def test_the_calql_bound_of_a_failed_episode_is_the_failures_value():
    """Defect 4 of issue 14: the Cal-QL lower bound near the end of a failure was its truncated return (≈ −0.01),
    which blocked the conservative push-down exactly at failure states. Now G_t includes the failure's value."""
    r, d = episode_rewards(50, False, RewardConfig())
    g = returns_to_go(r, 0.99)
    assert g[-1] == pytest.approx(-0.01 - 1.0)
    assert g[-10] < -0.9  # close to the failure the bound is the failure's value, far below a success's


def test_a_truncated_failure_is_kept_as_an_option():
    r, d = episode_rewards(3, False, RewardConfig(step_cost=0.1, failure_reward=-0.5, gamma=0.5,
                                                  failure_terminal=False))
    np.testing.assert_allclose(r, [-0.1, -0.1, -0.6])
    assert not d.any()


def test_faster_success_is_worth_more():
    fast = returns_to_go(episode_rewards(5, True, RewardConfig())[0], 0.99)[0]
    slow = returns_to_go(episode_rewards(9, True, RewardConfig())[0], 0.99)[0]
    assert fast > slow


def test_shaping_is_potential_based():
    state = np.array([[0.0], [1.0], [3.0]])  # goal = final state 3.0: Φ = -|q - 3| = [-3, -2, 0], Φ_after = 0
    cfg = RewardConfig(step_cost=0.0, success_reward=0.0, shaping_scale=1.0, gamma=0.5)
    r, _ = episode_rewards(3, True, cfg, state)
    np.testing.assert_allclose(r, [0.5 * -2 - -3, 0.5 * 0 - -2, 0.5 * 0 - 0])


def test_prefix_table_with_the_episode_ending_inside_the_chunk():
    r, d = episode_rewards(4, True, CFG)
    c = episode_chunks(r, d, horizon=3, gamma=0.5)
    assert c["action_index"].tolist() == [[0, 1, 2], [1, 2, 3], [2, 3, 3], [3, 3, 3]]
    assert c["valid"].tolist() == [[T_, T_, T_], [T_, T_, T_], [T_, T_, F_], [T_, F_, F_]]
    # R_{t,j} = Σ_{i<=j} γ^i r_{t+i}, nothing after the terminal step 3
    np.testing.assert_allclose(c["reward"], [
        [-0.1, -0.1 - 0.05, -0.15 - 0.025],       # t=0
        [-0.1, -0.15, -0.15 + 0.25 * 0.9],        # t=1: prefix j=2 reaches the terminal step
        [-0.1, -0.1 + 0.5 * 0.9, 0.35],           # t=2: j=2 is past the end: frozen
        [0.9, 0.9, 0.9],                          # t=3
    ], atol=1e-6)
    assert c["done"].tolist() == [[F_, F_, F_], [F_, F_, T_], [F_, T_, T_], [T_, T_, T_]]
    assert c["next_index"].tolist() == [[1, 2, 3], [2, 3, 3], [3, 3, 3], [3, 3, 3]]
    # every prefix is defined: it has a next state or has reached the (absorbing) terminal
    assert c["target_mask"].all()
    np.testing.assert_allclose(c["mc_return"], [-0.0625, 0.075, 0.35, 0.9], atol=1e-6)


def test_prefix_table_of_a_truncated_failure():
    r, d = episode_rewards(3, False, RewardConfig(success_reward=1.0, step_cost=0.1, gamma=0.5, failure_reward=0.0,
                                                  failure_terminal=False))
    c = episode_chunks(r, d, horizon=2, gamma=0.5)
    np.testing.assert_allclose(c["reward"], [[-0.1, -0.15], [-0.1, -0.15], [-0.1, -0.1]], atol=1e-6)
    assert not c["done"].any()
    # the recording stopped: a prefix ending on the last step has no next state and no terminal -> not trained
    assert c["target_mask"].tolist() == [[T_, T_], [T_, F_], [F_, F_]]
    assert c["valid"].tolist() == [[T_, T_], [T_, T_], [T_, F_]]  # steps 0..2 exist


def test_chunk_table_indices_are_global():
    r1, d1 = episode_rewards(4, True, CFG)
    r2, d2 = episode_rewards(3, False, CFG)
    table = build_chunk_table([r1, r2], [d1, d2], horizon=3, gamma=0.5)
    assert len(table) == 7
    assert table.episode.tolist() == [0, 0, 0, 0, 1, 1, 1]
    assert table.action_index[4].tolist() == [4, 5, 6]
    assert table.action_index[6].tolist() == [6, 6, 6]  # clipped at the second episode's own end
    assert table.next_index[5].tolist() == [6, 6, 6]


def test_td_target_by_hand():
    reward = torch.tensor([[-0.1, -0.15, 0.075]])
    done = torch.tensor([[F_, F_, T_]])
    q_next = torch.tensor([[2.0, 4.0, 8.0]])
    y = td_targets(reward, done, q_next, 0.5)
    # j=0: -0.1 + 0.5*2; j=1: -0.15 + 0.25*4; j=2: terminal inside the prefix -> no bootstrap
    torch.testing.assert_close(y, torch.tensor([[0.9, 0.85, 0.075]]))


def test_calql_bound_by_hand():
    q = torch.tensor([[[[-1.0], [0.5], [2.0]], [[3.0], [-2.0], [-5.0]]]])  # [M=1, B=2, K=3, h=1]
    mc = torch.tensor([0.0, 1.0])
    bounded = torch.tensor([T_, T_, F_])  # policy, noisy policy, uniform
    out = calql_bound(q, mc, bounded)
    torch.testing.assert_close(out[..., 0], torch.tensor([[[0.0, 0.5, 2.0], [3.0, 1.0, -5.0]]]))


def _tiny_policy(h: int) -> ChunkPolicy:
    torch.manual_seed(0)
    cfg = PolicyConfig(joint_names=["a", "b"], camera_names=["front"], image_height=16, image_width=16,
                       chunk_size=h, d_model=16, heads=2, ff_dim=32, encoder_layers=1, decoder_layers=1,
                       cnn_channels=[8], text_dim=4)
    return ChunkPolicy(cfg).eval()


def _episode(length: int, success: bool, seed: int) -> Episode:
    rng = np.random.default_rng(seed)
    return Episode(
        bag=Path(f"memory-{seed}"), key=str(seed), instruction="go", success=success,
        images={"front": rng.integers(0, 255, (length, 16, 16, 3), dtype=np.uint8)},
        state=rng.normal(size=(length, 2)).astype(np.float32),
        action=rng.normal(size=(length, 2)).astype(np.float32),
        tick_ns=np.arange(length, dtype=np.int64), stats={},
    )


def test_td_target_bootstraps_from_each_prefix_next_state():
    torch.set_num_threads(1)
    h = 3
    policy = _tiny_policy(h)
    data = ChunkData([_episode(4, True, 1), _episode(5, False, 2)], h, CFG, ["front"],
                     {"go": np.array([0.1, -0.2, 0.3, 0.4], np.float32)})
    critic = CriticLearner(policy, CORFTConfig(gamma=0.5), data.value_scale())
    bank = FeatureBank(data, policy)
    rows = np.arange(len(data))
    y = critic.td_target(bank.batch(rows))
    target = critic.target
    with torch.no_grad():
        for b in rows:
            for j in range(h):
                nxt = data.table.next_index[b, j]
                feats = bank.features[nxt][None].float()
                q = target.critic(feats, target.act(feats))[:, 0, -1].min()
                expected = data.table.reward[b, j] + 0.5 ** (j + 1) * (1 - data.table.done[b, j]) * q
                assert y[b, j].item() == pytest.approx(float(expected), abs=1e-4), (b, j)


def test_the_feature_bank_holds_what_the_backbone_computes():
    policy = _tiny_policy(3)
    data = ChunkData([_episode(5, True, 4)], 3, CFG, ["front"], {"go": np.zeros(4, np.float32)})
    bank = FeatureBank(data, policy)
    img = torch.from_numpy(data.images(np.arange(5))).float() / 255
    with torch.no_grad():
        direct = policy.encode(img, torch.from_numpy(data.state), torch.from_numpy(data.text[[0] * 5]))
    torch.testing.assert_close(bank.features.float(), direct, atol=2e-3, rtol=2e-3)  # stored as float16


def test_critic_and_actor_updates_and_divergence_guard():
    torch.set_num_threads(1)
    h = 3
    policy = _tiny_policy(h).train()
    data = ChunkData([_episode(6, True, 3)], h, CFG, ["front"], {"go": np.zeros(4, np.float32)})
    bank = FeatureBank(data, policy)
    batch = bank.batch(np.arange(len(data)))
    learner = CORFTLearner(policy, CORFTConfig(gamma=0.5, actor_warmup_steps=0, policy_delay=1),
                           ExtractionConfig(method="td3bc", prefix=2), data.value_scale())
    before = [p.detach().clone() for p in policy.critic_parameters()]
    logs = learner.update(batch, 0)
    assert {"rl/td_loss", "rl/conservative_gap", "rl/q_data", "rl/target", "rl/actor_loss", "rl/lambda"} <= set(logs)
    assert any(not torch.equal(a, b) for a, b in zip(before, policy.critic_parameters(), strict=True))
    # the data's largest |return| is 0.9 (the success step); the guard allows 5x that
    assert data.value_scale() == pytest.approx(0.9)
    with torch.no_grad():
        for p in policy.critic_parameters():
            p.mul_(0).add_(0.0)
        policy.critics[0].q[-1].bias.fill_(100.0)
        policy.critics[1].q[-1].bias.fill_(100.0)
    with pytest.raises(QDivergenceError, match="Q diverged"):
        learner.update(batch, 1)


def test_a_takeover_marks_the_policys_last_tick_before_it_and_the_operators_ticks_are_imitated():
    """RLIF: the tick before each takeover gets takeover_reward (not terminal); HG-DAgger: BC imitates the ticks an
    operator drove in any episode, and no tick of the policy's own in an episode that needed rescuing."""
    from pathlib import Path

    from corft_ros.core.dataset.episode import Episode
    from corft_ros.core.rl.batches import ChunkData

    flags = np.array([0, 0, 1, 1, 0, 0, 1, 0], dtype=bool)
    cfg = RewardConfig(step_cost=0.0, success_reward=1.0, failure_reward=-1.0, takeover_reward=-0.5, gamma=0.9)
    r, d = episode_rewards(8, False, cfg, intervention=flags)
    np.testing.assert_allclose(r, [0, -0.5, 0, 0, 0, -0.5, 0, -1.0])
    assert d.tolist() == [False] * 7 + [True]
    r_plain, _ = episode_rewards(8, False, cfg)
    np.testing.assert_allclose(r_plain, [0] * 7 + [-1.0])

    def episode(success: bool, intervention) -> Episode:
        n = len(intervention)
        return Episode(bag=Path("memory"), key="k", instruction="go", success=success,
                       images={"front": np.zeros((n, 16, 16, 3), np.uint8)}, state=np.zeros((n, 2), np.float32),
                       action=np.zeros((n, 2), np.float32), tick_ns=np.arange(n, dtype=np.int64), stats={},
                       intervention=np.asarray(intervention, dtype=bool))

    data = ChunkData([episode(True, [0, 0, 0]), episode(False, flags), episode(True, [0, 1, 1, 0])], 2, cfg,
                     ["front"], {"go": np.zeros(4, np.float32)})
    imitated = data.rows_of("success")
    assert data.table.start[imitated].tolist() == [0, 1, 2, 5, 6, 9, 12, 13]  # clean success + operator ticks
    assert data.chunk_fields(imitated)["success"].all()
    assert not data.chunk_fields(np.array([3, 14]))["success"].any()
