"""Controller-shaped command validation (core/commands.py): what the sim accepts is what ros2_control accepts."""

import numpy as np
import pytest

from corft_ros.core.commands import parse_trajectory
from corft_ros.core.robot import CommandError, load_robot_config
from corft_ros.core.sim.trajectory import TrajectoryFollower

ROBOT = load_robot_config()


def test_a_single_point_at_time_zero_is_valid_and_goes_there_at_once():
    """joint_trajectory_controller (Humble → Kilted) accepts one point with time_from_start 0; so does the sim."""
    home = np.array(ROBOT.home)
    target = home.copy()
    target[0] += 0.1
    command = parse_trajectory(ROBOT, ROBOT.joint_names, [0.0], [target.tolist()])
    follower = TrajectoryFollower(home)
    follower.set_trajectory(10.0, 0.0, command.times_from_start, command.positions, command.joint_indices)
    np.testing.assert_allclose(follower.sample(10.0), target)
    np.testing.assert_allclose(follower.sample(11.0), target)


def test_bad_trajectories_are_named():
    home = list(ROBOT.home)
    with pytest.raises(CommandError, match="time_from_start does not increase"):
        parse_trajectory(ROBOT, ROBOT.joint_names, [0.1, 0.1], [home, home])
    with pytest.raises(CommandError, match="unknown joint name 'tail'"):
        parse_trajectory(ROBOT, ["tail"], [0.1], [[0.0]])
    with pytest.raises(CommandError, match="points is empty"):
        parse_trajectory(ROBOT, ROBOT.joint_names, [], [])
