"""Stage 5, the `lgcnet` command line: one sub-command per module in `cli/commands/`, plus
those other installed packages register under the `lgcnet.commands` entry-point group (the
research package's `search`, `train` and `lut`)."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Callable
from functools import partial
from importlib.metadata import entry_points

from lgcnet_deploy.cli import commands
from lgcnet_deploy.core.version import __version__

COMMAND_ENTRY_POINTS = "lgcnet.commands"


def _builtin_register(name: str) -> Callable:
    return importlib.import_module(f"{commands.__name__}.{name}").register


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lgcnet", description="LGCNet real-time segmentation: export, build, predict, "
        "evaluate, benchmark, search and train.")
    parser.add_argument("--version", action="version", version=f"lgcnet-deploy {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    # Each command module defines register(subparsers), which adds its parser and sets `func`;
    # adding a command is adding a module (or, from another package, an entry point).
    loaders: dict[str, Callable[[], Callable]] = {
        ep.name: ep.load for ep in entry_points(group=COMMAND_ENTRY_POINTS)}
    for info in pkgutil.iter_modules(commands.__path__):
        if not info.name.startswith("_"):
            loaders[info.name] = partial(_builtin_register, info.name)
    for name in sorted(loaders):
        loaders[name]()(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (FileNotFoundError, ValueError, RuntimeError, ImportError) as e:
        print(f"lgcnet {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
