"""Stage 5, the `lgcnet` command line: one sub-command per module in `cli/commands/`, plus
those other installed packages register under the `lgcnet.commands` entry-point group (the
research package's `search`, `train` and `lut`)."""

from __future__ import annotations

import argparse
import pkgutil
import sys
import traceback
from collections.abc import Callable
from functools import partial
from importlib.metadata import entry_points

from lgcnet_deploy.cli import commands
from lgcnet_deploy.core.errors import (
    EXIT_MISSING_DEPENDENCY,
    EXIT_RUNTIME,
    EXIT_USER_INPUT,
    LgcnetError,
)
from lgcnet_deploy.core.formats import import_attribute
from lgcnet_deploy.core.logs import LEVELS
from lgcnet_deploy.core.logs import configure as configure_logging
from lgcnet_deploy.core.version import __version__

COMMAND_ENTRY_POINTS = "lgcnet.commands"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lgcnet", description="LGCNet real-time segmentation: export, build, predict, "
        "evaluate, benchmark, search and train.")
    parser.add_argument("--version", action="version", version=f"lgcnet-deploy {__version__}")
    # main() takes --debug out of argv wherever it stands; listed here for -h only, and
    # SUPPRESS keeps it out of the Namespace that commands turn into their settings.
    parser.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show the full traceback when a command fails (for bug reports)")
    parser.add_argument("--log-level", choices=LEVELS, default=argparse.SUPPRESS,
                        help="what the SDK and the libraries under it (ONNX Runtime, FFmpeg) "
                             "print: debug, info, warning (default) or error")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    # Each command module defines register(subparsers), which adds its parser and sets `func`;
    # adding a command is adding a module (or, from another package, an entry point).
    loaders: dict[str, Callable[[], Callable]] = {
        ep.name: ep.load for ep in entry_points(group=COMMAND_ENTRY_POINTS)}
    for info in pkgutil.iter_modules(commands.__path__):
        if not info.name.startswith("_"):
            loaders[info.name] = partial(import_attribute,
                                         f"{commands.__name__}.{info.name}:register")
    for name in sorted(loaders):
        loaders[name]()(sub)
    return parser


# Exit codes 3-5: core/errors.py, beside the exceptions that carry them.
EXIT_INTERNAL = 70  # a bug: please report it with the --debug traceback
EXIT_INTERRUPTED = 130  # Ctrl-C, as shells report SIGINT


def exit_code(error: BaseException) -> int:
    """The exit code for an exception that ended a command."""
    if isinstance(error, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    if isinstance(error, LgcnetError):
        return error.exit_code
    if isinstance(error, ImportError):
        return EXIT_MISSING_DEPENDENCY
    if isinstance(error, FileNotFoundError | IsADirectoryError | NotADirectoryError |
                  FileExistsError | PermissionError | ValueError | TypeError):
        return EXIT_USER_INPUT
    if isinstance(error, RuntimeError | OSError):
        return EXIT_RUNTIME
    return EXIT_INTERNAL


# Import name of an optional package -> the pip extra of lgcnet-deploy that installs it.
EXTRA_OF_PACKAGE = {"torch": "export", "onnx": "onnx", "onnxsim": "export",
                    "onnxscript": "export", "onnxconverter_common": "export",
                    "matplotlib": "export", "torchvision": "compare", "tensorrt": "tensorrt",
                    "cuda": "tensorrt", "polygraphy": "tensorrt"}


def one_line(error: BaseException) -> str:
    """The first line of an error's message (tracebacks are for --debug); a missing optional
    package names the extra that brings it."""
    name = getattr(error, "name", None)
    if type(error) is ModuleNotFoundError and name:
        extra = EXTRA_OF_PACKAGE.get(name.split(".")[0])
        if extra:
            return (f"this needs the Python package {name!r}: pip install "
                    f"'lgcnet-deploy[{extra}]'")
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _take_log_level(argv: list[str]) -> tuple[list[str], str]:
    """`--log-level LEVEL` (or `--log-level=LEVEL`) taken out of argv wherever it stands, as
    --debug is: commands turn their Namespace into settings and must not see it."""
    for i, arg in enumerate(argv):
        if arg.startswith("--log-level="):
            return argv[:i] + argv[i + 1:], arg.split("=", 1)[1]
        if arg == "--log-level" and i + 1 < len(argv):
            return argv[:i] + argv[i + 2:], argv[i + 1]
    return argv, "warning"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    debug = "--debug" in argv
    argv, level = _take_log_level([a for a in argv if a != "--debug"])
    args = build_parser().parse_args(argv)
    try:
        configure_logging(level)
        return int(args.func(args) or 0)
    except (Exception, KeyboardInterrupt) as e:
        code = exit_code(e)
        if debug:  # the traceback for a bug report, the same exit code as without it
            traceback.print_exc()
            return code
        if code == EXIT_INTERRUPTED:
            print(f"lgcnet {args.command}: interrupted", file=sys.stderr)
        elif code == EXIT_INTERNAL:
            print(f"lgcnet {args.command}: internal error: {type(e).__name__}: {one_line(e)} "
                  f"(rerun with --debug and report the traceback)", file=sys.stderr)
        else:
            print(f"lgcnet {args.command}: error: {one_line(e)}", file=sys.stderr)
        return code
