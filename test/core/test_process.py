"""How a node process stops (core/process.py), in real processes and real signals, without ROS: one stop for a
terminal's double SIGINT, launch's SIGTERM escalation dumps the stacks, nothing after `finished()`, and a node started
by `ros2 launch`/`ros2 run` ends with it."""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from processes import alive

from corft_ros.core.process import launcher_of

ROOT = Path(__file__).resolve().parents[2]

# A stand-in for a node's main(): StopSignals installed, "ready", then wait for the stop; close takes CLOSE_S.
NODE = textwrap.dedent("""
    import sys, time
    from corft_ros.core.process import StopSignals, end_with_launcher
    stop = StopSignals().install()
    print("launcher:", end_with_launcher() or "-", flush=True)
    print("ready", flush=True)
    stop.event.wait()
    print("stopping on", stop.received, flush=True)
    time.sleep(float(sys.argv[1]))  # close()
    stop.finished()
    print("closed", flush=True)
    time.sleep(float(sys.argv[2]))  # the rest of the exit
""")


def start(close_s: float, exit_s: float = 0.0, launcher: list[str] | None = None) -> subprocess.Popen:
    cmd = [sys.executable, "-c", NODE, str(close_s), str(exit_s)]
    proc = subprocess.Popen(launcher + cmd if launcher else cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=ROOT)
    return proc


def wait_line(proc: subprocess.Popen, text: str, timeout: float = 60.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if text in line:
            return line
        if not line and proc.poll() is not None:
            break
    err = proc.stderr.read()[-2000:] if proc.stderr else ""
    raise AssertionError(f"'{text}' never printed (exit {proc.poll()}): {err}")


def test_a_terminals_double_sigint_stops_once_and_exits_zero():
    proc = start(close_s=0.5, exit_s=0.5)
    wait_line(proc, "ready")
    proc.send_signal(signal.SIGINT)  # the terminal's
    wait_line(proc, "stopping on SIGINT")
    proc.send_signal(signal.SIGINT)  # launch's own, while closing
    wait_line(proc, "closed")
    proc.send_signal(signal.SIGINT)  # and one more while the interpreter exits: ignored, not a -2 death
    assert proc.wait(timeout=30) == 0, proc.stderr.read()


def test_launchs_sigterm_escalation_dumps_the_stacks_and_ends_a_hung_shutdown():
    proc = start(close_s=60.0)
    wait_line(proc, "ready")
    proc.send_signal(signal.SIGINT)
    wait_line(proc, "stopping on SIGINT")
    proc.send_signal(signal.SIGTERM)  # launch: still running 5 s after SIGINT
    assert proc.wait(timeout=30) == 1
    err = proc.stderr.read()
    assert "Current thread" in err or "Thread 0x" in err, err  # faulthandler's dump: where it hung
    assert "still shutting down 5 s after SIGINT" in err


def test_a_first_sigterm_is_an_ordinary_stop():
    proc = start(close_s=0.2)
    wait_line(proc, "ready")
    proc.send_signal(signal.SIGTERM)
    wait_line(proc, "stopping on SIGTERM")
    assert proc.wait(timeout=30) == 0


def test_a_node_started_by_ros2_launch_or_run_ends_with_it(tmp_path):
    """The launcher here is a script named `ros2` run as `ros2 launch ...` / `ros2 run ...` (what launcher_of looks
    for); it starts the node and is then killed outright, as `ros2 launch` leaves on SIGTERM."""
    ros2 = tmp_path / "ros2"
    ros2.write_text("import subprocess, sys, time\n"
                    "child = subprocess.Popen(sys.argv[3:])\n"
                    "print(child.pid, flush=True)\n"
                    "time.sleep(600)\n")
    for verb in ("launch", "run"):
        launcher = subprocess.Popen([sys.executable, str(ros2), verb, "corft_ros", sys.executable, "-c", NODE, "0.2",
                                     "0"], stdout=subprocess.PIPE, text=True, cwd=ROOT)
        node_pid = int(launcher.stdout.readline())
        assert f"launcher: {verb}" in wait_line(launcher, "launcher:")  # the node found its launcher and asked
        assert launcher_of(launcher.pid) == verb
        launcher.kill()
        launcher.wait(timeout=10)
        deadline = time.monotonic() + 30
        while alive(node_pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not alive(node_pid), f"the node outlived `ros2 {verb}`"
    assert launcher_of(os.getpid()) == ""  # pytest is no launcher


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
def test_a_node_script_stopped_while_it_still_imports_exits_cleanly(tmp_path, sig):
    """`ros2 launch` may stop a node while it still imports rclpy (a sibling failed at once): its console script
    exits 0 ("finished cleanly"), not -2 with a KeyboardInterrupt traceback. Any other program keeps Python's
    default (a library user's Ctrl-C)."""
    code = textwrap.dedent(f"""
        import os, signal, sys, time
        sys.argv[0] = sys.argv[1]
        import corft_ros.nodes
        os.kill(os.getpid(), signal.{sig})
        time.sleep(30)   # still "importing": never reached
        sys.exit(3)
    """)
    # as launch starts a node: SIGINT at its default, whatever this test runner inherited (a runner started with
    # `cmd &` from a script ignores SIGINT, and so would its children)
    default_sigint = functools.partial(signal.signal, signal.SIGINT, signal.SIG_DFL)
    node = subprocess.run([sys.executable, "-c", code, "/opt/ros/lib/corft_ros/executor"], capture_output=True,
                          text=True, timeout=60, preexec_fn=default_sigint)
    assert node.returncode == 0 and "KeyboardInterrupt" not in node.stderr, node.stderr
    other = subprocess.run([sys.executable, "-c", code, "my_tool"], capture_output=True, text=True, timeout=60,
                           preexec_fn=default_sigint)
    assert other.returncode != 0 and (sig == "SIGTERM" or "KeyboardInterrupt" in other.stderr)
    if sig == "SIGTERM":  # a node whose parent ignores SIGINT still ends cleanly on SIGTERM
        ignoring = subprocess.run([sys.executable, "-c", code, "/opt/ros/lib/corft_ros/executor"],
                                  capture_output=True, text=True, timeout=60,
                                  preexec_fn=functools.partial(signal.signal, signal.SIGINT, signal.SIG_IGN))
        assert ignoring.returncode == 0, ignoring.stderr
