"""rclpy ↔ rosbags: message classes by type name, and QoS profiles as rosbags stores them per connection."""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

from rclpy.qos import QoSProfile
from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime

from corft_ros.core.episodes import TypeResolutionError
from corft_ros.core.episodes.typestore import normalize_msgtype


def message_class(msgtype: str) -> type:
    """Import the rclpy message class for 'pkg/msg/Name'; TypeResolutionError when it is not installed."""
    pkg, _, name = normalize_msgtype(msgtype).split("/")
    try:
        return getattr(importlib.import_module(f"{pkg}.msg"), name)
    except (ImportError, AttributeError):
        raise TypeResolutionError(
            f"message type '{msgtype}' is not installed (no Python module {pkg}.msg.{name})"
        ) from None


def _qtime(duration) -> QosTime:
    ns = int(getattr(duration, "nanoseconds", 0))
    return QosTime(sec=ns // 10**9, nsec=ns % 10**9)


def to_rosbags_qos(profile: QoSProfile) -> Qos:
    """rclpy QoS -> rosbags Qos (stored per connection, so `ros2 bag play` offers the same QoS)."""
    enum_or = {
        "history": (QosHistory, QosHistory.UNKNOWN),
        "reliability": (QosReliability, QosReliability.UNKNOWN),
        "durability": (QosDurability, QosDurability.UNKNOWN),
        "liveliness": (QosLiveliness, QosLiveliness.UNKNOWN),
    }

    def conv(field: str):
        enum, default = enum_or[field]
        try:
            return enum(int(getattr(profile, field)))
        except ValueError:
            return default

    return Qos(
        history=conv("history"),
        depth=int(profile.depth),
        reliability=conv("reliability"),
        durability=conv("durability"),
        deadline=_qtime(profile.deadline),
        lifespan=_qtime(profile.lifespan),
        liveliness=conv("liveliness"),
        liveliness_lease_duration=_qtime(profile.liveliness_lease_duration),
        avoid_ros_namespace_conventions=bool(profile.avoid_ros_namespace_conventions),
    )


def default_msg_search_paths() -> list[Path]:
    """share/ folders holding <pkg>/msg/*.msg: the ament prefixes plus this Python environment."""
    paths = [Path(p) / "share" for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p]
    paths.append(Path(sys.prefix) / "share")
    return paths
