"""`ros2 launch corft_ros <graph>.launch.py` and `corft-ros launch <graph>` give every node the same parameters.

The launch files are evaluated with the real upstream `launch` / `launch_ros` code of the humble and jazzy
branches (../shared/tools/ros2_launch_eval.py: launch arguments, the OpaqueFunction, launch_ros's own
`evaluate_parameters`, i.e. everything `ros2 launch` does before it spawns processes). Before this test existed,
deploy/record/benchmark crashed there with their default arguments and dropped the YAML's instruction.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from corft_ros.core.graph import launch_arguments, load_graph, parse_launch_style_args
from corft_ros.core.params import flatten as flatten_parameters
from corft_ros.core.paths import share_dir

ROOT = share_dir()
SHARED = ROOT.parent / "shared"
EVAL = SHARED / "tools" / "ros2_launch_eval.py"
DISTROS = ("humble", "jazzy")


def _missing() -> str:
    if not EVAL.is_file():
        return f"no {EVAL} on this machine: the upstream launch evaluator lives beside the repository in ../shared"
    absent = [d for d in DISTROS if not (SHARED / "third_party" / d / "launch_ros").is_dir()]
    if absent:
        return f"no upstream launch_ros sources for {', '.join(absent)} in {SHARED / 'third_party'}"
    for module in ("osrf_pycommon", "lark"):
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed (pip install -r requirements.txt): the upstream launch code needs it"
    return ""


pytestmark = pytest.mark.skipif(bool(_missing()), reason=_missing() or "available")

# Default arguments, the real-arm case, and overrides of every kind of argument (lists, floats, bools, strings,
# node-set switches). Each graph only gets the cases whose arguments it declares.
CASES = (
    (),
    ("sim:=false",),
    ("cameras:=front", "instruction:=stack the red cube", "output:=jtc", "controller:=scaled_jtc", "mode:=open_loop",
     "model:=/opt/models/x", "realtime_factor:=2.5", "namespace:=left"),
    ("operator:=true", "regions:=seen,unseen", "trials:=3", "timeout:=12", "first_seed:=7"),
    ("source:=leader", "task:=put it on the plate", "seed:=3", "human_like:=false", "sim:=false"),
    ("region:=unseen", "seed:=5", "realtime_factor:=0"),
    ("stage:=il", "steps:=50", "bags:=/data/episodes"),
    ("intervention:=scripted",),
)
GRAPHS = sorted(p.name.removesuffix(".launch.py") for p in (ROOT / "launch").glob("*.launch.py"))


def _cases():
    for graph in GRAPHS:
        known = set(launch_arguments(graph))
        for args in CASES:
            if all(a.split(":=")[0] in known for a in args):
                for distro in DISTROS:
                    yield pytest.param(distro, graph, args, id=f"{distro}-{graph}-{'+'.join(args) or 'defaults'}")


def test_every_launch_file_is_covered_with_defaults_and_the_real_arm_case():
    ids = {(graph, args) for _, graph, args in (c.values for c in _cases())}
    for graph in GRAPHS:
        assert (graph, ()) in ids
        if "sim" in launch_arguments(graph):
            assert (graph, ("sim:=false",)) in ids


@pytest.mark.parametrize(("distro", "graph", "args"), list(_cases()))
def test_ros2_launch_gives_every_node_the_parameters_corft_ros_launch_gives(distro, graph, args):
    result = subprocess.run(
        [sys.executable, str(EVAL), "--distro", distro, str(ROOT / "launch" / f"{graph}.launch.py"), *args],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert result.stdout.strip(), f"the evaluator printed nothing: {result.stderr.strip()[-2000:]}"
    launched = json.loads(result.stdout)["nodes"]
    failed = {name: node["error"] for name, node in launched.items() if not node["ok"]}
    assert not failed, f"ros2 launch ({distro}) would crash: {failed}"
    assert result.returncode == 0, result.stderr[-2000:]

    composed = load_graph(graph, parse_launch_style_args(list(args)))  # what `corft-ros launch` instantiates
    assert list(launched) == [spec.name for spec in composed.nodes]
    for spec in composed.nodes:
        expected = flatten_parameters(spec.parameters)
        actual = launched[spec.name]["parameters"]
        differ = {k: (expected.get(k, "<absent>"), actual.get(k, "<absent>"))
                  for k in set(expected) | set(actual) if expected.get(k, "<absent>") != actual.get(k, "<absent>")}
        assert not differ, f"{spec.name}: corft-ros launch vs ros2 launch ({distro}): {differ}"


def test_the_instruction_of_the_yaml_reaches_the_nodes_under_ros2_launch():
    """The regression the issue found: `instruction` defaults to '' and used to overwrite the YAML's task."""
    for graph, node in (("deploy", "policy"), ("benchmark", "policy"), ("benchmark", "benchmark")):
        params = load_graph(graph, {name: arg.default for name, arg in launch_arguments(graph).items()})
        assert params.node(node).value("instruction"), (graph, node)
    record = load_graph("record", {name: arg.default for name, arg in launch_arguments("record").items()})
    assert record.node("sim_arm").value("instruction")
    assert record.node("sim_arm").value("cameras") == ["front", "wrist"]


def test_skip_reason_names_what_is_missing(monkeypatch, tmp_path):
    monkeypatch.setattr(sys.modules[__name__], "EVAL", Path(tmp_path / "nope.py"))
    assert "../shared" in _missing()


NAMESPACE_PROBE = """
import importlib.util, json, pathlib, sys
tool, distro, launch_file = sys.argv[1], sys.argv[2], sys.argv[3]
root = pathlib.Path(tool).resolve().parent.parent / "third_party" / distro
sys.path[:0] = [str(root / "launch"), str(root / "launch_ros"), str(pathlib.Path.cwd())]
spec = importlib.util.spec_from_file_location("evaluator", tool)
evaluator = importlib.util.module_from_spec(spec)
spec.loader.exec_module(evaluator)
evaluator._stand_in_composition_interfaces()
from launch import LaunchContext
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.utilities import perform_substitutions
from launch_ros.actions import Node
spec = importlib.util.spec_from_file_location("launch_file", launch_file)
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
context = LaunchContext()
for item in sys.argv[4:]:
    key, _, value = item.partition(":=")
    context.launch_configurations[key] = value
pending, out = list(module.generate_launch_description().entities), {}
while pending:
    entity = pending.pop(0)
    if isinstance(entity, Node):
        ns = entity._Node__node_namespace
        ns = "" if ns is None else ns
        out[entity._Node__node_name] = ns if isinstance(ns, str) else perform_substitutions(context, ns)
    elif isinstance(entity, (DeclareLaunchArgument, OpaqueFunction)):
        pending[:0] = list(entity.execute(context) or [])
print(json.dumps(out))
"""


@pytest.mark.parametrize("distro", DISTROS)
def test_the_namespace_argument_puts_every_node_in_it_under_ros2_launch_and_corft_ros_launch(distro):
    result = subprocess.run(
        [sys.executable, "-c", NAMESPACE_PROBE, str(EVAL), distro, str(ROOT / "launch" / "deploy.launch.py"),
         "namespace:=left"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    launched = json.loads(result.stdout)
    graph = load_graph("deploy", {"namespace": "left"})
    assert graph.namespace == "/left"
    assert launched == {spec.name: "/left" for spec in graph.nodes}
