"""The DDS domains a test session may use: one block, `CORFT_TEST_DOMAINS=lo-hi` (default 1-100; `make test` runs the
Jazzy suite beside the main one in 101-200), so two suites on one machine never meet.

- `session()`: the session's own domain (ROS_DOMAIN_ID, set by conftest.py before rclpy starts);
- `own(k)`, k = 1 .. OWN: a domain of its own for a test that starts a graph in subprocesses (record, the real
  launches), never the session's;
- CORFT_DOMAIN_RANGE: where the benchmarks run inside tests draw their own domain (corft_ros.measure._common).
"""

from __future__ import annotations

import os
import random

ENV = "CORFT_TEST_DOMAINS"
OWN = 16  # own(1) .. own(16)
BENCH = 8  # then this many for the benchmarks' random domains
SPAN = 1 + OWN + BENCH


def block() -> tuple[int, int]:
    lo, hi = (int(x) for x in os.environ.get(ENV, "1-100").split("-", 1))
    if not (lo >= 0 and hi - lo + 1 >= SPAN and hi <= 232):
        raise ValueError(f"{ENV}={lo}-{hi}: need at least {SPAN} domains within 0-232")
    return lo, hi


def choose() -> None:
    """Pick this session's base domain in its block and put it (and the benchmarks' range) into the environment."""
    lo, hi = block()
    base = random.SystemRandom().randint(lo, hi - SPAN + 1)
    os.environ["ROS_DOMAIN_ID"] = str(base)
    os.environ["CORFT_DOMAIN_RANGE"] = f"{base + 1 + OWN}-{base + SPAN - 1}"


def session() -> int:
    return int(os.environ["ROS_DOMAIN_ID"])


def own(k: int) -> int:
    if not 1 <= k <= OWN:
        raise ValueError(f"own domain {k}: 1 .. {OWN}")
    return session() + k


def own_env(k: int) -> dict[str, str]:
    """os.environ with ROS_DOMAIN_ID = own(k): for a subprocess graph."""
    return {**os.environ, "ROS_DOMAIN_ID": str(own(k))}
