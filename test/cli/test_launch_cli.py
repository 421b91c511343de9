"""`corft-ros launch <graph>`: the one-process twin of `ros2 launch` ends like it: a graph whose finishing node (the
benchmark) is done stops by itself with that node's exit code, and SIGINT/SIGTERM stop it with 0."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import domains

from corft_ros.core.trials.report import read_trials_csv

CLI = Path(sys.executable).parent / "corft-ros"




def test_corft_ros_launch_benchmark_ends_when_the_benchmark_is_done(tmp_path: Path) -> None:
    report = tmp_path / "report"
    run = subprocess.run([str(CLI), "launch", "benchmark", "trials:=1", "timeout:=2.0", "realtime_factor:=0",
                          f"report:={report}", f"output_dir:={tmp_path / 'episodes'}"],
                         capture_output=True, text=True, timeout=150, env=domains.own_env(5), cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "benchmark finished (exit code 0); stopping the graph" in run.stderr
    assert len(read_trials_csv(report / "trials.csv")) == 1


def test_corft_ros_launch_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    """SIGTERM (a service manager's stop) once killed the process outright (exit -15, nothing closed)."""
    proc = subprocess.Popen([str(CLI), "launch", "sim"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env=domains.own_env(6), cwd=tmp_path)
    try:
        line = proc.stderr.readline()  # printed once every node is built and spinning
        assert "sim: running sim_arm" in line, line
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
