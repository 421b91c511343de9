"""The real `ros2` CLI and colcon for the real-launch tests (test/cli/test_ros2_launch.py), in one folder.

    python test/ros2_tools.py [DEST]      (default .ros2-tools; `make ros2-tools`, part of `make test`)

- DEST/ros2: the upstream jazzy launch, launch_xml, launch_yaml, launch_ros, ros2launch, ros2cli (+ pkg, run, node,
  topic, param, service, lifecycle) and rosidl_runtime_py packages, with the composition_interfaces stand-in, from
  ../shared (none has a PyPI wheel): copied to a temporary folder first (../shared is read-only in CI and setuptools
  writes egg-info beside the sources), then `pip install --no-deps --no-build-isolation --target`. Installed, not
  only importable: ros2cli finds its verbs through the packages' entry points.
- DEST/colcon: colcon-common-extensions from PyPI, pinned in requirements-colcon.txt (--no-deps: the file is the
  closure). It stays out of .venv: colcon-core needs setuptools < 80 and brings pytest plugins.

Both are pure Python (cp311 wheels for the two compiled ones), so one folder serves every Python 3.11 venv (Kilted's
.venv, Jazzy's .venv-jazzy): a test runs `python DEST/ros2/bin/ros2 ...` with its own interpreter and
PYTHONPATH=DEST/ros2. Rebuilt when requirements-colcon.txt or ../shared's SOURCES.txt changes.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
JAZZY_PKGS = SHARED / "third_party" / "jazzy-pkgs"
STANDIN = SHARED / "tools" / "composition_interfaces_standin"
COLCON_REQUIREMENTS = ROOT / "requirements-colcon.txt"
DEFAULT_DEST = ROOT / ".ros2-tools"


def missing() -> str:
    """Why the real-launch tests cannot run here ('' when they can)."""
    if not JAZZY_PKGS.is_dir() or not STANDIN.is_dir():
        return (f"no upstream launch/ros2cli sources at {JAZZY_PKGS} (they live beside the repository in ../shared; "
                "ros2 launch has no PyPI wheel)")
    return ""


def _stamp() -> str:
    digest = hashlib.sha256(COLCON_REQUIREMENTS.read_bytes())
    sources = SHARED / "third_party" / "SOURCES.txt"
    digest.update(sources.read_bytes() if sources.is_file() else b"")
    digest.update(sorted(p.name for p in JAZZY_PKGS.iterdir()).__repr__().encode())
    return digest.hexdigest()


def _pip(*args: str) -> None:
    """pip install, quiet (setuptools' deprecation notices about the upstream setup.py files are not ours)."""
    result = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check",
                             "--no-cache-dir", "--no-deps", *args], capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"pip install {' '.join(args[-3:])} failed:\n{result.stdout[-3000:]}{result.stderr[-3000:]}")


def build(dest: Path = DEFAULT_DEST) -> Path:
    """Build DEST (idempotent; rebuilt when its inputs change) and return it. Raises RuntimeError when ../shared is
    absent."""
    reason = missing()
    if reason:
        raise RuntimeError(reason)
    dest = Path(dest)
    stamp = dest / ".installed"
    if stamp.is_file() and stamp.read_text() == _stamp():
        return dest
    if dest.exists():
        shutil.rmtree(dest)
    staging = Path(tempfile.mkdtemp(prefix="ros2-tools-", dir=dest.parent))
    try:
        with tempfile.TemporaryDirectory(prefix="ros2-sources-") as tmp:
            folders = []
            for src in [*sorted(p for p in JAZZY_PKGS.iterdir() if (p / "setup.py").is_file()), STANDIN]:
                folders.append(str(shutil.copytree(src, Path(tmp) / src.name)))
            _pip("--no-build-isolation", "--target", str(staging / "ros2"), *folders)
        _pip("--target", str(staging / "colcon"), "-r", str(COLCON_REQUIREMENTS))
        (staging / ".installed").write_text(_stamp())
        staging.rename(dest)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return dest


if __name__ == "__main__":
    reason = missing()
    if reason:
        print(f"ros2-tools: skipped: {reason}; the real-launch tests will skip")
        raise SystemExit(0)
    print(f"ros2-tools: {build(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_DEST)}")
