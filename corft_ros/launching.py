"""launch_ros side of the one-YAML graphs (imported only by launch/*.launch.py, where ROS 2 is installed).

`corft-ros` builds the same node set from the same YAML with corft_ros.nodes.compose.ComposedGraph.

Every node is required: a node that exits while the graph runs (a bad parameter, a missing device, a crash) stops
the whole launch with one line naming it, and `ros2 launch` exits 1, instead of leaving a graph that half runs. A
node marked `finishes: true` in the YAML (the benchmark, the trainer) ends the launch when its job is done: with exit
code 0 when it succeeded, else 1 (upstream launch has no way to return a process's own code; the log line names it).
Exits during a shutdown (Ctrl-C) are the launch's own doing and change nothing.
"""

from __future__ import annotations

from corft_ros.core.graph import NodeSpec, launch_arguments, load_graph


def graph_launch_description(graph_name: str):
    """A LaunchDescription whose arguments and nodes come from config/<graph_name>.yaml."""
    from launch import LaunchDescription
    from launch.actions import DeclareLaunchArgument, OpaqueFunction, RegisterEventHandler
    from launch.event_handler import EventHandler
    from launch.substitutions import LaunchConfiguration
    from launch_ros.actions import Node

    arguments = launch_arguments(graph_name)

    def nodes(context, *args, **kwargs):
        values = {name: LaunchConfiguration(name).perform(context) for name in arguments}
        graph = load_graph(graph_name, values)
        return [
            Node(package="corft_ros", executable=spec.executable, name=spec.name, output="screen",
                 namespace=graph.namespace or None, parameters=[spec.parameters], on_exit=_on_exit(spec))
            for spec in graph.nodes
        ]

    declared = [DeclareLaunchArgument(a.name, default_value=a.default, description=a.description)
                for a in arguments.values()]
    fail = RegisterEventHandler(EventHandler(matcher=lambda event: isinstance(event, _graph_failed_type()),
                                             entities=[OpaqueFunction(function=_raise_graph_failed)]))
    return LaunchDescription([*declared, fail, OpaqueFunction(function=nodes)])


def _on_exit(spec: NodeSpec):
    """The node's exit handler: nothing while the launch shuts down; else stop the graph (and fail the launch unless
    the node finished its job with code 0)."""

    def handler(event, context):
        from launch.actions import EmitEvent, Shutdown

        if context.is_shutdown:
            return None
        code = event.returncode
        if spec.finishes and code == 0:
            return [Shutdown(reason=f"{spec.name} finished")]
        if spec.finishes:
            why = f"{spec.name} ended with exit code {code}"
        else:
            why = f"{spec.name} exited (code {code}) and the graph cannot run without it: stopping every node"
        return [Shutdown(reason=why), EmitEvent(event=_graph_failed_type()(why))]

    return handler


_GRAPH_FAILED = None


def _graph_failed_type():
    """launch.Event subclass emitted after the Shutdown of a failed graph; made on first use (launch is imported only
    where it is installed)."""
    global _GRAPH_FAILED
    if _GRAPH_FAILED is None:
        from launch import Event

        class GraphFailed(Event):
            name = "corft_ros.events.GraphFailed"

            def __init__(self, reason: str) -> None:
                super().__init__()
                self.reason = reason

        _GRAPH_FAILED = GraphFailed
    return _GRAPH_FAILED


class GraphFailedError(RuntimeError):
    """Raised inside the launch loop after a failed graph's Shutdown: upstream launch logs it and exits 1."""


def _raise_graph_failed(context, *args, **kwargs):
    raise GraphFailedError(context.locals.event.reason)
