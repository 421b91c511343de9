"""Every node's parameters, declared once: one dataclass per node (type, default, description, validation in
`corft_ros.core.params.param`). The nodes declare from them, graphs coerce launch-argument values by them, and
test/core/node_params/test_node_params.py proves every key of every config YAML is a declared parameter."""

from __future__ import annotations

import importlib
from typing import Any

from corft_ros.core.params import declared

# executable -> "module:class" (imported when asked: a node's spec may import its core area)
_SPECS = {
    "executor": "executor:ExecutorParams",
    "policy": "policy:PolicyParams",
    "camera": "camera:CameraParams",
    "sim_arm": "sim_arm:SimArmParams",
    "episode_logger": "episode_logger:EpisodeLoggerParams",
    "teleop": "teleop:TeleopParams",
    "benchmark": "benchmark:BenchmarkParams",
    "trainer": "trainer:TrainerParams",
}
# Parameters every ROS 2 node has (rclcpp/rclpy declare them).
BUILTIN = {"use_sim_time": False}


def executables() -> list[str]:
    return sorted(_SPECS)


def params_class(executable: str) -> type | None:
    """The parameter dataclass of a node executable (None when it has none)."""
    target = _SPECS.get(executable)
    if target is None:
        return None
    module, cls = target.split(":")
    return getattr(importlib.import_module(f"{__name__}.{module}"), cls)


def _patterned(executable: str, name: str, values: dict[str, Any]) -> tuple[Any, Any] | None:
    """Parameters named after the values of another (the executor's `<output>.kind` for each of `outputs`), and
    the trainer's training parameters (dotted names of the training config)."""
    if executable == "trainer":
        from corft_ros.core.node_params.trainer import training_parameters

        return training_parameters().get(name)
    if executable == "executor" and "." in name:
        from corft_ros.core.node_params.executor import ExecutorParams, OutputParams

        prefix, leaf = name.split(".", 1)
        outputs = values.get("outputs", declared(ExecutorParams)["outputs"][0])
        if prefix in outputs:
            return declared(OutputParams).get(leaf)
    return None


def lookup(executable: str, name: str, values: dict[str, Any] | None = None) -> tuple[Any, Any] | None:
    """(default, ParamInfo) of parameter `name` of a node (None where the node declares no such parameter).
    `values`: the node's other parameter values (patterned names depend on them)."""
    if name in BUILTIN:
        return BUILTIN[name], None
    cls = params_class(executable)
    if cls is None:
        return None
    found = declared(cls).get(name)
    return found if found is not None else _patterned(executable, name, values or {})


def reference_markdown() -> str:
    """docs/parameters.md: every node's parameters from their one declaration (generated; a test keeps it equal)."""
    import json

    from corft_ros.core.params import markdown_table

    lines = ["# Node parameters", "",
             "Generated from `corft_ros/core/node_params/` (each node's one declaration) by "
             "`python -m corft_ros.core.node_params > docs/parameters.md`; a test keeps this file equal to it. "
             "The graph YAMLs in `config/` hold only what differs from these defaults. Every node also has "
             "`use_sim_time` (default false).", ""]
    for name in executables():
        lines += [f"## `{name}`", "", *markdown_table(declared(params_class(name)))]
        if name == "executor":
            from corft_ros.core.node_params.executor import OutputParams

            lines += ["", "Per output (each name in `outputs`): "
                      + ", ".join(f"`<output>.{p}` ({info.description}, default `{json.dumps(d)}`)"
                                  for p, (d, info) in declared(OutputParams).items()) + "."]
        if name == "trainer":
            lines += ["", "Plus every training parameter of `config/train.yaml`, dotted (`corft.gamma`, "
                      "`dataset.image_size`, ...): [training_parameters.md](training_parameters.md)."]
        lines.append("")
    return "\n".join(lines)
