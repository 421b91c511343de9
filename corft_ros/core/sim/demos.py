"""The scripted teleop source's demos and takeovers, ROS-free (nodes/teleop.py holds the lock it shares with them
around every call): which demo is requested, when one may be planned (fresh cube and goal poses in) and the planning
itself, in a thread of its own, whether a finished plan still belongs to the current episode, and, as the sim's
automatic intervener, when the stuck detector (core/sim/stuck.py) takes the arm over from a policy and hands it back.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import numpy as np

from corft_ros.core.sim.stuck import StuckDetector, potential

Pose = tuple[np.ndarray, float, float]  # position, yaw, receive time (monotonic s)


class ScriptedDemos:
    def __init__(self, lock: threading.Lock, stuck: StuckDetector | None = None) -> None:
        self._lock = lock  # the node's: held around every call, taken by the planning thread
        self.stuck = stuck  # the automatic intervener's detector (None: demos on request)
        self.operator = None  # the planned ScriptedOperator being played
        self.index = 0  # demos planned so far
        self.generation = 0  # +1 per request/end: a plan finished after its demo was ended is dropped
        self.planning = False
        self.pending = False
        self.requested_at = 0.0
        self.cube: Pose | None = None
        self.goal: Pose | None = None
        self._ik = None  # forward kinematics for the progress measure, made on first use (MuJoCo)

    @property
    def done(self) -> bool:
        return self.operator is not None and self.operator.done

    def request(self, now: float) -> None:
        """Plan a new demo from the next cube/goal poses (received after `now`)."""
        self.pending = True
        self.generation += 1
        self.requested_at = now
        self.operator = None

    def end(self) -> None:
        """The episode ended: the rest of the demo is not played."""
        self.pending = False
        self.generation += 1
        self.operator = None

    def new_episode(self) -> None:
        """The automatic intervener: a fresh detector per episode, and no correction carried over."""
        self.stuck.reset()
        self.operator = None
        self.generation += 1

    def plan(self, state: np.ndarray | None, make_operator: Callable, seed: int, error: Callable[[str], None],
             info: Callable[[str], None]) -> threading.Thread | None:
        """Start planning the requested demo (lock held) once fresh cube and goal poses are in and no plan is
        running, from `state`, with operator `make_operator(seed + index - 1)`; the planning thread, else None.
        Its outcome goes to `error` / `info` (one line)."""
        cube, goal, since = self.cube, self.goal, self.requested_at
        if self.planning or cube is None or goal is None or cube[2] < since or goal[2] < since or state is None:
            return None
        self.pending, self.planning = False, True
        self.index += 1
        thread = threading.Thread(target=self._plan, name="teleop-plan", daemon=True,
                                  args=(make_operator, seed, error, info, self.index, self.generation, state.copy(),
                                        cube, goal))
        thread.start()
        return thread

    def _plan(self, make_operator: Callable, seed: int, error: Callable[[str], None], info: Callable[[str], None],
              index: int, generation: int, state: np.ndarray, cube: Pose, goal: Pose) -> None:
        operator = make_operator(seed + index - 1)
        try:  # the demo's time starts with its first command: planning takes wall time, a fast sim runs on meanwhile
            operator.start(None, state, cube[0], cube[1], goal[0], goal[1])
        except Exception as exc:
            with self._lock:
                self.planning = False
            error(f"scripted operator: cannot plan a demo: {exc}")
            return
        with self._lock:
            self.planning = False
            if generation != self.generation:
                return  # the episode ended (or a new one began) while this demo was planned
            self.operator = operator
        info(f"scripted demo {index} planned ({operator.duration:.1f} s)")

    def watch(self, state: np.ndarray | None, stamp: float) -> tuple[bool, bool] | None:
        """Intervention: feed the stuck detector the task's progress at `stamp` (sim s). Returns (engage, plan):
        whether the correction holds the arm now, and whether a takeover just began (plan a correction from the
        arm's current state now: the poses we have are fresh enough); None without a state or poses yet. A
        correction whose time is up or whose plan has played out hands back."""
        cube, goal = self.cube, self.goal
        if state is None or cube is None or goal is None or not stamp:
            return None
        if self._ik is None:
            from corft_ros.core.sim.ik import ArmIK

            self._ik = ArmIK()
        pinch, _ = self._ik.forward(state[:6])
        was = self.stuck.engaged
        if was and self.operator is not None and self.operator.done:
            self.stuck.release(stamp)  # the correction's plan has played out
        engaged = self.stuck.update(stamp, potential(pinch, cube[0], goal[0]))
        if was and not engaged:
            self.operator = None
            self.generation += 1  # a plan still being made for this takeover is dropped
        begins = engaged and not was
        if begins:
            self.requested_at = 0.0
            self.pending = True
            self.generation += 1
            self.operator = None
        if engaged and self.operator is None:
            self.stuck.not_acting_yet(stamp)  # planning (seconds of IK): the takeover's time starts with its commands
        return engaged and self.operator is not None, begins
