"""Where the package's config/, launch/ and models/ live (source checkout or installed share dir)."""

from __future__ import annotations

from pathlib import Path

PACKAGE = "corft_ros"
_SOURCE_ROOT = Path(__file__).resolve().parents[2]


def share_dir() -> Path:
    """The folder holding config/, launch/ and models/.

    A source checkout (pip -e, tests) wins; otherwise the ament share directory of an installed package.
    """
    if (_SOURCE_ROOT / "config" / "robot.yaml").is_file():
        return _SOURCE_ROOT
    try:
        from ament_index_python.packages import get_package_share_directory

        return Path(get_package_share_directory(PACKAGE))
    except Exception as exc:
        raise FileNotFoundError(
            f"cannot find the {PACKAGE} share directory (no source checkout, ament index said: {exc})"
        ) from exc


def config_path(name: str) -> Path:
    """Path of config/<name> (name with or without .yaml)."""
    filename = name if name.endswith(".yaml") else f"{name}.yaml"
    return share_dir() / "config" / filename


def models_dir() -> Path:
    return share_dir() / "models"
