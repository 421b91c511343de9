"""Thin rclpy adapters: parameters, QoS, message conversion. Logic lives in corft_ros.core.

Imported first by every node's console script (`executor`, `policy`, …): until the node exists and `run_node`
installs its own stop handlers (core/process.StopSignals), a SIGINT or SIGTERM — `ros2 launch` stopping a graph
whose sibling failed at once, while this process still imports rclpy, torch or MuJoCo (seconds on a loaded
machine) — ends the process cleanly (exit 0) instead of with a KeyboardInterrupt traceback (exit -2).
"""

import signal
import sys
import threading
from pathlib import Path


def _stop_while_starting(signum, frame) -> None:  # noqa: ANN001 (signal handler signature)
    raise SystemExit(0)


def _started_as_a_node_script() -> bool:
    """True in a node's console script (argv[0] names a module of this package), never in a library user."""
    name = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else ""
    return bool(name) and not name.startswith("_") and (Path(__file__).parent / f"{name}.py").is_file()


# Each signal only where Python's default still stands: a SIGINT the parent ignored (`cmd &` in a script) stays ignored.
if _started_as_a_node_script() and threading.current_thread() is threading.main_thread():
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, _stop_while_starting)
    if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _stop_while_starting)
