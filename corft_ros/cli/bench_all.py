"""`corft-ros bench all`: every registered benchmark in turn, each with its default arguments."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

SKIP = {"all", "soak", "trials"}  # long-running ones are asked for by name


def register_bench(benches: argparse._SubParsersAction) -> None:
    parser = benches.add_parser("all", help="run every benchmark (except soak and trials) and print their JSON")
    parser.add_argument("--json", action="store_true", help="print one JSON document with every result")
    parser.set_defaults(func=bench_all)


def bench_all(args: argparse.Namespace) -> int:
    from corft_ros.cli import build_parser

    names = [n for n in build_parser().get_default("bench_names") if n not in SKIP]
    results, failures = {}, []
    for name in names:
        start = time.monotonic()
        # A fresh process per benchmark: no warm caches or threads carried from one to the next.
        proc = subprocess.run([sys.executable, "-m", "corft_ros.cli", "bench", name, "--json"],
                              capture_output=True, text=True)
        elapsed = time.monotonic() - start
        if proc.returncode != 0:
            failures.append(name)
            tail = proc.stderr.strip().splitlines()[-1:] or ["(no output)"]
            results[name] = {"error": f"exit {proc.returncode}: {tail[0]}", "seconds": elapsed}
            continue
        try:
            results[name] = json.loads(proc.stdout[proc.stdout.index("{"):])
        except ValueError:
            results[name] = {"raw": proc.stdout}
        print(f"bench {name}: done in {elapsed:.0f} s", file=sys.stderr)
    print(json.dumps(results, indent=2) if args.json else "\n".join(f"{k}: {v}" for k, v in results.items()))
    return 1 if failures else 0
