"""What the episode logger reports on /diagnostics: its status line and key/values from the writer's statistics.
No ROS here; the node maps "ok"/"warn" onto diagnostic_msgs levels."""

from __future__ import annotations

import contextlib
from collections.abc import Container
from pathlib import Path
from typing import Any

from corft_ros.core.episodes.diskguard import free_bytes


class WriteRate:
    """Bytes written per second between two reports (0 after a new episode restarted the count)."""

    def __init__(self, now: float) -> None:
        self._last: tuple[float, int] = (now, 0)

    def update(self, now: float, written: int | None) -> float:
        t0, b0 = self._last
        self._last = (now, written or 0)
        if written is None or written < b0 or now <= t0:
            return 0.0
        return (written - b0) / (now - t0)


def logger_status(stats: Any, episode: str, errors: int, free: int | None, write_bytes_s: float,
                  missing: set[str], unresolved: list[str]) -> tuple[str, str, dict[str, str]]:
    """(level "ok" | "warn", message, values) of the logger; `stats` is the writer's WriterStats (None when idle)."""
    values: dict[str, str] = {"state": "recording" if stats is not None else "idle", "errors": str(errors)}
    level, message = "ok", "idle"
    if free is not None:
        values["free_bytes"] = str(free)
    if stats is not None:
        values.update(
            episode=episode, messages=str(stats.messages), bytes=str(stats.bytes), dropped=str(stats.dropped),
            queue_messages=str(stats.queue_messages), queue_bytes=str(stats.queue_bytes),
            write_mb_s=f"{write_bytes_s / 1e6:.2f}", chunks_flushed=str(stats.chunks_flushed),
        )
        for topic, ts in stats.topics.items():
            values[f"count {topic}"] = str(ts.count)
            if ts.dropped:
                values[f"dropped {topic}"] = str(ts.dropped)
        message = f"recording {episode}"
        if stats.dropped or missing:
            level = "warn"
            message += f" ({stats.dropped} dropped, {len(missing)} topics missing)"
    if missing:
        values["missing_topics"] = ",".join(sorted(missing))
    if unresolved:
        values["unresolved_topics"] = ",".join(unresolved)
    return level, message, values


def logger_diagnostics(stats: Any, episode: str, errors: int, output_dir: Path, rate: WriteRate, now: float,
                       missing: set[str], topics: list[str], subscribed: Container[str]
                       ) -> tuple[str, str, dict[str, str]]:
    """`logger_status` with the free space under `output_dir` (left out when it cannot be read), the write rate
    since the last report (`now`: time.monotonic()) and the `topics` not `subscribed` yet (their type unresolved)."""
    free = None
    with contextlib.suppress(OSError):
        free = free_bytes(output_dir)
    written = rate.update(now, stats.bytes if stats is not None else None)
    return logger_status(stats, episode, errors, free, written, missing, [t for t in topics if t not in subscribed])
