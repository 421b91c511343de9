"""The robot description every node shares: joint names, limits and rates from config/robot.yaml."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from corft_ros.core.paths import config_path


class ConfigError(ValueError):
    """A configuration file or parameter is wrong; the message says which field and why."""


class CommandError(ValueError):
    """A joint command (names, sizes, values) is not acceptable; the message names the field."""


@dataclass(frozen=True)
class JointSpec:
    name: str
    lower: float
    upper: float
    max_velocity: float


@dataclass(frozen=True)
class RobotConfig:
    name: str
    joints: tuple[JointSpec, ...]
    action_rate_hz: float
    control_rate_hz: float
    joint_state_rate_hz: float
    home: tuple[float, ...]

    @property
    def joint_names(self) -> list[str]:
        return [j.name for j in self.joints]

    @property
    def dof(self) -> int:
        return len(self.joints)

    @property
    def lower(self) -> np.ndarray:
        return np.array([j.lower for j in self.joints], dtype=np.float64)

    @property
    def upper(self) -> np.ndarray:
        return np.array([j.upper for j in self.joints], dtype=np.float64)

    @property
    def max_velocity(self) -> np.ndarray:
        return np.array([j.max_velocity for j in self.joints], dtype=np.float64)

    @property
    def action_dt(self) -> float:
        return 1.0 / self.action_rate_hz

    @property
    def control_dt(self) -> float:
        return 1.0 / self.control_rate_hz

    @property
    def home_array(self) -> np.ndarray:
        return np.array(self.home, dtype=np.float64)

    def index_of(self, names: Sequence[str]) -> np.ndarray:
        """Canonical indices of `names`; CommandError names the first unknown or duplicated joint."""
        lookup = {n: i for i, n in enumerate(self.joint_names)}
        seen: set[str] = set()
        indices = []
        for name in names:
            if name not in lookup:
                raise CommandError(f"unknown joint name '{name}' (robot has {', '.join(self.joint_names)})")
            if name in seen:
                raise CommandError(f"joint name '{name}' appears twice")
            seen.add(name)
            indices.append(lookup[name])
        return np.array(indices, dtype=np.int64)

    def check_positions(self, values: Sequence[float], field: str = "positions") -> np.ndarray:
        """Validate a full joint vector in canonical order: length, finite, within position limits."""
        arr = np.asarray(values, dtype=np.float64)
        if arr.shape != (self.dof,):
            raise CommandError(f"{field} has {arr.size} values, expected {self.dof} ({', '.join(self.joint_names)})")
        check_finite(arr, self.joint_names, field)
        bad = np.nonzero((arr < self.lower - 1e-9) | (arr > self.upper + 1e-9))[0]
        if bad.size:
            i = int(bad[0])
            raise CommandError(
                f"{field}[{i}] ({self.joint_names[i]}) = {arr[i]:.4f} is outside the limits "
                f"[{self.lower[i]:.4f}, {self.upper[i]:.4f}]"
            )
        return arr


def check_finite(values: np.ndarray, names: Sequence[str], field: str) -> None:
    """Raise CommandError naming the first NaN/Inf entry."""
    bad = np.nonzero(~np.isfinite(values))[0]
    if bad.size:
        i = int(bad[0])
        label = names[i] if i < len(names) else str(i)
        raise CommandError(f"{field}[{i}] ({label}) is {values[i]} (NaN/Inf not allowed)")


def _positive(value: object, field: str) -> float:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ConfigError(f"{field} must be a number, got {value!r}") from None
    if not math.isfinite(number) or number <= 0:
        raise ConfigError(f"{field} must be a positive number, got {value!r}")
    return number


def robot_config_from_dict(data: dict, source: str = "robot config") -> RobotConfig:
    if not isinstance(data, dict) or "robot" not in data:
        raise ConfigError(f"{source}: missing top-level 'robot:' section")
    robot = data["robot"]
    joints_raw = robot.get("joints")
    if not joints_raw:
        raise ConfigError(f"{source}: robot.joints is empty")
    joints = []
    for i, joint in enumerate(joints_raw):
        try:
            spec = JointSpec(
                name=str(joint["name"]),
                lower=float(joint["lower"]),
                upper=float(joint["upper"]),
                max_velocity=_positive(joint["max_velocity"], f"{source}: robot.joints[{i}].max_velocity"),
            )
        except KeyError as exc:
            raise ConfigError(f"{source}: robot.joints[{i}] lacks field {exc}") from None
        if not spec.lower < spec.upper:
            raise ConfigError(f"{source}: robot.joints[{i}] ({spec.name}) has lower >= upper")
        joints.append(spec)
    names = [j.name for j in joints]
    if len(set(names)) != len(names):
        raise ConfigError(f"{source}: robot.joints has duplicate names")
    home = tuple(float(v) for v in robot.get("home", [0.5 * (j.lower + j.upper) for j in joints]))
    config = RobotConfig(
        name=str(robot.get("name", "robot")),
        joints=tuple(joints),
        action_rate_hz=_positive(robot.get("action_rate_hz"), f"{source}: robot.action_rate_hz"),
        control_rate_hz=_positive(robot.get("control_rate_hz"), f"{source}: robot.control_rate_hz"),
        joint_state_rate_hz=_positive(robot.get("joint_state_rate_hz"), f"{source}: robot.joint_state_rate_hz"),
        home=home,
    )
    try:
        config.check_positions(config.home, field="robot.home")
    except CommandError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    return config


def load_robot_config(path: str | Path | None = None) -> RobotConfig:
    """Load config/robot.yaml (or `path`)."""
    file = Path(path) if path else config_path("robot")
    if not file.is_file():
        raise ConfigError(f"robot config not found: {file}")
    with open(file) as f:
        data = yaml.safe_load(f)
    return robot_config_from_dict(data, source=str(file))
