"""The chunk executor as the executor node drives it, without ROS: the core behind the one lock the control loop and
the callbacks share, the lifecycle (active or not; the first activation and later ones), the episode gate (a 'start'
remembered while inactive), chunks submitted or refused, measured joint states (the latest per joint, by arrival),
takeovers, the e-stop, clearing, each control tick with its trajectory plan, and the final hold. Every time is read
from the `now` given, inside the lock where the node read it there.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

from corft_ros.core.chunking.chunk import Chunk
from corft_ros.core.chunking.executor import ChunkExecutor, Tick
from corft_ros.core.joint_states import JointStateCache


class ExecutorSession:
    """`core` and the node-side state around it; `lock` guards both (the node's diagnostics copy under it too)."""

    def __init__(self, core: ChunkExecutor, states: JointStateCache) -> None:
        self.core = core
        self.states = states
        self.lock = threading.Lock()
        self.active = False
        self.activated_before = False
        self.episode_open = False  # an episode 'start' without its 'stop' yet

    def activate(self, now: Callable[[], float]) -> None:
        with self.lock:
            if self.episode_open or not self.core.config.start_idle:
                # hold the next measured pose, then execute new chunks; after a deactivation, chunks planned before
                # this activation are ignored (the arm may have been moved meanwhile)
                self.core.start_episode(now() if self.activated_before else None)
            self.active = True
            self.activated_before = True

    def deactivate(self) -> list[float] | None:
        """End the episode and stop commanding; returns the command to hold (None before any)."""
        with self.lock:
            self.core.end_episode()
            hold = self.core.safety.last
            self.active = False
        return hold

    def shut_down(self) -> None:
        with self.lock:
            self.active = False

    def stop(self) -> list[float] | None:
        """Stop commanding for good; returns the command to hold where it was commanding, else None."""
        with self.lock:
            hold = self.core.safety.last if self.active else None
            self.active = False
        return hold

    def reject(self) -> None:
        """Count a chunk message that did not make a chunk."""
        with self.lock:
            self.core.reject()

    def submit(self, chunk: Chunk, now: Callable[[], float]) -> None:
        """Buffer a chunk; raises ChunkError when the executor refuses it."""
        with self.lock:
            self.core.submit(chunk, now())

    def joint_state(self, names: Sequence[str], positions: Sequence[float], now: Callable[[], float]) -> None:
        """Keep the latest value per joint (raises JointStateError) and, once every joint is fresh, measure them where
        the executor waits for a measurement."""
        self.states.update(names, positions, now())
        if not self.core.wants_measurement:
            return
        snapshot = self.states.snapshot(now())
        if snapshot is None:
            return  # the diagnostics name the joints still missing
        with self.lock:
            self.core.measured(snapshot.positions.tolist())

    def episode_event(self, event: str, now: Callable[[], float]) -> None:
        """'start' or 'stop': remembered while inactive (activation decides), applied while active."""
        with self.lock:
            self.episode_open = event == "start"
            if not self.active:
                pass  # remembered; activation decides
            elif event == "start":
                self.core.start_episode(now())
            else:
                self.core.end_episode()

    def intervention(self, target: list[float] | None, now: Callable[[], float]) -> None:
        """Follow a takeover source's target, or let go (None)."""
        with self.lock:
            if target is None:
                self.core.release()
            else:
                self.core.intervene(target, now())

    def set_estop(self, engaged: bool) -> None:
        with self.lock:
            self.core.set_estop(engaged)

    def clear(self) -> None:
        with self.lock:
            self.core.clear(rebase=True)

    def tick(self, slot: int, now_s: float, plan_with: Callable[[], tuple[float, int]] | None
             ) -> tuple[Tick, list[tuple[float, list[float]]] | None] | None:
        """The tick of `slot` and, with `plan_with` (() -> (point spacing, max points), read under the lock), its
        trajectory plan; None while inactive."""
        with self.lock:
            if not self.active:
                return None
            tick = self.core.tick(slot, now_s)
            plan = self.core.plan(*plan_with()) if plan_with is not None else None
        return tick, plan
