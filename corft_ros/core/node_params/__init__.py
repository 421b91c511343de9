"""Every node's parameters, declared once: one dataclass per node (type, default, description, validation in
`corft_ros.core.params.param`). The nodes declare from them, graphs coerce launch-argument values by them, and
test/core/test_node_params.py proves every key of every config YAML is a declared parameter."""

from __future__ import annotations

import importlib
from typing import Any

from corft_ros.core.params import declared

# executable -> "module:class" (imported when asked: a node's spec may import its core area)
_SPECS = {
    "executor": "executor:ExecutorParams",
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
    """Parameters named after the values of another (the executor's `<output>.kind` for each of `outputs`)."""
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
