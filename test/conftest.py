"""Shared fixtures. The ROS harness isolates DDS per test session and spins nodes in the background."""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
import domains  # noqa: E402

# DDS isolation must be in the environment before rclpy initialises (and for child processes): this session's block of
# domains (test/domains.py).
domains.choose()
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def ros():
    """A live rclpy context with a background multi-threaded executor; nodes added to it spin."""
    # Imported here, not at the top: the test files that need no rclpy also run where there is none
    # (the Python 3.10 check, test/py310_check.py).
    from ros_harness import RosHarness

    harness = RosHarness()
    yield harness
    harness.shutdown()
