"""Command-line arguments shared by the commands that run the sim (record, benchmark, demo, experiment)."""

from __future__ import annotations

import argparse


def add_realtime_factor(p: argparse.ArgumentParser, default: float) -> None:
    """--realtime-factor K (and the older --realtime true|false = 1 | 0) on every command that runs the sim."""
    p.add_argument("--realtime-factor", type=float, default=None, metavar="K",
                   help=f"sim seconds per wall second: 1 = real time, 2 = twice as fast, 0 = as fast as the renderer, "
                        f"policy and executor allow (default {default:g}); every time (timeouts, cycle times) is sim "
                        f"time, and the sim waits for its consumers, so results do not depend on it "
                        f"(docs/benchmark.md: consistency run)")
    p.add_argument("--realtime", choices=("true", "false"), default=None, help=argparse.SUPPRESS)
    p.set_defaults(realtime_factor_default=default)


def realtime_factor(args: argparse.Namespace) -> float:
    if args.realtime_factor is not None:
        if not args.realtime_factor >= 0:
            raise SystemExit("error: --realtime-factor must be >= 0 (0 = as fast as the consumers allow)")
        return float(args.realtime_factor)
    if args.realtime is not None:
        return 0.0 if args.realtime == "false" else 1.0
    return float(getattr(args, "realtime_factor_default", 1.0))
