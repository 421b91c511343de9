"""Intervention segments of an episode: when an operator (or the sim's intervener) held the arm.

The executor publishes its takeover state on `corft/intervention` (std_msgs/Bool, latched) whenever it changes; the
episode logger keeps these changes (and the state at the episode's start) and writes the segments into the episode's
metadata (`extra.interventions`: count, seconds, segments as [start, end] in seconds from the episode's start).
"""

from __future__ import annotations

from collections.abc import Sequence


def segments(changes: Sequence[tuple[float, bool]], start: float, stop: float,
             engaged_at_start: bool = False) -> list[tuple[float, float]]:
    """[(begin, end)] in seconds from `start` of the spans with the state True, from the state at the start and the
    (time, state) changes (any order of repeats; times outside [start, stop] are clipped)."""
    out: list[tuple[float, float]] = []
    since = start if engaged_at_start else None
    for t, engaged in sorted(changes, key=lambda c: c[0]):
        t = min(max(t, start), stop)
        if engaged and since is None:
            since = t
        elif not engaged and since is not None:
            out.append((since - start, t - start))
            since = None
    if since is not None:
        out.append((since - start, stop - start))
    return [(round(a, 4), round(b, 4)) for a, b in out]


def summary(spans: Sequence[tuple[float, float]]) -> dict:
    """What episode.yaml keeps: how many takeovers, how long in all, and when."""
    return {"count": len(spans), "seconds": round(sum(b - a for a, b in spans), 4),
            "segments": [[a, b] for a, b in spans]}
