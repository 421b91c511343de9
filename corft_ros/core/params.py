"""Parameter plumbing shared by every entry point: nested maps to dotted names, KEY=VALUE overrides, the one
coercer, and the declarative parameter specs of the nodes and of the training job (`param`, `declared`, `from_values`,
`markdown_table`)."""

from __future__ import annotations

from dataclasses import MISSING, dataclass, field, fields, is_dataclass
from typing import Any


def flatten(params: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested maps become dotted names, as launch_ros and rcl's YAML parser do."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


def parse_assignments(items: list[str], sep: str = "=", form: str = "") -> dict[str, str]:
    """`KEY<sep>VALUE` words -> {KEY: VALUE} (strings); anything else is a one-line ConfigError naming `form`."""
    from corft_ros.core.robot import ConfigError

    out = {}
    for item in items:
        if sep not in item:
            raise ConfigError(f"expected {form or 'KEY' + sep + 'VALUE'}, got {item!r}")
        key, value = item.split(sep, 1)
        out[key.strip()] = value
    return out


def parse_sets(items: list[str]) -> dict[str, Any]:
    """`--set KEY=VALUE` items (values in YAML) as a dict; a one-line ConfigError for a malformed one."""
    import yaml

    from corft_ros.core.robot import ConfigError

    out = {}
    for key, value in parse_assignments(items, "=", "--set KEY=VALUE").items():
        try:
            out[key] = yaml.safe_load(value)
        except yaml.YAMLError:
            raise ConfigError(f"--set {key}: {value!r} is not a YAML value") from None
    return out


# --------------------------------------------------------------------------- values

TRUE_WORDS = {"true", "1", "yes", "on"}
FALSE_WORDS = {"false", "0", "no", "off"}


def parse_bool(value: object, what: str) -> bool:
    """true/false, 1/0, yes/no, on/off (any case); anything else is a one-line ConfigError naming `what`."""
    from corft_ros.core.robot import ConfigError

    if isinstance(value, bool):
        return value
    word = str(value).strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ConfigError(f"{what} must be true or false, got '{value}'")


def coerce(value: Any, like: Any, what: str) -> Any:
    """The one coercer: `value` (a launch argument's text, a `--set` YAML value, a declared parameter) in the type of
    `like` (the parameter's default). A string for a list is one item or comma-separated items; `like` None takes
    any value ('' is None). A value that does not fit is a one-line ConfigError naming `what`."""
    import yaml

    from corft_ros.core.robot import ConfigError

    try:
        if isinstance(like, bool):
            return parse_bool(value, what)
        if isinstance(like, list | tuple):
            if isinstance(value, str):
                return [item.strip() for item in value.split(",") if item.strip()]
            return list(value)
        if isinstance(like, int | float):
            if isinstance(value, str):
                value = yaml.safe_load(value)
                value = float(value) if isinstance(value, str) else value  # YAML 1.1 reads 1e-6 as a string
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(value)
            if isinstance(like, int):
                if float(value) != int(value):
                    raise ValueError(value)
                return int(value)
            return float(value)
        if isinstance(like, str):
            return value if isinstance(value, str) else str(value)
        return None if like is None and value == "" else value
    except (TypeError, ValueError, yaml.YAMLError):
        raise ConfigError(f"{what}: cannot use {value!r} as a {type(like).__name__}") from None


# --------------------------------------------------------------------------- node parameter specs
# Each node's parameters are one dataclass in core (ros2_controllers' generate_parameter_library is the model): a
# field per parameter with its type (the annotation), default, description and validation. The node declares from
# it (nodes/common.declare_params), graphs and `corft-ros launch` coerce argument values by it, and a test proves
# every key of every config YAML is a declared parameter.

PARAM = "corft_ros.param"


@dataclass(frozen=True)
class ParamInfo:
    description: str
    dynamic: bool = False  # applied when set at runtime (else read-only)
    choices: tuple[str, ...] = ()
    min: float | None = None  # value >= min
    above: float | None = None  # value > above
    max: float | None = None
    array: str = ""  # element type of a list parameter ("string", "double", "integer"): an empty default needs it


def param(default: Any, description: str, *, dynamic: bool = False, choices: tuple[str, ...] = (),
          min: float | None = None, above: float | None = None, max: float | None = None,  # noqa: A002
          array: str = "") -> Any:
    """A dataclass field that is a node parameter."""
    if choices:
        description = f"{description}: {' | '.join(choices)}"
    info = ParamInfo(description, dynamic, tuple(choices), min, above, max, array)
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata={PARAM: info})
    return field(default=default, metadata={PARAM: info})


