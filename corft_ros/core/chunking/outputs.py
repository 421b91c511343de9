"""Where the executor's commands go: one or more ros2_control controllers, each with its own joints.

A real arm is often two controllers: the arm's joints under a joint_trajectory_controller (a UR driver's
`scaled_joint_trajectory_controller` rejects joints it does not control) and the gripper under a
forward_command_controller (or a gripper action controller fed by its own bridge). Each output names its kind,
its controller and its joints, in the controller's order; every robot joint goes to at most one output.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from corft_ros.core import topics
from corft_ros.core.robot import CommandError, ConfigError, RobotConfig

KINDS = ("forward", "jtc")
DEFAULT_CONTROLLERS = {"forward": topics.FORWARD_CONTROLLER, "jtc": topics.TRAJECTORY_CONTROLLER}


@dataclass(frozen=True)
class OutputSpec:
    name: str
    kind: str  # forward | jtc
    controller: str
    joints: tuple[str, ...]  # the controller's joint order
    index: tuple[int, ...]  # canonical (robot.yaml) index of each of `joints`

    @property
    def topic(self) -> str:
        """Relative: resolves inside the node's namespace, like the controller_manager's controllers."""
        if self.kind == "forward":
            return topics.controller_commands(self.controller)
        return topics.controller_trajectory(self.controller)


def make_outputs(robot: RobotConfig, specs: Sequence[tuple[str, str, str, Sequence[str]]]) -> list[OutputSpec]:
    """(name, kind, controller, joints) per output -> validated OutputSpecs; ConfigError names the bad field."""
    if not specs:
        raise ConfigError("outputs is empty: the executor needs at least one controller to command")
    out, owner = [], {}
    for name, kind, controller, joints in specs:
        if kind not in KINDS:
            raise ConfigError(f"{name}.kind must be one of {', '.join(KINDS)}, got {kind!r}")
        controller = (controller or DEFAULT_CONTROLLERS[kind]).strip("/")
        if not controller or any(part == "" for part in controller.split("/")):
            raise ConfigError(f"{name}.controller is not a valid controller name: {controller!r}")
        joints = [str(j) for j in joints]
        if not joints:
            raise ConfigError(f"{name}.joints is empty")
        try:
            index = tuple(int(i) for i in robot.index_of(joints))
        except CommandError as exc:
            raise ConfigError(f"{name}.joints: {exc}") from None
        for joint in joints:
            if joint in owner:
                raise ConfigError(f"joint '{joint}' is in outputs '{owner[joint]}' and '{name}': command it once")
            owner[joint] = name
        out.append(OutputSpec(name, kind, controller, tuple(joints), index))
    topics_seen = [o.topic for o in out]
    duplicate = next((t for t in topics_seen if topics_seen.count(t) > 1), None)
    if duplicate:
        raise ConfigError(f"two outputs publish on {duplicate}: give them different controllers")
    return out


def uncommanded(robot: RobotConfig, outputs: Sequence[OutputSpec]) -> list[str]:
    """Robot joints that no output commands (allowed, but worth a warning: they will never move)."""
    used = {j for o in outputs for j in o.joints}
    return [j for j in robot.joint_names if j not in used]


def waypoint_velocities(now_command: Sequence[float], plan: Sequence[tuple[float, Sequence[float]]]) -> np.ndarray:
    """Velocities for JTC waypoints so it interpolates with cubic splines instead of stopping at each point.

    `plan` is [(seconds ahead, positions)], starting after `now_command` (the command at t = 0). Interior points
    get the central difference of their neighbours (within the velocity limits when the path is: it averages two
    limited segments); the last point gets 0, so the arm comes to rest if no newer message arrives (Jazzy's JTC
    also refuses a non-zero final velocity unless allow_nonzero_velocity_at_trajectory_end)."""
    if not plan:
        return np.zeros((0, len(now_command)))
    times = np.array([0.0] + [t for t, _ in plan])
    points = np.vstack([np.asarray(now_command, dtype=np.float64)] + [np.asarray(p, dtype=np.float64) for _, p in plan])
    velocities = np.zeros_like(points)
    if len(points) > 2:
        velocities[1:-1] = (points[2:] - points[:-2]) / (times[2:] - times[:-2])[:, None]
    return velocities[1:]
