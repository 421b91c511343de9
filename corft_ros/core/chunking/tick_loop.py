"""The executor's control loop, without ROS: a thread that sleeps to each control tick on the node's clock (woken
early while a simulated clock moves, so `use_sim_time` works), raises itself to SCHED_FIFO where allowed, freezes the
startup heap for the garbage collector, and calls `tick(slot, now_ns)` once per tick slot; a tick that raises is
reported and skipped, never ends the loop. The timer variant (`timing: timer`) gets the same once-per-slot guard.
"""

from __future__ import annotations

import gc
import os
import threading
import time
from collections.abc import Callable


class TickLoop:
    """Calls `tick(slot, now_ns)` once per `period_ns` slot of `now_ns()`. `simulated()` tells whether the clock is a
    simulated one that only `wake()` (its every update) moves; `error` and `warning` report one line each."""

    def __init__(self, period_ns: int, now_ns: Callable[[], int], simulated: Callable[[], bool],
                 tick: Callable[[int, int], None], error: Callable[[str], None], warning: Callable[[str], None],
                 priority: int = 0) -> None:
        self.period_ns = period_ns
        self.priority = priority
        self.scheduling = "normal"
        self.running = True
        self._now_ns = now_ns
        self._simulated = simulated
        self._tick = tick
        self._error = error
        self._warning = warning
        self._clock_moved = threading.Event()
        self._thread: threading.Thread | None = None
        self._timer_slot: int | None = None

    def start(self, name: str) -> None:
        """Run the loop in its own (daemon) thread."""
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """The clock moved (a /clock update): the sleeping loop checks whether its tick is due."""
        self._clock_moved.set()

    def stop(self, timeout: float = 2.0) -> None:
        """End the loop and wait up to `timeout` for its thread (not when called from it)."""
        self.running = False
        self._clock_moved.set()
        if self._thread is not None and self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=timeout)

    def on_timer(self) -> None:
        """One timer callback (`timing: timer`): the tick of the current slot, unless that slot already had it."""
        now_ns = self._now_ns()
        slot = now_ns // self.period_ns
        if slot != self._timer_slot:  # a timer firing early twice in one slot would otherwise repeat it
            self._timer_slot = slot
            self._tick(slot, now_ns)

    def _raise_priority(self) -> None:
        if self.priority <= 0:
            return
        try:
            os.sched_setscheduler(threading.get_native_id(), os.SCHED_FIFO, os.sched_param(self.priority))
            self.scheduling = f"SCHED_FIFO {self.priority}"
        except (OSError, AttributeError) as exc:  # no CAP_SYS_NICE / rtprio limit, or not Linux
            self._warning(f"loop thread stays at normal priority: SCHED_FIFO refused ({exc}); "
                          "grant rtprio (e.g. limits.conf) or set thread_priority 0")

    def _loop(self) -> None:
        self._raise_priority()
        period = self.period_ns
        next_slot: int | None = None
        freeze_at = time.monotonic() + 3.0
        while self.running:
            if freeze_at and time.monotonic() > freeze_at:
                # A full garbage collection of a process that imported torch scans ~200k objects (76 ms measured):
                # it stalls every thread, this one included. Freezing the startup heap (modules, models, nodes:
                # alive for good anyway) makes later collections scan only new objects.
                gc.freeze()
                freeze_at = 0.0
            now_ns = self._now_ns()
            if next_slot is None or now_ns < (next_slot - 2) * period:  # first tick, or the clock went back
                next_slot = now_ns // period + 1
            if not self._sleep_until(next_slot * period):
                continue
            now_ns = self._now_ns()
            slot = now_ns // period
            if slot < next_slot:
                continue
            try:
                self._tick(slot, now_ns)
            except Exception as exc:  # a bug must not silently end the loop; the controller keeps its last command
                self._error(f"control loop error (tick skipped): {type(exc).__name__}: {exc}")
            next_slot = slot + 1

    def _sleep_until(self, target_ns: int) -> bool:
        """Sleep until the clock reaches target_ns; False if woken for another reason."""
        if self._simulated():
            self._clock_moved.clear()
            if self._now_ns() >= target_ns:
                return True
            self._clock_moved.wait(0.05)
            return self._now_ns() >= target_ns
        remaining = (target_ns - self._now_ns()) * 1e-9
        if remaining > 0:
            time.sleep(min(remaining, 0.05))
        return self.running
