"""The Python 3.10 check (ROS 2 Humble's Python). `make test-py310` (part of `make test`) runs it in `.venv310`,
built with python3.10 from requirements-py310.txt: no ROS there, real torch/numpy/rosbags/MuJoCo/ONNX Runtime.

1. Every .py file of the package, its launch files and tests compiles under this Python (the nodes too: they need
   rclpy to import, so here they are only compiled).
2. Every module of corft_ros.core imports (walked, none skipped).
3. pytest runs every test file that needs no rclpy: all of test/**/test_*.py except those that import rclpy, a ROS
   message package, launch, ros_harness or corft_ros.nodes, or take the `ros` fixture (found by reading their
   source), and those in NOT_HERE (ROS nodes started another way; two slow ones whose code the others cover).

Usage: python test/py310_check.py [extra pytest arguments]
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import os
import pkgutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TEST_DIR = ROOT / "test"

# Imports that mean a test file needs ROS (module roots, or a prefix of a dotted name).
ROS_IMPORTS = ("rclpy", "ros_harness", "launch", "launch_ros", "ament_index_python", "rosidl_runtime_py",
               "builtin_interfaces", "diagnostic_msgs", "geometry_msgs", "rcl_interfaces", "rosgraph_msgs",
               "sensor_msgs", "std_msgs", "std_srvs", "trajectory_msgs", "lifecycle_msgs", "corft_ros.nodes",
               "corft_ros.launching", "test_executor_node")
# Test files that import none of those but do not run here: why. A new test file that starts ROS nodes without
# importing rclpy (a CLI command, a subprocess) goes here; every other test file runs here by default.
NOT_HERE = {
    "test_demo.py": "`corft-ros demo` runs the deploy graph (rclpy nodes)",
    "test_soak.py": "`corft-ros measure soak` runs the deploy graph (rclpy nodes)",
    "test_record.py": "`corft-ros record` runs the record graph (rclpy nodes)",
    "test_launch_cli.py": "`corft-ros launch` runs graphs (rclpy nodes)",
    "test_lerobot.py": "`corft-ros record` runs the record graph (rclpy nodes); export/import need av and pyarrow, "
                       "which the Humble check's venv does not pin",
    "test_logger_memory.py": "receives frames in an rclpy subprocess (test/nodes/_rx_faults.py)",
    "test_transport_bench.py": "`corft-ros measure transport` publishes images from an rclpy process",
    "test_launch_parity.py": "evaluates launch files with the upstream launch code, whose dependencies "
                             "(osrf_pycommon, lark) are in .venv only",
    # Time (make test stays near 10 minutes): the code they run is run here by the other files too.
    "test_ddp.py": "time: two torchrun processes (~20 s); the trainer runs in test_il.py and test_learners.py",
    "test_safety_property.py": "time: hypothesis examples (~20 s); the same executor runs in test_chunking.py",
}


def ros_imports(path: Path) -> list[str]:
    """What in this test file needs ROS: imported ROS modules and a `ros` fixture argument ([] when nothing)."""
    tree = ast.parse(path.read_text(), str(path))
    found = []
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and "ros" in [a.arg for a in node.args.args]:
            found.append(f"{node.name}(ros)")
        found += [n for n in names if any(n == r or n.startswith(r + ".") for r in ROS_IMPORTS)
                  or n.split(".")[0].endswith(("_msgs", "_srvs"))]
    return sorted(set(found))


def select_tests() -> tuple[list[Path], dict[str, str]]:
    """(the test files to run here, {skipped file: why})."""
    run, skipped = [], {}
    for path in sorted(TEST_DIR.rglob("test_*.py")):
        needs = ros_imports(path)
        if needs:
            skipped[path.name] = "needs " + ", ".join(needs[:3]) + (" ..." if len(needs) > 3 else "")
        elif path.name in NOT_HERE:
            skipped[path.name] = NOT_HERE[path.name]
        else:
            run.append(path)
    return run, skipped


def compile_all() -> int:
    files = [ROOT / "setup.py", *sorted((ROOT / "corft_ros").rglob("*.py")), *sorted((ROOT / "launch").glob("*.py")),
             *sorted(TEST_DIR.rglob("*.py"))]
    for path in files:
        compile(path.read_text(), str(path), "exec", dont_inherit=True)
    return len(files)


def import_core() -> list[str]:
    import corft_ros.core

    def fail(name: str) -> None:
        raise ImportError(f"cannot import {name}")

    names = []
    for info in pkgutil.walk_packages(corft_ros.core.__path__, "corft_ros.core.", onerror=fail):
        importlib.import_module(info.name)
        names.append(info.name)
    return names


def main(argv: list[str]) -> int:
    # The checkout is the package (no install into this venv); child processes of the tests import it too.
    sys.path.insert(0, str(ROOT))
    os.environ["PYTHONPATH"] = str(ROOT)
    version = ".".join(map(str, sys.version_info[:3]))
    print(f"py310 check: Python {version} ({sys.executable})")
    if sys.version_info[:2] != (3, 10):
        print("py310 check: this is not Python 3.10", file=sys.stderr)
        return 2
    print(f"py310 check: {compile_all()} files compile")
    import numpy
    import torch

    modules = import_core()
    rclpy = importlib.util.find_spec("rclpy") is not None
    print(f"py310 check: all {len(modules)} modules of corft_ros.core import (torch {torch.__version__}, "
          f"numpy {numpy.__version__}; rclpy {'importable' if rclpy else 'absent'})")
    run, skipped = select_tests()
    for name, why in skipped.items():
        print(f"py310 check: not run here: {name}: {why}")
    print(f"py310 check: pytest on {len(run)} test files: {' '.join(p.name for p in run)}", flush=True)
    import pytest

    return int(pytest.main(["-q", "-p", "no:cacheprovider", "--rootdir", str(ROOT), *map(str, run), *argv]))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
