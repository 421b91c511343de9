"""The executor's logic without ROS: chunks in, one safe joint command per control tick out."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

from corft_ros.core.chunking.blending import MODES, make_blender
from corft_ros.core.chunking.buffer import ChunkBuffer, ControlGrid
from corft_ros.core.chunking.chunk import Chunk, ChunkError
from corft_ros.core.chunking.safety import SafetyFilter, SafetyLimits
from corft_ros.core.chunking.stats import LoopReport, LoopStats
from corft_ros.core.robot import ConfigError, RobotConfig


class TickState(str, Enum):
    """A str enum (enum.StrEnum is Python 3.11+): members compare equal to, print and format as their value."""

    NO_STATE = "no_state"  # nothing measured or commanded yet: nothing is sent
    WAITING = "waiting"  # holding, no chunk since start/clear
    TRACKING = "tracking"
    STALE = "stale"  # newest chunk older than staleness_timeout: holding
    UNDERRUN = "underrun"  # no buffered action for now: holding
    ESTOP = "estop"  # e-stop latched: holding
    IDLE = "idle"  # between episodes: one hold command, then nothing is sent (the controller keeps it)
    INTERVENTION = "intervention"  # an operator (or the sim's intervener) has taken over: its targets, not chunks

    __str__ = str.__str__  # as StrEnum: str(TickState.IDLE) == "idle" on every Python
    __format__ = str.__format__


@dataclass(frozen=True)
class ExecutorConfig:
    control_period: float
    mode: str = "temporal_ensembling"
    m: float = 0.01
    k: int = 10  # receding_horizon: actions of a chunk played before switching
    staleness_timeout: float = 0.5  # s; newest chunk's stamp older than this → hold
    max_lead: float = 1.0  # s; a chunk starting further than this in the future is refused (clock mismatch)
    start_idle: bool = False  # command nothing until the first episode starts
    intervention_timeout: float = 0.25  # s; a takeover whose source sent nothing for this long hands back

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if not math.isfinite(self.m):
            raise ConfigError(f"m must be a finite number, got {self.m}")
        if not (math.isfinite(self.control_period) and self.control_period > 0):
            raise ConfigError(f"control period must be positive, got {self.control_period}")
        if self.k < 1:
            raise ConfigError(f"k must be >= 1, got {self.k}")
        if not (math.isfinite(self.staleness_timeout) and self.staleness_timeout > 0):
            raise ConfigError(f"staleness_timeout must be a positive number of seconds, got {self.staleness_timeout}")
        if not (math.isfinite(self.intervention_timeout) and self.intervention_timeout > 0):
            raise ConfigError(f"intervention_timeout must be a positive number of seconds, got "
                              f"{self.intervention_timeout}")
        if not (math.isfinite(self.max_lead) and self.max_lead >= 0):
            raise ConfigError(f"max_lead must be >= 0 s, got {self.max_lead}")


TAKEOVER_SOURCE = -2  # the "chunk" a takeover's targets come from, for the switch statistics


@dataclass(slots=True)
class Tick:
    slot: int
    time: float
    state: TickState
    command: list[float] | None  # canonical order; None in NO_STATE and (after its one hold) IDLE


class ChunkExecutor:
    """Not thread-safe: the node serialises calls with one lock."""

    def __init__(self, robot: RobotConfig, config: ExecutorConfig) -> None:
        self.robot = robot
        self.config = config
        self.grid = ControlGrid(config.control_period)
        self.buffer = ChunkBuffer(self.grid, receding_k=config.k)
        self.blender = make_blender(config.mode, self.buffer, robot.dof, config.m)
        self.safety = SafetyFilter(SafetyLimits.from_robot(robot), config.control_period)
        self.stats = LoopStats(config.control_period)
        self.estopped = False
        self.newest_stamp: float | None = None
        self.state = TickState.NO_STATE
        self._slot: int | None = None  # slot of the last tick
        self._rebase_pending = True  # the next measured state becomes the hold position
        # Between episodes the arm is not this node's: a sim reset (or a person) moves it, and holding the old
        # command (or executing chunks of a policy that keeps running) would drive it back before the next start.
        self.idle = config.start_idle
        self._idle_hold_sent = True  # nothing to hold before anything was commanded
        self._episode_start: float | None = None  # chunks stamped earlier were planned from before the start
        self._takeover: tuple[list[float], float] | None = None  # (target, when it came) of a takeover source

    # ---- inputs -------------------------------------------------------------------------------------
    def submit(self, chunk: Chunk, now: float) -> int:
        """Buffer a validated chunk; returns how many slots of it are still ahead (0 while idle: ignored).
        ChunkError if refused."""
        if self.idle or (self._episode_start is not None and chunk.stamp < self._episode_start):
            # idle, or observed before this episode's start (the arm was reset since): not an error, just late
            self.stats.chunks_ignored += 1
            return 0
        try:
            if self.newest_stamp is not None and chunk.stamp <= self.newest_stamp:
                raise ChunkError(
                    f"chunk stamped {chunk.stamp:.6f}: header.stamp is not newer than the last chunk's "
                    f"{self.newest_stamp:.6f} (out of order or duplicate)"
                )
            if chunk.start - now > self.config.max_lead:
                raise ChunkError(
                    f"chunk stamped {chunk.stamp:.6f}: header.stamp is {chunk.start - now:.3f} s in the future "
                    f"(clock mismatch? max_lead is {self.config.max_lead} s)"
                )
            if now - chunk.stamp > self.config.staleness_timeout:
                raise ChunkError(
                    f"chunk stamped {chunk.stamp:.6f}: header.stamp is {now - chunk.stamp:.3f} s old "
                    f"(staleness_timeout {self.config.staleness_timeout} s)"
                )
            from_slot = max(self.grid.slot_at_or_after(now), (self._slot + 1) if self._slot is not None else 0)
            entry = self.buffer.add(chunk, from_slot)
            if entry is None:
                raise ChunkError(f"chunk stamped {chunk.stamp:.6f}: header.stamp: every action is already in the past")
        except ChunkError:
            self.stats.chunks_rejected += 1
            raise
        self.blender.add(entry, from_slot)
        self.newest_stamp = chunk.stamp
        self.stats.chunks_accepted += 1
        return entry.last_slot - entry.first_slot + 1

    def intervene(self, target: Sequence[float], now: float) -> None:
        """A takeover source's target (canonical order, NaN = hold that joint's last command): while such targets
        keep coming (each within intervention_timeout of the last), the arm follows them through the same safety
        filter instead of the chunks, which are still received. E-stop and idle win over a takeover."""
        if len(target) != self.robot.dof:
            raise ChunkError(f"intervention target has {len(target)} joints, the robot {self.robot.dof}")
        self._takeover = ([float(v) for v in target], now)

    def release(self) -> None:
        """The takeover source let go (dead-man released, key toggled): the policy's chunks again from the next
        tick, reached within the velocity limits."""
        self._takeover = None

    def intervening(self, now: float) -> bool:
        """Whether a takeover holds the arm at `now` (a source silent longer than intervention_timeout does not)."""
        return self._takeover is not None and now - self._takeover[1] <= self.config.intervention_timeout

    def reject(self) -> None:
        """Count a chunk refused before submit (by validation)."""
        self.stats.chunks_rejected += 1

    @property
    def wants_measurement(self) -> bool:
        """True until a measured state has become the hold position (after start, a clear or an episode start)."""
        return self._rebase_pending

    def measured(self, positions: Sequence[float]) -> None:
        """A measured joint state (canonical order): becomes the hold position after start or a clear."""
        if self._rebase_pending:
            self.safety.reset(positions)
            self._rebase_pending = False
            if self.state is TickState.NO_STATE:
                self.state = TickState.WAITING

    def clear(self, rebase: bool = True) -> None:
        """Drop every buffered chunk (episode start/stop); with rebase, hold the next measured state."""
        self.blender.clear()
        self.newest_stamp = None
        self.stats.no_target()
        self._rebase_pending = rebase

    def end_episode(self) -> None:
        """Episode stop: drop the plan, send the hold once (a trajectory controller stops there), then go idle."""
        self.clear(rebase=False)
        self.idle = True
        self._idle_hold_sent = False

    def start_episode(self, now: float | None = None) -> None:
        """Episode start: leave idle and hold the next measured state, never a command from before the start
        (the arm may have been reset or moved meanwhile). With `now`, chunks stamped before it are ignored: a
        policy that kept running planned them from an observation of the arm before the reset."""
        self.clear(rebase=True)
        self._episode_start = now
        if self.idle:
            self.safety.last = None
            self.state = TickState.NO_STATE
        self.idle = False

    def reconfigure(self, config: ExecutorConfig) -> None:
        """Apply new blending/timing settings at run time (a parameter set on the node). A new mode, m or k
        rebuilds the blender and drops the buffered chunks (they were blended under the old rule); the arm holds
        its last command until the next chunk. The control period cannot change while running."""
        if config.control_period != self.config.control_period:
            raise ConfigError("the control period is fixed once the executor runs (control_rate_hz is read-only)")
        rebuild = (config.mode, config.m, config.k) != (self.config.mode, self.config.m, self.config.k)
        self.config = config
        if rebuild:
            self.buffer = ChunkBuffer(self.grid, receding_k=config.k)
            self.blender = make_blender(config.mode, self.buffer, self.robot.dof, config.m)
            self.newest_stamp = None
            self.stats.no_target()

    def set_estop(self, engaged: bool) -> None:
        """Latch (or release) a hold of the last command; either way the buffered plan is dropped."""
        self.estopped = engaged
        self.clear(rebase=False)

    # ---- the control tick ---------------------------------------------------------------------------
    def tick(self, slot: int, now: float) -> Tick:
        previous = self._slot
        if previous is not None and slot == previous:  # a second tick in the same slot: repeat, change nothing
            return Tick(slot, now, self.state, self.safety.last)
        if previous is not None and slot < previous:
            # the clock went back (sim reset): old chunks are meaningless on the new timeline
            self.clear(rebase=False)
            self.stats.restart_timing()
            previous = None
        self._slot = slot
        self.stats.tick(now, 0 if previous is None else slot - previous - 1)
        self.buffer.prune(slot)
        if self.idle:
            self.stats.no_target()
            self.state = TickState.IDLE
            hold, self._idle_hold_sent = (None if self._idle_hold_sent else self.safety.last), True
            return Tick(slot, now, self.state, hold)
        if self.safety.last is None:
            self.state = TickState.NO_STATE
            return Tick(slot, now, self.state, None)
        if not self.estopped and self.intervening(now):
            return self._intervention_tick(slot, now)
        if self.state is TickState.INTERVENTION:  # hand-back: the takeover ended or its source went silent
            self._takeover = None
            self.stats.handback(self.safety.last)
        state = self._hold_reason(now)
        if state is None:
            blended = self.blender.action(slot)
            if blended is None:
                state = TickState.UNDERRUN
                self.stats.underruns += 1
            else:
                row, source = blended
                target = row.tolist()
                self.stats.target(target, source)
                self.state = TickState.TRACKING
                command = self.safety.apply(target)
                self.stats.command(command)
                return Tick(slot, now, self.state, command)
        self.stats.no_target()
        self.stats.command(self.safety.last)
        self.state = state
        return Tick(slot, now, state, self.safety.last)

    def _intervention_tick(self, slot: int, now: float) -> Tick:
        target = self._takeover[0]
        last = self.safety.last
        target = [t if math.isfinite(t) else q for t, q in zip(target, last, strict=True)]
        if self.state is not TickState.INTERVENTION:
            self.stats.takeover(last)
        self.stats.target(target, TAKEOVER_SOURCE)
        self.state = TickState.INTERVENTION
        command = self.safety.apply(target)
        self.stats.intervention_command(command)
        return Tick(slot, now, self.state, command)

    def _hold_reason(self, now: float) -> TickState | None:
        if self.estopped:
            self.stats.estop_holds += 1
            return TickState.ESTOP
        if self.newest_stamp is None:
            return TickState.WAITING
        if now - self.newest_stamp > self.config.staleness_timeout:
            self.stats.stale_holds += 1
            return TickState.STALE
        return None

    def plan(self, spacing: float, max_points: int = 100) -> list[tuple[float, list[float]]]:
        """The rest of the blended horizon after the last tick, safety-limited, as (seconds ahead, command).

        The first point is one control period ahead, the next ones `spacing` apart. While holding (or
        with nothing ahead) it is the hold position one period ahead: never a single point at t = 0.
        """
        last = self.safety.last
        if last is None or self._slot is None:
            return []
        period = self.grid.period
        if self.state is TickState.TRACKING:
            stride = max(1, round(spacing / period))
            slots = [self._slot + 1 + i * stride for i in range(max_points)]
            rows = self.blender.preview(slots)
            if rows:
                gaps = [period] + [stride * period] * (len(rows) - 1)
                path = self.safety.limit_path(rows, gaps)
                return [(period + i * stride * period, point) for i, point in enumerate(path)]
        return [(period, list(last))]

    def report(self) -> LoopReport:
        return self.stats.report(self.safety.position_clamps, self.safety.velocity_clamps)
