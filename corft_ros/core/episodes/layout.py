"""Folder layout: <root>/<YYYYmmdd-HHMMSS>_<slug>/{episode.yaml, bag/{metadata.yaml, bag.mcap}}."""

from __future__ import annotations

import re
import time
from pathlib import Path

EPISODE_FILENAME = "episode.yaml"
BAG_DIRNAME = "bag"
DATA_SUFFIXES = (".mcap", ".db3", ".mcap.zstd", ".db3.zstd")  # what rosbag2 writes (the trainer reads any bag)
_STAMP_RE = re.compile(r"^\d{8}-\d{6}_")


def slugify(text: str, max_len: int = 40) -> str:
    """Lower-case words joined by '-', safe in file names; 'episode' when nothing is left."""
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return slug[:max_len].rstrip("-") or "episode"


def new_episode_dir(root: str | Path, label: str, stamp_s: float | None = None) -> Path:
    """A fresh (not yet created) episode folder under `root`; a numeric suffix avoids collisions."""
    root = Path(root)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(time.time() if stamp_s is None else stamp_s))
    base = f"{stamp}_{slugify(label)}"
    candidate = root / base
    n = 2
    while candidate.exists():
        candidate = root / f"{base}-{n}"
        n += 1
    return candidate


def looks_like_episode_dir(path: Path) -> bool:
    return path.is_dir() and ((path / EPISODE_FILENAME).is_file() or (path / BAG_DIRNAME).is_dir())


def episode_dir_of(path: str | Path) -> Path:
    """Accept an episode folder, its bag folder, or the .mcap file; return the episode folder."""
    p = Path(path)
    if p.is_file() and p.suffix == ".mcap":
        p = p.parent
    if p.name == BAG_DIRNAME and (p / "metadata.yaml").exists() or p.name == BAG_DIRNAME and list(p.glob("*.mcap")):
        return p.parent
    return p


def bag_dir_of(path: str | Path) -> Path:
    """The rosbag2 folder (metadata.yaml + .mcap) of an episode; a plain bag folder is accepted as is."""
    p = Path(path)
    if p.is_file() and p.suffix == ".mcap":
        return p.parent
    if (p / BAG_DIRNAME).is_dir():
        return p / BAG_DIRNAME
    return p


def mcap_files(bag_dir: Path) -> list[Path]:
    return sorted(bag_dir.glob("*.mcap"))


def data_files(bag: Path) -> list[Path]:
    """The bag's data files (.mcap or sqlite3 .db3, compressed or not), sorted."""
    return sorted(p for p in Path(bag).iterdir() if p.is_file() and p.name.endswith(DATA_SUFFIXES))


def episode_name(bag: Path) -> str:
    """A readable name for a bag: the episode folder's name (bags live in <episode>/bag/)."""
    bag = Path(bag)
    return bag.parent.name if bag.name == BAG_DIRNAME else bag.name


def find_bags(root: str | Path) -> list[Path]:
    """Bag folders under `root` (or `root` itself): folders holding an .mcap/.db3 file, ours or `ros2 bag record`'s.
    A missing `root` is an EpisodeReadError."""
    from corft_ros.core.episodes.errors import EpisodeReadError

    root = Path(root)
    if not root.exists():
        raise EpisodeReadError(f"{root}: no such folder")
    if root.is_dir() and data_files(root):
        return [root]
    return sorted({p.parent for p in root.rglob("*") if p.is_file() and p.name.endswith(DATA_SUFFIXES)})
