"""One YAML per graph: launch files and `corft-ros` take their node set and parameters from the same file."""

import ast
from pathlib import Path

import pytest

from corft_ros.core.graph import launch_arguments, load_graph, parse_launch_style_args
from corft_ros.core.paths import share_dir
from corft_ros.core.robot import ConfigError
from corft_ros.nodes.compose import ComposedGraph

LAUNCH_DIR = share_dir() / "launch"


def _graph_name_used_by(launch_file: Path) -> str | None:
    tree = ast.parse(launch_file.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "graph_launch_description":
            return node.args[0].value
    return None


@pytest.fixture(scope="module")
def fresh_model(tmp_path_factory) -> Path:
    import subprocess
    import sys

    out = tmp_path_factory.mktemp("models")
    command = ["export", "--init", "--name", "fresh", "--models-dir", str(out)]
    subprocess.run([sys.executable, "-m", "corft_ros.cli", *command], check=True, capture_output=True, timeout=300)
    return out / "fresh"


GRAPH_LAUNCH_FILES = sorted(p for p in LAUNCH_DIR.glob("*.launch.py") if _graph_name_used_by(p))


def test_every_graph_launch_file_reads_its_own_yaml():
    assert GRAPH_LAUNCH_FILES, "no launch file uses graph_launch_description"
    for launch_file in GRAPH_LAUNCH_FILES:
        name = _graph_name_used_by(launch_file)
        assert launch_file.name == f"{name}.launch.py"
        assert (share_dir() / "config" / f"{name}.yaml").is_file()


@pytest.mark.parametrize("launch_file", GRAPH_LAUNCH_FILES, ids=lambda p: p.name)
def test_cli_composition_runs_exactly_the_yaml_node_set_with_its_parameters(ros, launch_file, tmp_path, monkeypatch,
                                                                            fresh_model):
    monkeypatch.chdir(tmp_path)  # a fresh working dir with the output folder `corft-ros record` would create
    (tmp_path / "episodes").mkdir()
    name = _graph_name_used_by(launch_file)
    overrides = {}
    if "model" in launch_arguments(name):  # models/default is trained by `make experiment`; use a fresh one here
        overrides["model"] = str(fresh_model)
    graph = load_graph(name, overrides)
    composed = ComposedGraph(graph, context=ros.context)
    try:
        assert list(composed.nodes) == [spec.name for spec in graph.nodes]
        for spec in graph.nodes:
            node = composed.nodes[spec.name]
            for key, value in spec.parameters.items():
                actual = node.get_parameter(key).value
                if key == "seed":  # consumed by the first reset
                    continue
                assert actual == value or list(actual) == list(value), (spec.name, key)
    finally:
        composed.shutdown()


def test_arguments_set_parameters_and_bad_arguments_are_named():
    graph = load_graph("sim", parse_launch_style_args(["realtime_factor:=0", "region:=unseen"]))
    params = graph.node("sim_arm").parameters
    assert params["realtime_factor"] == 0.0 and params["region"] == "unseen"
    with pytest.raises(ConfigError, match="unknown argument 'speed'"):
        load_graph("sim", {"speed": "3"})
    with pytest.raises(ConfigError, match="expected name:=value"):
        parse_launch_style_args(["realtime_factor=0"])
    with pytest.raises(ConfigError, match="must be true or false"):
        load_graph("deploy", {"sim": "maybe"})


def test_a_takeover_source_joins_the_deploy_graph_only_when_asked_for():
    assert "teleop" not in {n.name for n in load_graph("deploy").nodes}
    teleop = load_graph("deploy", {"intervention": "scripted"}).node("teleop")
    assert teleop.parameters["source"] == "scripted" and teleop.parameters["intervention"] is True
    assert teleop.parameters["use_sim_time"] is True
    real = load_graph("deploy", {"intervention": "joy", "sim": "false"}).node("teleop")
    assert real.parameters["source"] == "joy" and real.parameters["use_sim_time"] is False


def test_nested_parameter_maps_flatten_to_dotted_names_like_launch_ros():
    from corft_ros.core.params import flatten as flatten_parameters

    assert flatten_parameters({"a": 1, "corft": {"alpha": 2.5, "noise": {"std": 0.2}}}) == {
        "a": 1, "corft.alpha": 2.5, "corft.noise.std": 0.2}


def test_graph_yaml_stays_a_valid_ros_params_file():
    import subprocess
    import sys

    configs = [c for c in sorted((share_dir() / "config").glob("*.yaml")) if c.name != "robot.yaml"]
    assert configs
    for config in configs:  # robot.yaml is plain YAML, not a parameter file
        code = (
            "import rclpy, sys; "
            f"rclpy.init(args=['--ros-args', '--params-file', {str(config)!r}]); rclpy.shutdown()"
        )
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, f"{config.name}: {result.stderr.strip().splitlines()[-1:]}"


def test_launch_arguments_name_their_targets_and_restate_nothing():
    """An argument's default and description come from its first target (the YAML's value, else the node's declared
    default and description); one written in the YAML must say something else (an empty "leave the YAML's values
    alone", an argument with its own meaning)."""
    import yaml

    from corft_ros.core.graph import SHARED_ARGUMENTS, argument_text, target_default

    restated = []
    for graph in sorted(p for p in (share_dir() / "config").glob("*.yaml") if p.name != "robot.yaml"):
        data = yaml.safe_load(graph.read_text())
        data["launch"] = data["launch"]["ros__parameters"]
        for name, spec in (data["launch"].get("arguments") or {}).items():
            sets = spec.get("sets") or []
            value, description = target_default(data, sets[0]) if sets else (None, "")
            if "default" in spec and str(spec["default"]) == argument_text(value):
                restated.append(f"{graph.name}: {name}: default {spec['default']!r} is its target's")
            if "description" in spec and "default" not in spec and description:
                restated.append(f"{graph.name}: {name}: description restates {sets[0]}'s declared one")
            for key in set(spec) & set(SHARED_ARGUMENTS.get(name, {})):
                restated.append(f"{graph.name}: {name}: {key} restates the shared argument's (core/graph.py)")
        for name, argument in launch_arguments(graph).items():
            assert argument.description, f"{graph.name}: {name} has no description (write one, or target a "
            "declared parameter)"
    assert not restated, restated


def test_an_arguments_default_comes_from_its_target(tmp_path):
    graph = tmp_path / "g.yaml"
    graph.write_text(
        "launch:\n  ros__parameters:\n    arguments:\n"
        "      mode: {sets: [executor.mode]}\n"
        "      rate: {sets: [policy.rate]}\n"
        "      alone: {default: '', description: 'an argument of its own', sets: [policy.instruction]}\n"
        "    nodes:\n      executor: {always: true}\n      policy: {always: true}\n"
        "policy:\n  ros__parameters:\n    rate: 5.0\n")
    args = launch_arguments(graph)
    assert args["mode"].default == "temporal_ensembling" and "blending mode" in args["mode"].description
    assert args["rate"].default == "5.0"  # the YAML's value beats the declared default
    assert args["alone"].default == "" and args["alone"].description == "an argument of its own"
    assert load_graph(graph, {"mode": "open_loop"}).node("executor").parameters["mode"] == "open_loop"
