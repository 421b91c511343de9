"""`corft-ros measure NAME`: the stack's own measurements, one module per NAME in corft_ros/measure/ (executor,
inference, logger, dataset, sim, transport, lerobot, rollouts, soak, all). (`corft-ros bench NAME`: the old
spelling.) Policies are compared by `corft-ros benchmark` (cli/benchmark.py)."""

from __future__ import annotations

import argparse


def register(commands: argparse._SubParsersAction) -> None:
    import importlib
    import pkgutil

    import corft_ros.measure

    measure = commands.add_parser("measure", help="measure a part of the stack (prints what it measured)")
    names = measure.add_subparsers(dest="measure", required=True, metavar="NAME")
    for info in sorted(pkgutil.iter_modules(corft_ros.measure.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        importlib.import_module(f"corft_ros.measure.{info.name}").register(names)