def declared(cls: type) -> dict[str, tuple[Any, ParamInfo]]:
    """name -> (default, info) of every parameter of a parameter dataclass."""
    out = {}
    for f in fields(cls):
        info = f.metadata.get(PARAM)
        if info is not None:
            default = f.default_factory() if f.default is MISSING else f.default  # type: ignore[misc]
            out[f.name] = (default, info)
    return out


def declared_tree(cls: type, prefix: str = "") -> dict[str, tuple[Any, ParamInfo]]:
    """Dotted name -> (default, info) of every parameter of a parameter dataclass and of its groups (a field whose
    default is another parameter dataclass, e.g. the training config's `corft`: `corft.gamma`), in field order."""
    specs = declared(cls)
    out = {}
    for f in fields(cls):
        if f.name in specs:
            out[f"{prefix}{f.name}"] = specs[f.name]
        elif isinstance(f.default_factory, type) and is_dataclass(f.default_factory):
            out.update(declared_tree(f.default_factory, f"{prefix}{f.name}."))
    return out


def check(name: str, value: Any, info: ParamInfo) -> None:
    """A one-line ConfigError naming the parameter when `value` breaks its spec."""
    from corft_ros.core.robot import ConfigError

    if info.choices and value not in info.choices:
        raise ConfigError(f"{name} must be one of {', '.join(info.choices)}, got {value!r}")
    if info.min is not None and not value >= info.min:
        raise ConfigError(f"{name} must be >= {info.min:g}, got {value}")
    if info.above is not None and not value > info.above:
        raise ConfigError(f"{name} must be {'positive' if info.above == 0 else f'> {info.above:g}'}, got {value}")
    if info.max is not None and not value <= info.max:
        raise ConfigError(f"{name} must be <= {info.max:g}, got {value}")


def refusal(cls: type, changes: list[tuple[str, Any]]) -> str | None:
    """Why a node refuses (name, value) parameter changes against its declaration `cls` (None: accepted): the
    first value that cannot be coerced to its default's type or breaks its spec; undeclared names pass."""
    from corft_ros.core.robot import ConfigError

    specs = declared(cls)
    for name, value in changes:
        if name in specs:
            try:
                check(name, coerce(value, specs[name][0], name), specs[name][1])
            except ConfigError as exc:
                return str(exc)
    return None


def from_values(cls: type, values: dict[str, Any]) -> Any:
    """An instance of the parameter dataclass `cls` from declared values: each coerced to its default's type and
    checked against its spec (the first problem is a one-line ConfigError naming the parameter)."""
    specs = declared(cls)
    kwargs = {}
    for name, (default, info) in specs.items():
        value = coerce(values[name], default, name) if name in values else default
        check(name, value, info)
        kwargs[name] = value
    return cls(**kwargs)


# --------------------------------------------------------------------------- generated references


def validation_text(info: ParamInfo) -> str:
    """The spec's checks in words (the references' `checked` column)."""
    parts = []
    if info.min is not None:
        parts.append(f">= {info.min:g}")
    if info.above is not None:
        parts.append(f"> {info.above:g}")
    if info.max is not None:
        parts.append(f"<= {info.max:g}")
    if info.dynamic:
        parts.append("settable at runtime")
    return ", ".join(parts)


def markdown_table(specs: dict[str, tuple[Any, ParamInfo]]) -> list[str]:
    """The lines of a Markdown table of parameters (name -> (default, info)): docs/parameters.md and
    docs/training_parameters.md are made of these."""
    import json

    lines = ["| parameter | type | default | description | checked |", "|---|---|---|---|---|"]
    for name, (default, info) in specs.items():
        kind = f"{info.array}[]" if info.array else type(default).__name__
        lines.append(f"| `{name}` | {kind} | `{json.dumps(default)}` | {info.description.replace('|', '/')} | "
                     f"{validation_text(info)} |")
    return lines
