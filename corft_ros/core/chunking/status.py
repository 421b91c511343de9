"""What the executor reports on /diagnostics: its status line from the tick state, its key/values, and which outputs
nobody listens to (warned at once and every `repeat_s` while it lasts). No ROS here; the node maps "ok"/"warn" onto
diagnostic_msgs levels."""

from __future__ import annotations

from typing import Any

from corft_ros.core.chunking.executor import ChunkExecutor, TickState

_STATUS = {
    TickState.NO_STATE: ("warn", "no /joint_states yet: not commanding"),
    TickState.WAITING: ("ok", "holding: no chunk since start"),
    TickState.TRACKING: ("ok", "tracking chunks"),
    TickState.STALE: ("warn", "holding: chunks are stale (staleness_timeout exceeded)"),
    TickState.UNDERRUN: ("warn", "holding: no buffered action for now (underrun)"),
    TickState.ESTOP: ("warn", "holding: e-stop latched"),
    TickState.IDLE: ("ok", "idle between episodes: commanding nothing (the controller holds), chunks ignored"),
    TickState.INTERVENTION: ("ok", "operator takeover: following corft/intervention/command (chunks received, not "
                                   "executed)"),
}


def executor_status(state: TickState, active: bool, missing_joints: list[str],
                    deaf_topics: list[str]) -> tuple[str, str]:
    """(level "ok" | "warn", message) of the executor's diagnostics status."""
    if not active:
        return "ok", "inactive (lifecycle): commanding nothing"
    if deaf_topics:
        return "warn", f"no subscriber on {', '.join(deaf_topics)} (controller not loaded or inactive?)"
    level, message = _STATUS[state]
    if state is TickState.NO_STATE and missing_joints:
        message = f"no recent /joint_states for {', '.join(missing_joints)}: not commanding"
    return level, message


def executor_values(core: ChunkExecutor, state: TickState, active: bool, scheduling: str, output: str, controller: str,
                    chunk_age: float | None, report: dict[str, Any], outputs: list[tuple[str, str, int]],
                    missing_joints: list[str], last_error: str) -> dict[str, Any]:
    """The key/values of the executor's diagnostics status; `outputs`: (name, "kind topic", subscribers) of each."""
    values = {
        "lifecycle": "active" if active else "inactive",
        "state": state.value, "mode": core.config.mode, "output": output,
        "controller": controller, "estop": core.estopped, "loop_scheduling": scheduling,
        "newest_chunk_age_s": chunk_age if chunk_age is not None else "none",
        **report,
    }
    for name, described, subscribers in outputs:
        values[f"output.{name}"] = described
        values[f"output.{name}.subscribers"] = subscribers
    if missing_joints:
        values["joint_states_missing"] = ", ".join(missing_joints)
    if last_error:
        values["last_error"] = last_error
    return values


class ListenerWatch:
    """Outputs with no subscriber (controller not loaded or not configured): `update` returns them all, and which
    of them to warn about now (new ones, then every `repeat_s` while it lasts), so an uncommanded gripper is seen."""

    def __init__(self, repeat_s: float = 10.0) -> None:
        self.repeat_s = repeat_s
        self._warned: dict[str, float] = {}

    def update(self, subscribers: dict[str, int], now: float, warn: bool = True) -> tuple[list[str], list[str]]:
        deaf = [name for name, count in subscribers.items() if count <= 0]
        for name in list(self._warned):
            if name not in deaf:
                del self._warned[name]
        due = [name for name in deaf if warn and now - self._warned.get(name, -1e18) >= self.repeat_s]
        for name in due:
            self._warned[name] = now
        return deaf, due
