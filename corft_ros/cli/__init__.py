"""`corft-ros`: one command for the whole stack.

Each module in this package contributes subcommands through `register(commands)` and benchmarks through
`register_bench(benches)`; this file only wires them together, so areas never edit each other's code.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="corft-ros", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    bench = commands.add_parser("bench", help="measure a part of the stack (prints what it measured)")
    benches = bench.add_subparsers(dest="bench", required=True, metavar="BENCH")
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        if hasattr(module, "register"):
            module.register(commands)
        if hasattr(module, "register_bench"):
            module.register_bench(benches)
    parser.set_defaults(bench_names=sorted(benches.choices))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
