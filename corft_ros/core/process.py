"""How a corft_ros node process stops: on SIGINT or SIGTERM, once, cleanly; and never outliving the `ros2 launch` or
`ros2 run` that started it.

- Ctrl-C in a terminal sends SIGINT to the whole foreground process group: `ros2 launch` *and* every node; launch
  then sends each node a second SIGINT (and SIGTERM 5 s later if it is still running). rclpy's own handlers shut
  the context down at the first signal and raise KeyboardInterrupt at the next one, wherever the main thread is:
  measured here with `ros2 launch corft_ros deploy.launch.py` and SIGINT to the process group, policy and executor
  aborted inside rclpy (`pybind11::error_already_set`, exit -6) and sim_arm died in its close (-2). `StopSignals`
  replaces them: the first SIGINT/SIGTERM sets an event (the node's spin loop ends, close() runs with the context
  still up, so the executor can still send its hold command), a repeated SIGINT is ignored (SIG_IGN: also while the
  interpreter finalizes, where CPython puts a Python-handled signal back to its default, so a late second SIGINT
  killed an already closed node with -2, measured under load). Launch escalates to SIGTERM when a node is still
  running 5 s after its SIGINT: that SIGTERM first dumps every thread's stack (faulthandler, from C, so also when the
  main thread is stuck in C code), then ends the process, so a shutdown that hangs says where.
- Upstream `ros2 launch` exits on SIGTERM without stopping its nodes, and a SIGTERM'd `ros2 run` leaves its node
  running. `end_with_launcher()` asks Linux to send the node SIGTERM when the `ros2 launch`/`ros2 run` process that
  started it ends (prctl PR_SET_PDEATHSIG), so such a stop also closes every node cleanly. A node started any other
  way (a shell, systemd, a test) is left alone.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import faulthandler
import os
import signal
import sys
import threading
from pathlib import Path

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
PR_SET_PDEATHSIG = 1
LAUNCHER_VERBS = ("launch", "run")


class StopSignals:
    """SIGINT/SIGTERM set `event` (the first one; `received` names it) instead of raising KeyboardInterrupt or
    killing the process. Install from the main thread; `restore()` puts the previous handlers back."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.received = ""
        self._previous: dict[int, object] = {}

    def install(self) -> StopSignals:
        for sig in STOP_SIGNALS:
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def restore(self) -> None:
        with contextlib.suppress(RuntimeError, ValueError):
            faulthandler.unregister(signal.SIGTERM)
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def _handle(self, signum: int, frame) -> None:
        if not self.event.is_set():
            self.received = signal.Signals(signum).name
            self.event.set()
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # the terminal's SIGINT and launch's own: one stop
            if signum == signal.SIGINT:
                faulthandler.register(signal.SIGTERM, file=sys.stderr, all_threads=True, chain=True)
            return
        if signum == signal.SIGTERM and self.received == "SIGINT":
            # launch's escalation: still closing 5 s after SIGINT (the stacks were dumped just before, from C)
            sys.stderr.write("error: still shutting down 5 s after SIGINT (stacks above); exiting now\n")
            sys.stderr.flush()
            os._exit(1)

    def finished(self) -> None:
        """The process is about to exit: every later stop signal is ignored (a signal arriving while the interpreter
        finalizes would otherwise meet CPython's restored default action)."""
        with contextlib.suppress(RuntimeError, ValueError):
            faulthandler.unregister(signal.SIGTERM)
        for sig in STOP_SIGNALS:
            signal.signal(sig, signal.SIG_IGN)

    def __enter__(self) -> StopSignals:
        return self.install()

    def __exit__(self, *exc) -> None:
        self.restore()


def launcher_of(ppid: int) -> str:
    """'launch' or 'run' when process `ppid` is `ros2 launch` / `ros2 run` (its command line holds the `ros2` script
    followed by that verb), else ''."""
    try:
        argv = [a.decode(errors="replace") for a in Path(f"/proc/{ppid}/cmdline").read_bytes().split(b"\0") if a]
    except OSError:
        return ""
    for i, word in enumerate(argv[:3]):  # `ros2 launch ...` or `python3 /opt/ros/jazzy/bin/ros2 launch ...`
        if os.path.basename(word) == "ros2" and i + 1 < len(argv) and argv[i + 1] in LAUNCHER_VERBS:
            return argv[i + 1]
    return ""


def end_with_launcher(sig: int = signal.SIGTERM) -> str:
    """When this process was started by `ros2 launch` or `ros2 run`, have Linux send it `sig` when that process ends.
    Returns the launcher's verb ('launch'/'run') or '' (nothing done: another parent, or not Linux)."""
    if not sys.platform.startswith("linux"):
        return ""
    ppid = os.getppid()
    verb = launcher_of(ppid)
    if not verb:
        return ""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
            return ""
    except (OSError, AttributeError):
        return ""
    if os.getppid() != ppid:  # the launcher ended before the request took effect
        os.kill(os.getpid(), sig)
    return verb
