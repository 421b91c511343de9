"""`corft-ros measure all`: every registered benchmark in turn, each with its default arguments."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

SKIP = {"all", "soak"}  # long-running ones are asked for by name (and `benchmark`, the product benchmark)


def register(benches: argparse._SubParsersAction) -> None:
    parser = benches.add_parser("all", help="run every benchmark (except soak and trials) and print their JSON")
    parser.add_argument("--json", action="store_true", help="print one JSON document with every result")
    parser.set_defaults(func=bench_all)


def bench_all(args: argparse.Namespace) -> int:
    import pkgutil

    import corft_ros.measure

    names = [m.name for m in sorted(pkgutil.iter_modules(corft_ros.measure.__path__), key=lambda m: m.name)
             if m.name not in SKIP and not m.name.startswith("_")]
    results, failures = {}, []
    for name in names:
        start = time.monotonic()
        # A fresh process per benchmark: no warm caches or threads carried from one to the next.
        proc = subprocess.run([sys.executable, "-m", "corft_ros.cli", "measure", name, "--json"],
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
