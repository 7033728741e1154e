"""`lgcnet search`, `lgcnet train` and `lgcnet lut`: registered with the SDK's CLI through the
`lgcnet.commands` entry-point group (the SDK never imports this package)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from lgcnet_deploy.core.formats import import_attribute


def register_command(sub: argparse._SubParsersAction, name: str,
                     add_arguments: Callable[[argparse.ArgumentParser], Any], runner: str,
                     **parser_kw: Any) -> None:
    """Add sub-command `name`; `runner` ("module:function") is imported only when it runs, so
    `lgcnet -h` never imports torch."""
    p = sub.add_parser(name, formatter_class=argparse.RawDescriptionHelpFormatter, **parser_kw)
    add_arguments(p)
    p.set_defaults(func=lambda args: import_attribute(
        runner, "research", f"`lgcnet {name}` needs")(args))
