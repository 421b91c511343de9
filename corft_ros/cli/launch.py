"""`corft-ros launch <graph> [name:=value ...]`: what `ros2 launch corft_ros <graph>.launch.py` does, in one
process, from the same config/<graph>.yaml (for machines with only the ROS 2 wheels)."""

from __future__ import annotations

import argparse
import sys
import time


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("launch", help="run a node graph from config/<graph>.yaml until Ctrl-C (or until "
                                                "its finishing node is done: benchmark, train)")
    parser.add_argument("graph", help="graph name (sim, deploy, record, ...) or a YAML path")
    parser.add_argument("arguments", nargs="*", help="launch arguments as name:=value")
    parser.add_argument("--duration", type=float, default=0.0, help="stop after this many seconds (0 = run)")
    parser.set_defaults(func=run_launch)


def run_launch(args: argparse.Namespace) -> int:
    """Run until SIGINT/SIGTERM, --duration, or a node marked `finishes` is done (then its exit code)."""
    from corft_ros.core.graph import load_graph, parse_launch_style_args
    from corft_ros.core.process import StopSignals
    from corft_ros.core.robot import ConfigError
    from corft_ros.nodes.compose import ComposedGraph

    with StopSignals() as stop:
        try:
            graph = load_graph(args.graph, parse_launch_style_args(args.arguments))
            composed = ComposedGraph(graph)
        except ConfigError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        print(f"{graph.name}: running {', '.join(composed.nodes)} ({graph.source}); Ctrl-C stops", file=sys.stderr)
        start, code = time.monotonic(), 0
        try:
            while not stop.event.is_set() and (args.duration <= 0 or time.monotonic() - start < args.duration):
                done = composed.finished()
                if done is not None:
                    name, code = done
                    print(f"{graph.name}: {name} finished (exit code {code}); stopping the graph", file=sys.stderr)
                    break
                stop.event.wait(0.2)
        finally:
            composed.shutdown()
        return code
