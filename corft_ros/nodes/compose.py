"""Run a graph from config/<graph>.yaml in one process (rclpy executor composition): what `ros2 launch` does
on a machine with ROS 2, for machines with only the rclpy wheels."""

from __future__ import annotations

import importlib
import inspect
import threading

import rclpy
from rclpy.exceptions import InvalidParameterTypeException
from rclpy.node import Node
from rclpy.parameter import Parameter

from corft_ros.core.graph import Graph
from corft_ros.core.params import flatten
from corft_ros.core.robot import ConfigError
from corft_ros.nodes.common import make_executor, spin


def node_class(executable: str) -> type[Node]:
    """The rclpy Node subclass defined in corft_ros.nodes.<executable> (the console script of the same name)."""
    try:
        module = importlib.import_module(f"corft_ros.nodes.{executable}")
    except ModuleNotFoundError as exc:
        raise ConfigError(f"no node '{executable}' in corft_ros.nodes ({exc})") from None
    classes = [
        obj for obj in vars(module).values()
        if inspect.isclass(obj) and issubclass(obj, Node) and obj is not Node and obj.__module__ == module.__name__
    ]
    if len(classes) != 1:
        raise ConfigError(f"corft_ros.nodes.{executable} defines {len(classes)} Node classes, expected exactly one")
    return classes[0]


def parameter_overrides(parameters: dict) -> list[Parameter]:
    return [Parameter(name, value=value) for name, value in flatten(parameters).items()]


class ComposedGraph:
    """Instantiates every node of a resolved graph in one rclpy context and spins them in the background."""

    def __init__(self, graph: Graph, context: rclpy.Context | None = None, threads: int = 6) -> None:
        self.graph = graph
        self._own_context = context is None
        self.context = context or rclpy.Context()
        if self._own_context:
            rclpy.init(args=[], context=self.context)
        self.nodes: dict[str, Node] = {}
        try:
            for spec in graph.nodes:
                cls = node_class(spec.executable)
                try:
                    self.nodes[spec.name] = cls(context=self.context,
                                                parameter_overrides=parameter_overrides(spec.parameters),
                                                cli_args=["--ros-args", "-r", f"__node:={spec.name}",
                                                          *(["-r", f"__ns:={graph.namespace}"]
                                                            if graph.namespace else [])])
                except InvalidParameterTypeException as exc:
                    hint = "write floats with a decimal point"
                    raise ConfigError(f"{graph.source.name}: {spec.name}: {exc} ({hint})") from None
        except Exception:
            self.shutdown()
            raise
        self.executor = make_executor(self.context, threads)
        for node in self.nodes.values():
            self.executor.add_node(node)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._spin, name=f"graph-{graph.name}", daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        spin(self.executor, self.context, self._stop)

    def finished(self) -> tuple[str, int] | None:
        """(name, exit code) of the first node marked `finishes` in the graph's YAML whose job is done (its `finished`
        event set, with `shutdown_when_done`): the graph ends then, as under `ros2 launch`. None while none is."""
        for spec in self.graph.nodes:
            node = self.nodes.get(spec.name)
            done = getattr(node, "finished", None)
            if spec.finishes and done is not None and done.is_set() and getattr(node, "shutdown_when_done", True):
                return spec.name, int(getattr(node, "rc", 0))
        return None

    def shutdown(self) -> None:
        stop = getattr(self, "_stop", None)
        if stop is not None:
            stop.set()
            self._thread.join(timeout=5.0)
        for node in reversed(list(self.nodes.values())):
            try:
                if hasattr(self, "executor"):
                    self.executor.remove_node(node)
                node.destroy_node()
            except Exception as exc:  # keep tearing the rest down
                print(f"warning: {node.get_name()} did not shut down cleanly: {exc}")
        self.nodes.clear()
        if hasattr(self, "executor"):
            self.executor.shutdown(timeout_sec=1.0)
        if self._own_context:
            rclpy.try_shutdown(context=self.context)

    def __enter__(self) -> ComposedGraph:
        return self

    def __exit__(self, *exc) -> None:
        self.shutdown()
