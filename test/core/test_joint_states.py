"""JointStateCache: /joint_states split over several publishers (arm driver + gripper driver)."""

import numpy as np
import pytest

from corft_ros.core.joint_states import JointStateCache, JointStateError

JOINTS = ["a1", "a2", "a3", "finger"]


def test_two_publishers_complete_the_robot_and_unknown_joints_are_ignored():
    cache = JointStateCache(JOINTS, max_age=0.5)
    assert cache.snapshot(10.0) is None and cache.missing(10.0) == JOINTS
    assert cache.update(["a3", "a1", "a2", "elbow_extra"], [3.0, 1.0, 2.0, 9.0], stamp=10.0) == 3
    assert cache.snapshot(10.0) is None and cache.missing(10.0) == ["finger"]
    assert cache.update(["finger"], [0.4], stamp=10.1) == 1
    snap = cache.snapshot(10.2)
    np.testing.assert_array_equal(snap.positions, [1.0, 2.0, 3.0, 0.4])
    assert (snap.oldest, snap.newest) == (10.0, 10.1)
    assert len(cache.sources) == 2


def test_a_joint_older_than_the_age_limit_counts_as_missing():
    cache = JointStateCache(JOINTS, max_age=0.5)
    cache.update(["a1", "a2", "a3"], [0.0, 0.0, 0.0], stamp=1.0)
    cache.update(["finger"], [0.1], stamp=0.2)  # the gripper driver stopped long ago
    assert cache.missing(1.0) == ["finger"]
    assert cache.snapshot(1.0) is None
    assert JointStateCache(JOINTS, max_age=0.0).missing(1.0) == JOINTS  # no limit, but no values either


def test_bad_messages_store_nothing_and_say_why():
    cache = JointStateCache(JOINTS)
    cache.update(JOINTS, [0.0, 0.0, 0.0, 0.0], stamp=1.0)
    with pytest.raises(JointStateError, match="2 names but 1 positions"):
        cache.update(["a1", "a2"], [5.0], stamp=2.0)
    with pytest.raises(JointStateError, match="joint 'a2' position is nan"):
        cache.update(["a1", "a2"], [5.0, float("nan")], stamp=2.0)
    np.testing.assert_array_equal(cache.snapshot().positions, [0.0, 0.0, 0.0, 0.0])
