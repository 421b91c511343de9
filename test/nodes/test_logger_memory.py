"""The episode logger's process reuses large receive buffers (core/memory.py) instead of page-faulting each frame."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _faults_per_frame(mode: str, out: Path) -> float:
    proc = subprocess.run([sys.executable, str(HERE / "_rx_faults.py"), mode, str(out)], capture_output=True,
                          text=True, timeout=180)
    lines = [x for x in proc.stdout.splitlines() if x.startswith("{")]
    assert proc.returncode == 0 and lines, proc.stderr[-2000:]
    result = json.loads(lines[-1])
    assert result["faults_per_frame"] is not None, f"too few frames arrived: {result}"
    return result["faults_per_frame"]


def test_a_logger_process_receives_frames_without_page_faulting_each_one(tmp_path: Path) -> None:
    # The premise: a plain rclpy process maps and zero-fills fresh pages for every 921 kB frame it takes
    # (measured: ~640 minor faults per frame with glibc's defaults).
    plain = _faults_per_frame("plain", tmp_path)
    assert plain > 100, f"a plain raw subscriber took {plain:.1f} page faults per frame; the premise changed"
    # The fix: a process hosting an episode logger keeps freed frames for reuse (measured: ~0.05 per frame).
    logger = _faults_per_frame("logger", tmp_path)
    assert logger < 20, f"{logger:.1f} page faults per received frame in the logger's process (plain: {plain:.1f})"
