"""Episodes for training: each from the cache, or built from its bag and cached, then every usable episode of a
folder (or list of bags) with a one-line problem per bag skipped, and the dataset's summary.

The arrays are cached under `<cache_dir>/<content hash>-<config hash>/`; a later run maps them
(`np.load(mmap_mode="r")`) without touching the bag. Bad bags are skipped with one line each
(`strict=True` makes the first one fatal). Instruction and success label come from the episode metadata (read fresh,
never cached).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from corft_ros.core.dataset.build import build_episode
from corft_ros.core.dataset.cache import remember_hash, remembered_hash, save_cache, stat_key, try_cache
from corft_ros.core.dataset.config import DatasetConfig
from corft_ros.core.dataset.episode import Episode, EpisodeProblem
from corft_ros.core.episodes.errors import EpisodeReadError
from corft_ros.core.episodes.layout import episode_name, find_bags
from corft_ros.core.episodes.reader import training_metadata
from corft_ros.core.robot import RobotConfig


def load_episode(
    bag: Path, robot: RobotConfig, cfg: DatasetConfig, log: Callable[[str], None] = print
) -> Episode:
    """One episode from the cache, or built from its bag (and cached). Raises EpisodeProblem."""
    bag = Path(bag)
    meta = training_metadata(bag)
    if cfg.require_instruction and not meta.get("instruction"):
        raise EpisodeProblem(f"{bag}: episode metadata has no instruction")
    if cfg.require_label and meta.get("success") is None:
        raise EpisodeProblem(
            f"{bag}: episode has no success label (label it with /corft/episode/label or in episode.yaml)"
        )
    cache_root = cfg.resolved_cache_dir()
    suffix = cfg.fingerprint(robot)
    memo = cache_root / f"hashes-{suffix}.json"  # per config: the hash covers the topics this config reads
    arrays = stats = None
    from_cache = False
    content = remembered_hash(bag, memo)
    if content is not None:
        folder = cache_root / f"{content}-{suffix}"
        arrays, stats = try_cache(folder, bag, cfg.camera_names, log)
        from_cache = arrays is not None
    if arrays is None:
        # Unknown at this path (or not cached): the build hashes the messages it reads; a bag copied from
        # elsewhere (same messages) then finds the entry built before and the fresh arrays are dropped.
        key_before = stat_key(bag)
        built, stats = build_episode(bag, robot, cfg, meta)
        content = stats["content_hash"]
        remember_hash(bag, memo, content, key_before)
        folder = cache_root / f"{content}-{suffix}"
        cached, cached_stats = try_cache(folder, bag, cfg.camera_names, log) if folder.is_dir() else (None, None)
        if cached is not None:
            arrays, stats, from_cache = cached, cached_stats, True
        else:
            save_cache(folder, built, stats)
            loaded, loaded_stats = try_cache(folder, bag, cfg.camera_names, lambda _m: None)
            if loaded is None:  # unwritable cache folder, or another process replacing it: train from memory
                arrays = built
            else:
                arrays, stats = loaded, loaded_stats
    key = folder.name
    return Episode(
        bag=bag,
        key=key,
        instruction=meta.get("instruction") or "",
        success=bool(meta.get("success")),
        images={c: arrays[f"image_{c}"] for c in cfg.camera_names},
        state=arrays["state"],
        action=arrays["action"],
        tick_ns=arrays["tick_ns"],
        stats=stats,
        from_cache=from_cache,
        intervention=np.asarray(arrays["intervention"], dtype=bool),
    )


@dataclass
class LoadReport:
    episodes: list[Episode]
    problems: list[str]
    seconds: float

    def lines(self) -> list[str]:
        out = []
        for ep in self.episodes:
            cams = ", ".join(
                f"{c}: {s['dropped']} dropped, {s['stale_ticks']} stale" for c, s in ep.stats["cameras"].items()
            )
            src = "cache" if ep.from_cache else "bag"
            label = "success" if ep.success else "failure"
            out.append(f"{episode_name(ep.bag)}: {len(ep)} ticks, {label}, from {src}; {cams}")
        out.extend(f"skipped {p}" for p in self.problems)
        return out


def load_episodes(
    bags: str | Path | Sequence[str | Path],
    robot: RobotConfig,
    cfg: DatasetConfig | None = None,
    strict: bool = False,
    log: Callable[[str], None] = print,
) -> LoadReport:
    """Every usable episode under `bags` (a folder of episode folders, one bag, or a list of bags).

    Unusable bags are skipped with a one-line error (logged and listed in `problems`); with `strict`
    the first one raises EpisodeProblem.
    """
    cfg = cfg or DatasetConfig()
    t0 = time.perf_counter()
    paths: list[Path] = []
    for item in [bags] if isinstance(bags, str | Path) else bags:
        paths.extend(find_bags(item))
    if not paths:
        raise EpisodeProblem(f"{bags}: no episode bags (.mcap/.db3) found")
    episodes: list[Episode] = []
    problems: list[str] = []
    for bag in paths:
        try:
            episodes.append(load_episode(bag, robot, cfg, log))
        except EpisodeReadError as exc:
            message = str(exc).splitlines()[0]
            if strict:
                raise EpisodeProblem(message) from None
            log(f"error: {message} (skipped)")
            problems.append(message)
    if not episodes:
        raise EpisodeProblem(f"{bags}: no usable episodes ({len(problems)} skipped)")
    return LoadReport(episodes, problems, time.perf_counter() - t0)


def dataset_summary(report: LoadReport) -> dict:
    eps = report.episodes
    return {
        "episodes": len(eps),
        "successes": sum(e.success for e in eps),
        "ticks": int(sum(len(e) for e in eps)),
        "skipped": len(report.problems),
        "from_cache": sum(e.from_cache for e in eps),
        "instructions": sorted({e.instruction for e in eps}),
        "seconds": round(report.seconds, 3),
    }
