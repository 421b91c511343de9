"""The policy node's inference rate on the node's clock (sim time under use_sim_time, wall time otherwise): the wait
for the next step's time, in small wall-clock steps where the clock may run faster or slower than the wall, never
a burst of steps to catch up after falling behind or after the clock jumps. No ROS here: the node hands in its
clock, its stop wait and its overrun counter."""

from __future__ import annotations

from collections.abc import Callable


def wait_for_step(next_time: float, period: float, now: Callable[[], float], wait: Callable[[float], bool],
                  small_steps: Callable[[], bool], overrun: Callable[[], None]) -> float | None:
    """Waits until the node's clock reaches `next_time` and returns the step's time: `next_time`, or the clock's
    time when it fell behind by over a period or jumped more than two ahead (`overrun()` is called for a late step,
    not the sim clock's first message or a reset); None when `wait(seconds)` returned True (stopped)."""
    while True:
        t = now()
        delay = next_time - t
        if delay < -period or delay > 2 * period:  # fell behind, or the clock jumped: no burst
            if -10 * period < delay < -period:  # a late step, not the sim clock's first message or a reset
                overrun()
            return t
        if delay <= 0:
            return next_time
        # wall-clock sleep in small steps: with sim time the clock may run faster or slower than wall time
        if wait(min(delay, 0.005) if small_steps() else delay):
            return None
