"""The embedded sim arm alone: `ros2 launch corft_ros sim.launch.py [realtime:=false] [region:=unseen]`."""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node


def generate_launch_description() -> LaunchDescription:
    config = os.path.join(get_package_share_directory("corft_ros"), "config", "sim.yaml")
    return LaunchDescription(
        [
            DeclareLaunchArgument("realtime", default_value="true", description="false: as fast as possible"),
            DeclareLaunchArgument("region", default_value="seen", description="seen | unseen start positions"),
            DeclareLaunchArgument("seed", default_value="0", description="seed of the first reset"),
            Node(
                package="corft_ros",
                executable="sim_arm",
                name="sim_arm",
                output="screen",
                parameters=[
                    config,
                    {
                        "realtime": LaunchConfiguration("realtime"),
                        "region": LaunchConfiguration("region"),
                        "seed": LaunchConfiguration("seed"),
                    },
                ],
            ),
        ]
    )
