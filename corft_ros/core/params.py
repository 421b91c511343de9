"""Parameter plumbing shared by every entry point: nested maps to dotted names, and KEY=VALUE overrides."""

from __future__ import annotations

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
