"""One YAML per launch file is the single source of truth for a node graph: which nodes run, with which
parameters, and which launch arguments change what. `launch/*.launch.py` (launch_ros, on machines with ROS 2)
and `corft-ros <command>` (one process, rclpy executor composition) both build their node set with
`load_graph`, so they cannot drift apart.

File format (config/<graph>.yaml). It stays a valid ROS parameter file (`--params-file`): the launch section
is itself a `ros__parameters` block, of a node that never exists.

    launch:
      ros__parameters:
        arguments:
          mode: {sets: [executor.mode]}          # default and description: executor.mode's (YAML value, else declared)
          sim: {description: "...", sets: [policy.use_sim_time, executor.use_sim_time]}   # its own description
          instruction: {default: "", description: "...", sets: [policy.instruction]}      # its own default
        nodes:
          sim_arm: {if: sim}          # started only when the argument is true
          camera: {unless: sim}
          teleop: {if_set: intervention}   # started only when the argument is not empty
          executor: {always: true}
          benchmark: {always: true, finishes: true}   # the graph ends when this node is done, with its exit code
    sim_arm:                          # ROS parameters of each node, standard form
      ros__parameters: {...}

Argument values arrive as strings (as from `ros2 launch ... name:=value`) and are parsed as YAML scalars
before they are written into the parameters they `sets`; a comma-separated value sets a string array where
the parameter's default is a list. An empty value sets nothing (the YAML's value stays): `ros2 launch` hands
the OpaqueFunction every argument, defaults included, so both front ends must read "" the same way.

Every node of a graph is required: one that exits while the graph runs stops the whole graph with a message naming
it (`ros2 launch` then exits 1), except a node marked `finishes: true` exiting with code 0 (its job is done: the
benchmark's trials, the trainer's stages), which ends the graph normally.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from corft_ros.core.node_params import lookup
from corft_ros.core.params import coerce, parse_bool
from corft_ros.core.paths import config_path
from corft_ros.core.robot import ConfigError


@dataclass(frozen=True)
class LaunchArgument:
    name: str
    default: str
    description: str = ""
    sets: tuple[str, ...] = ()  # "node.parameter" targets


@dataclass(frozen=True)
class NodeSpec:
    name: str
    executable: str
    parameters: dict = field(default_factory=dict)  # the graph's overrides (the YAML and its arguments)
    finishes: bool = False  # the graph ends when this node exits with code 0 (its job is done)

    def value(self, name: str):
        """The value the node will run with: the graph's, else its declared default (core/node_params)."""
        if name in self.parameters:
            return self.parameters[name]
        found = lookup(self.executable, name, self.parameters)
        if found is None:
            raise KeyError(f"node '{self.name}' ({self.executable}) declares no parameter '{name}'")
        return found[0]


NODE_RULE_KEYS = frozenset({"if", "unless", "if_set", "always", "executable", "finishes"})
NAMESPACE_ARGUMENT = "namespace"  # every graph may declare it: the ROS namespace all its nodes run in
# Arguments that mean the same in every graph declaring them and whose meaning is not one node parameter's: their
# description (and, where it differs from the first target's value, their default) written once, here. A graph's YAML
# names their targets only.
SHARED_ARGUMENTS: dict[str, dict[str, str]] = {
    NAMESPACE_ARGUMENT: {"description": "ROS namespace of every node (two arms: namespace:=left and "
                                        "namespace:=right)"},
    "sim": {"description": "run the bundled MuJoCo arm (false: a real arm under ros2_control)"},
    "cameras": {"default": "", "description": "sim: comma-separated cameras to render (default front,wrist)"},
}


@dataclass(frozen=True)
class Graph:
    name: str
    source: Path
    arguments: dict[str, str]
    nodes: tuple[NodeSpec, ...]

    @property
    def namespace(self) -> str:
        """'' or an absolute namespace ('/left'): where every node of the graph runs (topics are relative)."""
        value = str(self.arguments.get(NAMESPACE_ARGUMENT, "") or "").strip().strip("/")
        return f"/{value}" if value else ""

    def node(self, name: str) -> NodeSpec:
        for spec in self.nodes:
            if spec.name == name:
                return spec
        raise KeyError(f"graph '{self.name}' has no node '{name}'")


def _read(name_or_path: str | Path) -> tuple[Path, dict]:
    path = Path(name_or_path)
    if path.suffix != ".yaml" or not path.exists():
        path = config_path(str(name_or_path))
    if not path.is_file():
        raise ConfigError(f"graph config not found: {path}")
    data = yaml.safe_load(path.read_text()) or {}
    section = ((data.get("launch") or {}).get("ros__parameters")) or {}
    if "nodes" not in section:
        raise ConfigError(f"{path}: missing 'launch: ros__parameters: nodes:' section (the node set)")
    data["launch"] = section
    return path, data


