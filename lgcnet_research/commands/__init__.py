"""`lgcnet search`, `lgcnet train` and `lgcnet lut`: registered with the SDK's CLI through the
`lgcnet.commands` entry-point group (the SDK never imports this package)."""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable
from typing import Any


def register_command(sub: argparse._SubParsersAction, name: str,
                     add_arguments: Callable[[argparse.ArgumentParser], Any], runner: str,
                     **parser_kw: Any) -> None:
    """Add sub-command `name`; `runner` ("module:function") is imported only when it runs, so
    `lgcnet -h` never imports torch."""
    p = sub.add_parser(name, formatter_class=argparse.RawDescriptionHelpFormatter, **parser_kw)
    add_arguments(p)
    p.set_defaults(func=lambda args: _resolve(name, runner)(args))


def _resolve(name: str, ref: str) -> Callable[[argparse.Namespace], int]:
    module, function = ref.split(":")
    try:
        return getattr(importlib.import_module(module), function)
    except ModuleNotFoundError as e:
        if not e.name or e.name.startswith(("lgcnet_deploy", "lgcnet_research")):
            raise
        raise ImportError(f"`lgcnet {name}` needs the Python package {e.name!r}: pip install "
                          f"'lgcnet-deploy[research]'") from e
