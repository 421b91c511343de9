"""Free-space checks: recording stops cleanly before the disk fills up."""

from __future__ import annotations

import shutil
from pathlib import Path

from corft_ros.core.episodes.errors import DiskFullError


def free_bytes(path: str | Path) -> int:
    """Free bytes available to this user on the file system holding `path` (or its nearest existing parent)."""
    p = Path(path)
    while not p.exists() and p != p.parent:
        p = p.parent
    return shutil.disk_usage(p).free


def check_free(path: str | Path, min_free: int) -> int:
    """Return free bytes; raise DiskFullError (one line, naming the folder) when below `min_free`."""
    free = free_bytes(path)
    if free < min_free:
        raise DiskFullError(
            f"disk almost full at {path}: {free / 1e6:.1f} MB free, minimum is {min_free / 1e6:.1f} MB (min_free_bytes)"
        )
    return free