def launch_arguments(name_or_path: str | Path) -> dict[str, LaunchArgument]:
    """The graph's launch arguments. An argument names its targets (`sets: [node.parameter, ...]`); its default and
    description come from its first target: the YAML's value for that node, else the node's declared default, and the
    declared description, or from SHARED_ARGUMENTS for the arguments every graph means alike. A `default` written in
    the YAML is one that differs from that (an empty "leave the YAML's values alone", say), a `description` one for an
    argument that has its own meaning (its own default, no target, a target without a declared description); a test
    rejects restated ones."""
    path, data = _read(name_or_path)
    out = {}
    for arg_name, spec in (data["launch"].get("arguments") or {}).items():
        spec = {**SHARED_ARGUMENTS.get(arg_name, {}), **(spec or {})}
        sets = tuple(spec.get("sets", []) or [])
        for target in sets:
            if "." not in target:
                raise ConfigError(f"{path}: launch argument '{arg_name}' sets '{target}', expected node.parameter")
        value, description = target_default(data, sets[0]) if sets else (None, "")
        out[arg_name] = LaunchArgument(
            name=arg_name,
            default=str(spec["default"]) if "default" in spec else argument_text(value),
            description=str(spec.get("description", description)),
            sets=sets,
        )
    return out


def target_default(data: dict, target: str) -> tuple[Any, str]:
    """(value, declared description) of a `node.parameter` target in a graph YAML's data: the YAML's value for the
    node, else the node's declared default (None where neither exists)."""
    node, param = target.split(".", 1)
    rule = (data["launch"]["nodes"] or {}).get(node) or {}
    values = ((data.get(node) or {}).get("ros__parameters")) or {}
    declared = lookup(str(rule.get("executable", node)), param, values)
    description = getattr(declared[1], "description", "") if declared else ""
    if param in values:
        return values[param], description
    return (declared[0] if declared else None), description


def argument_text(value: Any) -> str:
    """A parameter value as a launch argument's text (what `name:=` would take): true/false, comma-separated lists."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ",".join(argument_text(v) for v in value)
    return str(value)


def load_graph(name_or_path: str | Path, overrides: dict[str, str] | None = None) -> Graph:
    """Resolve a graph: argument values (defaults + overrides) decide the node set and fill parameters."""
    path, data = _read(name_or_path)
    arguments = launch_arguments(path)
    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - set(arguments))
    if unknown:
        raise ConfigError(f"unknown argument '{unknown[0]}' for {path.name} (known: {', '.join(sorted(arguments))})")
    values = {n: overrides.get(n, a.default) for n, a in arguments.items()}
    namespace = str(values.get(NAMESPACE_ARGUMENT, "")).strip().strip("/")
    if namespace and not all(part and (part[0].isalpha() or part[0] == "_") and part.replace("_", "").isalnum()
                             for part in namespace.split("/")):
        raise ConfigError(f"namespace '{values[NAMESPACE_ARGUMENT]}' is not a valid ROS namespace "
                          "(letters, digits, '_' and '/', each part starting with a letter)")

    nodes = []
    for node_name, rule in (data["launch"]["nodes"] or {}).items():
        rule = rule or {}
        if "if" in rule and not parse_bool(values[rule["if"]], f"argument '{rule['if']}'"):
            continue
        if "unless" in rule and parse_bool(values[rule["unless"]], f"argument '{rule['unless']}'"):
            continue
        if "if_set" in rule and str(values[rule["if_set"]]).strip() == "":
            continue
        params = dict(((data.get(node_name) or {}).get("ros__parameters")) or {})
        unknown_keys = sorted(set(rule) - NODE_RULE_KEYS)
        if unknown_keys:
            raise ConfigError(f"{path}: node '{node_name}': unknown key '{unknown_keys[0]}' "
                              f"(known: {', '.join(sorted(NODE_RULE_KEYS))})")
        nodes.append(NodeSpec(name=node_name, executable=str(rule.get("executable", node_name)), parameters=params,
                              finishes=parse_bool(rule.get("finishes", False), f"node '{node_name}' finishes")))

    by_name = {spec.name: spec for spec in nodes}
    for arg_name, arg in arguments.items():
        if values[arg_name] == "":
            # An empty value leaves the YAML's parameter alone, whether it is the default or given: `ros2 launch`
            # passes every argument, defaults included, so "given" cannot mean anything else there (an empty
            # default once overwrote the YAML's instruction with '' and made `cameras` an empty list, which
            # launch_ros cannot type).
            continue
        for target in arg.sets:
            node_name, param = target.split(".", 1)
            if node_name in by_name:
                node = by_name[node_name]
                # typed like the YAML's value, else like the node's declared default
                spec = lookup(node.executable, param, node.parameters)
                like = node.parameters[param] if param in node.parameters else spec[0] if spec else ""
                node.parameters[param] = coerce(values[arg_name], like, f"argument '{arg_name}'")
    return Graph(name=path.stem, source=path, arguments=values, nodes=tuple(nodes))


def parse_launch_style_args(items: list[str]) -> dict[str, str]:
    """`name:=value` words (as `ros2 launch` takes them) -> dict; anything else is a one-line error."""
    from corft_ros.core.params import parse_assignments

    return parse_assignments(items, ":=", "name:=value")
