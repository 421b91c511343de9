"""launch_ros side of the one-YAML graphs (imported only by launch/*.launch.py, where ROS 2 is installed).

`corft-ros` builds the same node set from the same YAML with corft_ros.nodes.compose.ComposedGraph.
"""

from __future__ import annotations

from corft_ros.core.graph import launch_arguments, load_graph


def graph_launch_description(graph_name: str):
    """A LaunchDescription whose arguments and nodes come from config/<graph_name>.yaml."""
    from launch import LaunchDescription
    from launch.actions import DeclareLaunchArgument, OpaqueFunction
    from launch.substitutions import LaunchConfiguration
    from launch_ros.actions import Node

    arguments = launch_arguments(graph_name)

    def nodes(context, *args, **kwargs):
        values = {name: LaunchConfiguration(name).perform(context) for name in arguments}
        graph = load_graph(graph_name, values)
        return [
            Node(package="corft_ros", executable=spec.executable, name=spec.name, output="screen",
                 namespace=graph.namespace or None, parameters=[spec.parameters])
            for spec in graph.nodes
        ]

    declared = [DeclareLaunchArgument(a.name, default_value=a.default, description=a.description)
                for a in arguments.values()]
    return LaunchDescription([*declared, OpaqueFunction(function=nodes)])
