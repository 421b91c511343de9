"""What every benchmark shares: the machine it ran on, and how a result is printed."""

from __future__ import annotations

import json
from pathlib import Path


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or "unknown"


def print_result(result: dict, as_json: bool) -> None:
    """The result as JSON (`--json`), or one `key: value` line per entry."""
    if as_json:
        print(json.dumps(result, indent=2))
    else:
        for key, value in result.items():
            print(f"{key}: {value}")


DOMAIN_RANGE_ENV = "CORFT_DOMAIN_RANGE"


def isolated_domain(lo: int, hi: int) -> int:
    """A random DDS domain in [lo, hi] for a benchmark's own graph (away from a user's graph on domain 0), or in the
    range `CORFT_DOMAIN_RANGE=lo-hi` gives (the test suite confines every domain it uses to its own block)."""
    import os
    import random

    text = os.environ.get(DOMAIN_RANGE_ENV, "").strip()
    if text:
        lo, hi = (int(x) for x in text.split("-", 1))
    return random.SystemRandom().randint(lo, hi)
