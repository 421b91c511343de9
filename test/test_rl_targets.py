"""CO-RFT targets checked against values computed by hand on tiny episodes (episode ends inside a chunk,
truncated failures), the Cal-QL bound, and the TD target's next-state indexing on a real ChunkPolicy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from corft_ros.core.policy.config import PolicyConfig
from corft_ros.core.policy.model import ChunkPolicy
from corft_ros.core.rl.batches import ChunkData
from corft_ros.core.rl.chunks import build_chunk_table, episode_chunks
from corft_ros.core.rl.corft import CORFTConfig, CORFTObjective, calql_bound, make_target, td_targets
from corft_ros.core.rl.dataset import Episode
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


def test_failed_episode_is_truncated_not_terminal():
    r, d = episode_rewards(3, False, RewardConfig(step_cost=0.1, failure_reward=-0.5, gamma=0.5))
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
    r, d = episode_rewards(3, False, CFG)
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
    cfg = CORFTConfig(gamma=0.5, policy_noise=0.0)
    target = make_target(policy)
    objective = CORFTObjective(policy, target, cfg, data.value_scale())
    rows = np.arange(len(data))
    batch = data.batch(rows, with_next=True)
    batch["images"] = batch["images"].float() / 255
    batch["next_images"] = batch["next_images"].float() / 255
    y = objective.td_target(batch)
    text = torch.from_numpy(data.text[:1])
    with torch.no_grad():
        for b in rows:
            for j in range(h):
                nxt = data.table.next_index[b, j]
                img = torch.from_numpy(data.images(np.array([nxt]))).float() / 255
                feats = target.encode(img, torch.from_numpy(data.state[nxt][None]), text)
                q = target.critic(feats, target.act(feats))[:, 0, -1].min()
                expected = data.table.reward[b, j] + 0.5 ** (j + 1) * (1 - data.table.done[b, j]) * q
                assert y[b, j].item() == pytest.approx(float(expected), abs=1e-5), (b, j)


def test_critic_and_actor_losses_and_divergence_guard():
    torch.set_num_threads(1)
    h = 3
    policy = _tiny_policy(h).train()
    data = ChunkData([_episode(6, True, 3)], h, CFG, ["front"], {"go": np.zeros(4, np.float32)})
    objective = CORFTObjective(policy, make_target(policy), CORFTConfig(gamma=0.5), data.value_scale())
    batch = data.batch(np.arange(len(data)), with_next=True)
    batch["images"] = batch["images"].float() / 255
    batch["next_images"] = batch["next_images"].float() / 255
    loss, logs = objective(batch, "critic")
    assert torch.isfinite(loss)
    assert {"rl/td_error", "rl/conservative_gap", "rl/q_data", "rl/target"} <= set(logs)
    loss.backward()
    assert all(p.grad is not None for p in policy.critic_parameters())
    a_loss, a_logs = objective(batch, "actor")
    assert torch.isfinite(a_loss) and a_logs["rl/lambda"] > 0
    # the data's largest |return| is 0.9 (the success step); the guard allows 5x that
    assert data.value_scale() == pytest.approx(0.9)
    assert objective.divergence(loss, torch.tensor(1.0)) is None
    message = objective.divergence(loss, torch.tensor(100.0))
    assert message is not None and "Q diverged" in message
    assert "NaN" in objective.divergence(torch.tensor(float("nan")), torch.tensor(0.0))
