"""`corft-ros`: one command for the whole stack.

One module per command in this package, each contributing it through `register(commands)` (`measure` registers
every measurement in corft_ros/measure/); this file only wires them together, and reads the old spelling `bench`.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="corft-ros", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        module.register(commands)
    return parser


def old_spelling(argv: list[str]) -> list[str]:
    """`corft-ros bench trials ...` is `corft-ros benchmark ...` and `corft-ros bench NAME ...` is `corft-ros measure
    NAME ...` (renamed after 0.2.0: one word per concept); the old spelling still works, with a note, for one
    release."""
    if not argv or argv[0] != "bench":
        return argv
    if argv[1:2] == ["trials"]:
        new, shown = ["benchmark", *argv[2:]], "benchmark"
    else:
        new, shown = ["measure", *argv[1:]], " ".join(["measure", *argv[1:2]])
    if argv[1:2] not in ([], ["-h"], ["--help"]):
        print(f"note: `corft-ros {' '.join(argv[:2])}` is now `corft-ros {shown}` (the old spelling goes in the next "
              "release)", file=sys.stderr)
    return new


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(old_spelling(sys.argv[1:] if argv is None else list(argv)))
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except ValueError as exc:
        if not isinstance(exc, _user_errors()):
            raise
        print(f"error: {exc}", file=sys.stderr)  # bad input a command did not catch itself: one line, not a traceback
        return 2


def _user_errors() -> tuple[type, ...]:
    """The errors that name bad input (a config, a model, an episode, a dataset), each with a one-line message."""
    from corft_ros.core.episodes.errors import EpisodeReadError
    from corft_ros.core.lerobot.v21 import DatasetFormatError
    from corft_ros.core.robot import ConfigError

    return ConfigError, EpisodeReadError, DatasetFormatError


if __name__ == "__main__":
    sys.exit(main())
