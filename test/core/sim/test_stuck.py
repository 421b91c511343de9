"""The sim intervener's stuck detector: engages after a whole window without a new best of the task potential,
holds for takeover_s, then cools down before it may engage again."""

from __future__ import annotations

import numpy as np
import pytest

from corft_ros.core.robot import ConfigError
from corft_ros.core.sim.stuck import StuckConfig, StuckDetector, potential

DT = 0.05


def feed(detector: StuckDetector, phis, t0: float = 0.0) -> list[bool]:
    return [detector.update(t0 + i * DT, float(p)) for i, p in enumerate(phis)]


def test_a_policy_that_keeps_progressing_is_never_taken_over():
    d = StuckDetector(StuckConfig(window_s=1.0, min_progress_m=0.01))
    assert not any(feed(d, np.linspace(0.6, 0.0, 400)))  # 20 s of slow but steady progress (3 cm/s)


def test_a_plateau_engages_one_window_after_the_last_best_and_holds_for_the_takeover():
    d = StuckDetector(StuckConfig(window_s=1.0, min_progress_m=0.01, takeover_s=2.0, cooldown_s=1.0))
    phis = np.r_[np.linspace(0.5, 0.3, 20), np.full(200, 0.3) + 0.004 * np.sin(np.arange(200))]  # wobbling, no gain
    states = feed(d, phis)
    first = states.index(True)
    assert first == 19 + 20  # the last best at tick 19, a whole window (20 ticks) later
    assert all(states[first:first + 40]) and not states[first + 40]  # held for takeover_s, then handed back
    # handed back at tick first + 40: a fresh window starts at the next tick (first + 41), so with still no
    # progress the next takeover comes one window (20 ticks) later
    assert not any(states[first + 40:first + 61]) and states[first + 61] and d.takeovers >= 2


def test_the_takeovers_progress_counts_and_bad_settings_are_refused():
    d = StuckDetector(StuckConfig(window_s=1.0, takeover_s=1.0, cooldown_s=0.0))
    feed(d, np.full(21, 0.3))
    assert d.engaged
    d.not_acting_yet(1.5)  # the correction is being planned: its second starts when it acts
    assert d.update(2.4, 0.3) and not d.update(2.5, 0.3)
    feed(d, np.full(21, 0.3), t0=3.0)
    assert d.engaged
    d.release(4.0)
    assert not d.engaged and not feed(d, np.linspace(0.3, 0.0, 30), t0=4.0)[-1]
    assert potential([0, 0, 0.1], [0, 0, 0], [0.3, 0.4, 0]) == pytest.approx(0.6)
    with pytest.raises(ConfigError, match="window_s must be a positive number"):
        StuckConfig(window_s=0.0)
    with pytest.raises(ConfigError, match="cooldown_s must be >= 0"):
        StuckConfig(cooldown_s=-1.0)
