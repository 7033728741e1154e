"""`lgcnet` command line: one sub-command per module in lgcnet_deploy/commands/."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from . import __version__, commands


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lgcnet", description="LGCNet real-time segmentation: export, build, predict, "
        "evaluate, benchmark, search and train.")
    parser.add_argument("--version", action="version", version=f"lgcnet-deploy {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    # Each module in commands/ defines register(subparsers) which adds its parser and sets
    # `func`; adding a command is adding a module.
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        importlib.import_module(f"{commands.__name__}.{info.name}").register(sub)
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
