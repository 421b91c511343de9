"""What the control loop reports: rate, period error, underruns, jumps at chunk switches, counters."""

from __future__ import annotations

from collections import deque
from dataclasses import asdict, dataclass

import numpy as np


@dataclass
class LoopReport:
    ticks: int
    rate_hz: float
    period_error_p50_ms: float
    period_error_p99_ms: float
    period_error_max_ms: float
    overruns: int  # ticks that came more than one period late (slots skipped)
    underruns: int  # ticks with no action for now after the first chunk (held instead)
    stale_holds: int
    estop_holds: int
    chunks_accepted: int
    chunks_rejected: int
    chunks_ignored: int  # arrived between episodes (idle): not executed, not an error
    chunk_switches: int
    max_switch_jump: float  # max |Δq| (rad) between consecutive targets where the source chunk changed
    position_clamps: int
    velocity_clamps: int
    takeovers: int = 0  # an intervention took the arm from the policy
    handbacks: int = 0  # ... and gave it back
    intervention_ticks: int = 0
    max_handover_jump: float = 0.0  # max |Δq| (rad) between the commands either side of a takeover or hand-back

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


class LoopStats:
    """Per-tick bookkeeping, O(1) per tick; percentiles over a sliding window when reported."""

    def __init__(self, nominal_period: float, window: int = 1000) -> None:
        self.nominal_period = nominal_period
        self.period_errors: deque[float] = deque(maxlen=window)
        self.tick_times: deque[float] = deque(maxlen=window)
        self.ticks = 0
        self.overruns = 0
        self.underruns = 0
        self.stale_holds = 0
        self.estop_holds = 0
        self.chunks_accepted = 0
        self.chunks_rejected = 0
        self.chunks_ignored = 0
        self.chunk_switches = 0
        self.max_switch_jump = 0.0
        self._previous_time: float | None = None
        self._previous_target: list[float] | None = None
        self._previous_source = -1
        self.takeovers = 0
        self.handbacks = 0
        self.intervention_ticks = 0
        self.max_handover_jump = 0.0
        self._handover_from: list[float] | None = None  # the command before a takeover or hand-back

    def tick(self, now: float, skipped_slots: int = 0) -> None:
        """A tick ran at `now` (seconds on the loop's clock)."""
        self.ticks += 1
        self.overruns += skipped_slots > 0
        if self._previous_time is not None:
            self.period_errors.append(abs(now - self._previous_time - self.nominal_period))
        self._previous_time = now
        self.tick_times.append(now)

    def target(self, values: list[float], source: int) -> None:
        """The blended target of this tick (before safety) and the chunk seq it came from."""
        previous = self._previous_target
        if previous is not None and source != self._previous_source:
            self.chunk_switches += 1
            jump = max(abs(a - b) for a, b in zip(values, previous, strict=True))
            if jump > self.max_switch_jump:
                self.max_switch_jump = jump
        self._previous_target = values
        self._previous_source = source

    def takeover(self, last_command: list[float] | None) -> None:
        self.takeovers += 1
        self._handover_from = last_command

    def handback(self, last_command: list[float] | None) -> None:
        self.handbacks += 1
        self._handover_from = last_command

    def intervention_command(self, command: list[float]) -> None:
        self.intervention_ticks += 1
        self.command(command)

    def command(self, command: list[float] | None) -> None:
        """The command sent this tick: the first after a takeover or hand-back is compared with the one before."""
        before, self._handover_from = self._handover_from, None
        if before is not None and command is not None:
            jump = max(abs(a - b) for a, b in zip(command, before, strict=True))
            self.max_handover_jump = max(self.max_handover_jump, jump)

    def no_target(self) -> None:
        """A tick without a blended target: the next target is not compared with an older one."""
        self._previous_target = None
        self._previous_source = -1

    def restart_timing(self) -> None:
        """The clock jumped (sim reset): the next tick has no previous period."""
        self._previous_time = None

    def copy(self) -> LoopStats:
        """A detached copy (windows as lists): take it under the caller's lock, compute report() outside."""
        twin = LoopStats.__new__(LoopStats)
        twin.__dict__.update(self.__dict__)
        twin.period_errors = deque(self.period_errors)
        twin.tick_times = deque(self.tick_times)
        return twin

    def report(self, position_clamps: int = 0, velocity_clamps: int = 0) -> LoopReport:
        errors = np.asarray(self.period_errors, dtype=np.float64) * 1e3
        times = self.tick_times
        span = times[-1] - times[0] if len(times) > 1 else 0.0
        return LoopReport(
            ticks=self.ticks,
            rate_hz=(len(times) - 1) / span if span > 0 else 0.0,
            period_error_p50_ms=float(np.percentile(errors, 50)) if errors.size else 0.0,
            period_error_p99_ms=float(np.percentile(errors, 99)) if errors.size else 0.0,
            period_error_max_ms=float(errors.max()) if errors.size else 0.0,
            overruns=self.overruns,
            underruns=self.underruns,
            stale_holds=self.stale_holds,
            estop_holds=self.estop_holds,
            chunks_accepted=self.chunks_accepted,
            chunks_rejected=self.chunks_rejected,
            chunks_ignored=self.chunks_ignored,
            chunk_switches=self.chunk_switches,
            max_switch_jump=self.max_switch_jump,
            position_clamps=position_clamps,
            velocity_clamps=velocity_clamps,
            takeovers=self.takeovers,
            handbacks=self.handbacks,
            intervention_ticks=self.intervention_ticks,
            max_handover_jump=self.max_handover_jump,
        )
