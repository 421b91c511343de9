"""How fast the embedded sim may run: a wall-clock pace (the real-time factor) and the consumers it waits for.

`realtime_factor` k > 0: sim seconds advance k times as fast as wall seconds. k = 0: as fast as the slowest
consumer allows. At every factor the sim also waits for its consumers, so running faster never changes the
experiment: in sim time, a frame is rendered, a policy answers an observation and the executor answers a clock
tick within the same bounds as at real time; when a consumer needs more wall time than that, the sim slows down
(the achieved factor is measured and reported) instead of letting the consumer fall behind in sim time.

Consumers (each gate is open until the consumer shows it is there, and opens again when it goes quiet, so a graph
without a policy or an executor is never blocked):
- the renderer: physics does not pass a frame's time + `frame_lag` (≈ what two 64×64 frames take to render at real
  time here) before that frame is published, so images are as old in sim time as at real time; at factor 1 the
  bound is one camera period (frames never pile up, the clock never waits for a frame that is merely slow);
- the policy: physics does not pass an observation's time + `policy_lag` before a chunk stamped at or after it
  arrives (the chunk's stamp is its newest input's stamp);
- the executor: while commands follow at least half of the ticks (a control loop, not a 20 Hz teleop), physics waits
  up to `executor_wait_s` of wall time after each tick for the command answering it, so the loop sees every tick.

At factor 1 (real time, like a real robot) only the renderer is waited for: the world does not wait for a slow
policy there, and a policy that cannot keep up shows it.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

CATCH_UP_S = 0.1  # wall s of lateness the pace makes up (a few late ticks); beyond it the pace re-anchors


@dataclass(frozen=True)
class PacingConfig:
    realtime_factor: float = 1.0  # sim s per wall s; 0 = as fast as the consumers allow
    policy_lag: float = 0.15  # sim s an observation may wait for its chunk
    frame_lag: float = 0.05  # sim s physics may run ahead of a frame being rendered (off real time)
    consumer_timeout_s: float = 2.0  # wall s without a chunk: the policy is gone, stop waiting for it
    executor_wait_s: float = 0.05  # wall s to wait for the executor's answer to one tick

    def __post_init__(self) -> None:
        if not (math.isfinite(self.realtime_factor) and self.realtime_factor >= 0):
            raise ValueError(f"realtime_factor must be >= 0 (0 = as fast as consumers allow), "
                             f"got {self.realtime_factor}")
        if min(self.policy_lag, self.frame_lag, self.consumer_timeout_s, self.executor_wait_s) <= 0:
            raise ValueError("policy_lag, frame_lag, consumer_timeout_s and executor_wait_s must be > 0")


class Pacer:
    """The sim thread asks `wall_delay` how long to sleep before the next tick and `blocked_by` whether a consumer
    holds it; ROS callbacks report what consumers did. Not thread-safe by itself: the node serialises with a lock,
    except for the plain float/int fields that single writers update."""

    def __init__(self, config: PacingConfig, camera_period: float) -> None:
        self.config = config
        self.camera_period = camera_period
        self._anchor: tuple[float, float] | None = None  # (wall, sim) of the last pacing anchor
        # renderer
        self.frame_requested: float | None = None  # sim time of the oldest frame not yet published
        # policy
        self.newest_observation: float | None = None  # sim time of the newest published frame
        self.newest_chunk_stamp = -math.inf
        self.policy_seen_wall = -math.inf
        # executor
        self.commands = 0  # commands received so far
        self.last_command_wall = -math.inf
        self._answered: deque[bool] = deque(maxlen=50)  # did a command follow each of the last ticks?
        self.waits = {"renderer": 0, "policy": 0, "executor": 0}  # how often physics waited for each consumer
        self.wait_s = {"renderer": 0.0, "policy": 0.0, "executor": 0.0}  # and for how long (wall s)
        self.unanswered = 0  # ticks whose executor wait ran out (executor_wait_s) without a command

    @property
    def waits_for_consumers(self) -> bool:
        return self.config.realtime_factor != 1.0

    # ---- wall-clock pace --------------------------------------------------------------------------------
    def reanchor(self, wall: float, sim: float) -> None:
        self._anchor = (wall, sim)

    def wall_delay(self, wall: float, sim: float) -> float:
        """Seconds to sleep so that `sim` is reached at the configured factor (0 with factor 0 or when behind;
        more than `CATCH_UP_S` behind re-anchors instead of sprinting to catch up: a stall would otherwise be
        followed by a burst faster than the factor)."""
        k = self.config.realtime_factor
        if k <= 0:
            return 0.0
        if self._anchor is None:
            self._anchor = (wall, sim)
        wall0, sim0 = self._anchor
        delay = wall0 + (sim - sim0) / k - wall
        if delay < -CATCH_UP_S:
            self._anchor = (wall, sim)
            return 0.0
        return max(0.0, delay)

    # ---- consumers ----------------------------------------------------------------------------------------
    def chunk(self, stamp: float, wall: float) -> None:
        self.newest_chunk_stamp = max(self.newest_chunk_stamp, stamp)
        self.policy_seen_wall = wall

    def command(self, wall: float) -> None:
        if wall - self.last_command_wall > self.config.consumer_timeout_s:
            # a commander (re)appears (an executor activated for an episode): presume it is a per-tick loop and wait
            # for it from its first tick; a sim that outran it would otherwise never see it answer half of the ticks
            # (measured: ~260 skipped executor ticks per 30 s trial at factor 0). A slower commander (a 20 Hz
            # teleop) shows within ~30 ticks and is no longer waited for.
            self._answered.clear()
            self._answered.extend([True] * self._answered.maxlen)
        self.last_command_wall = wall
        self.commands += 1

    def frame_published(self, sim: float) -> None:
        if self.frame_requested is not None and sim >= self.frame_requested - 1e-9:
            self.frame_requested = None
        self.newest_observation = sim if self.newest_observation is None else max(self.newest_observation, sim)

    def blocked_by(self, next_sim: float, wall: float) -> str | None:
        """The consumer that must act before physics may advance to `next_sim` (None: free to go)."""
        if self.frame_requested is not None:
            lead = self.config.frame_lag if self.waits_for_consumers else self.camera_period
            if next_sim >= self.frame_requested + min(lead, self.camera_period) - 1e-9:
                return "renderer"
        if not self.waits_for_consumers:
            return None
        policy_alive = wall - self.policy_seen_wall < self.config.consumer_timeout_s
        if (policy_alive and self.newest_observation is not None
                and self.newest_chunk_stamp < self.newest_observation - 1e-9
                and next_sim > self.newest_observation + self.config.policy_lag + 1e-9):
            return "policy"
        return None

    def wait_for_command(self) -> bool:
        """After a tick: should physics wait for the command answering it? Yes while a per-tick commander (the
        executor's loop) is there: a command followed at least half of the last ticks (a control loop that the sim
        outruns still answers most; a 20 Hz teleop answers one in five)."""
        return (self.waits_for_consumers and len(self._answered) >= 10
                and sum(self._answered) >= 0.5 * len(self._answered))

    def tick_answered(self, answered: bool) -> None:
        self._answered.append(answered)


# ---- the sim thread's waits (`moved` is notified whenever a consumer acts) -----------------------------------------
def wait_for_consumers(pacer: Pacer, moved: threading.Condition, next_sim: float, running: Callable[[], bool],
                       interrupted: Callable[[], bool]) -> None:
    """Block while a consumer must act before physics reaches `next_sim` (counted in `pacer.waits` / `wait_s`);
    stop waiting when `running()` turns false or `interrupted()` (a reset request: it is served between ticks,
    never held behind a consumer)."""
    while running():
        with moved:
            reason = pacer.blocked_by(next_sim, time.monotonic())
            if reason is None:
                return
            pacer.waits[reason] += 1
            start = time.monotonic()
            moved.wait(0.05)
            pacer.wait_s[reason] += time.monotonic() - start
        if interrupted():
            return


def wait_for_commands(pacer: Pacer, moved: threading.Condition, before: int, running: Callable[[], bool]) -> None:
    """Wait (at most executor_wait_s) until more than `before` commands have arrived."""
    start = time.monotonic()
    deadline = start + pacer.config.executor_wait_s
    with moved:
        if pacer.commands > before:
            return  # already answered
        pacer.waits["executor"] += 1
        while running() and pacer.commands <= before:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                pacer.unanswered += 1
                break
            moved.wait(remaining)
        pacer.wait_s["executor"] += time.monotonic() - start
