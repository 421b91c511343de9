"""Whether the policy node's newest inputs are fresh enough for an inference, and if not, the one line that says
why (the node publishes no chunk and reports it). No ROS here: times are seconds on the node's clock."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class InputProblem:
    message: str
    level: str  # "warn": waiting for an input; "error": an input arrived but is unusable
    camera: str = ""  # the camera that was missing or stale ('' = not a camera)


def input_problem(now: float, max_age: float, *, instruction: str | None, instruction_error: str | None,
                  instruction_topic: str, joints_ok: bool, missing_joints: Sequence[str],
                  never_received: set[str], joint_stamps: Mapping[str, float], joint_error: str | None,
                  joint_topic: str, camera_stamps: Mapping[str, float | None],
                  camera_topics: Mapping[str, str]) -> InputProblem | None:
    """The first reason not to infer now, or None when every input is there and fresh.

    `joint_error`: the last rejected /joint_states message, when it is recent (it explains missing joints better
    than their age). `camera_stamps`: each camera's newest image stamp (None: none yet); older than `max_age`
    counts as missing, as the joints do."""
    if instruction is None:
        if instruction_error is not None:
            return InputProblem(f"no usable instruction: {instruction_error}", "error")
        return InputProblem(f"waiting for an instruction on {instruction_topic}", "warn")
    if not joints_ok:
        if joint_error is not None:
            return InputProblem(f"no usable joint states: {joint_error}", "error")

        def why(name: str) -> str:
            if name in never_received:
                return f"{name} (never received)"
            return f"{name} ({now - joint_stamps[name]:.2f}s old)"

        return InputProblem(f"joints missing on {joint_topic}: {', '.join(why(j) for j in missing_joints)}", "warn")
    for name, stamp in camera_stamps.items():
        if stamp is None or now - stamp > max_age:
            why = "no image yet" if stamp is None else f"image is {now - stamp:.2f}s old"
            return InputProblem(f"camera '{name}' missing ({why} on {camera_topics[name]})", "warn", camera=name)
    return None
