"""Rewards and Monte-Carlo returns-to-go.

Per episode of T ticks, for t = 0..T-1:
    r_t = -step_cost
        + success_reward   at t = T-1 of a successful episode (then the episode is terminal: d_{T-1} = 1)
        + failure_reward   at t = T-1 of a failed episode, terminal too (failure_terminal, the default): the
                           failure's value, as Cal-QL's reference code does (r_neg / (1 − γ): failing forever);
                           with failure_terminal false the recording just stopped (truncated, bootstrapped)
        + takeover_reward  at the last tick before each takeover (RLIF: an operator had to step in, so what the
                           policy did just before was bad); not terminal, the episode goes on under the operator
        + shaping_scale * (γ Φ(s_{t+1}) - Φ(s_t))   optional, potential-based, Φ(s) = -||q - q_goal||,
                                                    q_goal = the final joint state of a successful episode
                                                    (Φ after the terminal step is 0; failed episodes get none)
The per-step cost is what makes a faster completion worth more: the same success, fewer -step_cost terms.
G_t = Σ_{k≥0} γ^k r_{t+k} (to the end of the recording) is the Monte-Carlo return-to-go.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from corft_ros.core.params import param


@dataclass
class RewardConfig:
    """The rewards (the trainer's `rewards.*` parameters; the discount is corft.gamma)."""

    success_reward: float = param(1.0, "reward at the last tick of a successful episode (terminal)")
    step_cost: float = param(0.01, "paid every tick: what makes a faster success worth more")
    # The value of failing: −step_cost / (1 − γ) = −1 with the defaults, i.e. paying the step cost forever.
    # Before, failures were truncated with 0 here, so they differed from successes only by step costs and the
    # critic learned time-to-go (docs/training.md).
    failure_reward: float = param(-1.0, "reward at the last tick of a failed episode: the value of failing, "
                                        "−step_cost / (1 − γ) with the defaults (paying the step cost forever)")
    failure_terminal: bool = param(True, "a failed episode ends in a terminal step (false: the recording just "
                                         "stopped; truncated and bootstrapped)")
    takeover_reward: float = param(-1.0, "RLIF: reward at the policy's last tick before each takeover (episodes with "
                                         "interventions only; not terminal)")
    shaping_scale: float = param(0.0, "potential-based shaping γ Φ(s') − Φ(s), Φ(s) = −‖q − q_final‖, on successful "
                                      "episodes (0 = off)")
    gamma: float = param(0.99, "the discount of the returns and the shaping: set from corft.gamma "
                               "(TrainConfig.validate), not a parameter of its own")


def episode_rewards(
    length: int, success: bool, cfg: RewardConfig, state: np.ndarray | None = None,
    intervention: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(rewards [T] float64, terminals [T] bool) of one episode (`intervention`: [T] bool, ticks an operator held)."""
    if length < 1:
        raise ValueError("episode has no steps")
    r = np.full(length, -cfg.step_cost, dtype=np.float64)
    terminal = np.zeros(length, dtype=bool)
    if success:
        r[-1] += cfg.success_reward
        terminal[-1] = True
    else:
        r[-1] += cfg.failure_reward
        terminal[-1] = cfg.failure_terminal
    if intervention is not None and cfg.takeover_reward and len(intervention) == length:
        flags = np.asarray(intervention, dtype=bool)
        starts = np.nonzero(flags[1:] & ~flags[:-1])[0]  # the policy's last tick before each takeover
        r[starts] += cfg.takeover_reward
    if cfg.shaping_scale and success and state is not None:
        q = np.asarray(state, dtype=np.float64)
        phi = -np.linalg.norm(q - q[-1], axis=1)
        phi_next = np.append(phi[1:], 0.0)  # absorbing state after the terminal step
        r += cfg.shaping_scale * (cfg.gamma * phi_next - phi)
    return r, terminal


def returns_to_go(rewards: np.ndarray, gamma: float) -> np.ndarray:
    """G_t = r_t + γ G_{t+1}, G_T = 0."""
    out = np.empty(len(rewards), dtype=np.float64)
    acc = 0.0
    for t in range(len(rewards) - 1, -1, -1):
        acc = rewards[t] + gamma * acc
        out[t] = acc
    return out
