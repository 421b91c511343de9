"""The dataset cache: one folder per (bag content, dataset config), the arrays as .npy (memory-mapped when read)
and info.json (version, shapes, build statistics). Written to a temporary folder and renamed, so a reader never
sees half an entry; a corrupt entry is removed and rebuilt from its bag."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

CACHE_VERSION = 3  # 2: commands moved onto the header clock per command (clock_offsets); 3: intervention flags


def save_cache(folder: Path, arrays: dict, stats: dict) -> None:
    tmp = folder.with_name(f"{folder.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    shapes = {}
    for name, arr in arrays.items():
        np.save(tmp / f"{name}.npy", np.ascontiguousarray(arr))
        shapes[name] = [list(arr.shape), str(arr.dtype)]
    (tmp / "info.json").write_text(json.dumps({"version": CACHE_VERSION, "arrays": shapes, "stats": stats}))
    shutil.rmtree(folder, ignore_errors=True)
    try:
        tmp.rename(folder)
    except OSError:  # another process (a DDP rank) won the race with identical content
        shutil.rmtree(tmp, ignore_errors=True)


def load_cache(folder: Path, cams: Sequence[str]) -> tuple[dict, dict]:
    """Map a cache entry; ValueError says what is wrong with it."""
    try:
        info = json.loads((folder / "info.json").read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"info.json unreadable ({type(exc).__name__})") from None
    if info.get("version") != CACHE_VERSION:
        raise ValueError(f"cache version {info.get('version')} != {CACHE_VERSION}")
    needed = ["state", "action", "tick_ns", "intervention"] + [f"image_{c}" for c in cams]
    arrays = {}
    for name in needed:
        if name not in info["arrays"]:
            raise ValueError(f"{name} not in cache")
        shape, dtype = info["arrays"][name]
        try:
            arr = np.load(folder / f"{name}.npy", mmap_mode="r")
        except (OSError, ValueError) as exc:
            raise ValueError(f"{name}.npy unreadable ({exc})") from None
        if list(arr.shape) != shape or str(arr.dtype) != dtype:
            raise ValueError(f"{name}.npy has shape {list(arr.shape)} {arr.dtype}, expected {shape} {dtype}")
        arrays[name] = arr
    return arrays, info["stats"]


def try_cache(folder: Path, bag: Path, cams: Sequence[str], log: Callable[[str], None]) -> tuple[dict | None, dict]:
    """The entry mapped, or (None, {}) when absent; a corrupt one is logged and removed (it is rebuilt)."""
    if not folder.is_dir():
        return None, {}
    try:
        return load_cache(folder, cams)
    except ValueError as exc:
        log(f"warning: {bag}: cache {folder} is corrupt ({exc}); rebuilding from the bag")
        shutil.rmtree(folder, ignore_errors=True)
        return None, {}


# --------------------------------------------------------------------------- content-hash memo
# A bag's content hash, remembered by (paths, sizes, mtimes): a second run finds its cache entry without reading it.


def stat_key(bag: Path) -> str:
    from corft_ros.core.episodes.errors import EpisodeReadError
    from corft_ros.core.episodes.layout import data_files

    files = data_files(bag)
    if not files:
        raise EpisodeReadError(f"{bag}: no .mcap or .db3 data file")
    return "|".join(f"{f.resolve()}:{f.stat().st_size}:{f.stat().st_mtime_ns}" for f in files)


def remembered_hash(bag: Path, memo_file: Path) -> str | None:
    """The content hash remembered for this bag's files (same paths, sizes and mtimes), if any."""
    key = stat_key(bag)
    try:
        return json.loads(memo_file.read_text()).get(key)
    except (OSError, ValueError, AttributeError):
        return None


def remember_hash(bag: Path, memo_file: Path, value: str, key: str | None = None) -> None:
    key = key or stat_key(bag)
    try:
        memo = json.loads(memo_file.read_text()) if memo_file.is_file() else {}
    except (OSError, ValueError):
        memo = {}
    memo[key] = value
    try:
        memo_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = memo_file.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(memo))
        tmp.replace(memo_file)
    except OSError:
        pass
