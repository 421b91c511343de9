"""Shared fixtures. The ROS harness isolates DDS per test session and spins nodes in the background."""

from __future__ import annotations

import os
import random

# DDS isolation must be in the environment before rclpy initialises (and for child processes).
os.environ["ROS_DOMAIN_ID"] = str(random.SystemRandom().randint(1, 200))
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest  # noqa: E402
from ros_harness import RosHarness  # noqa: E402


@pytest.fixture(scope="session")
def ros():
    """A live rclpy context with a background multi-threaded executor; nodes added to it spin."""
    harness = RosHarness()
    yield harness
    harness.shutdown()
