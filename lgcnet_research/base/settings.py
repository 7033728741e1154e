"""One config style for the search and training: a dataclass, loaded from JSON, overridden by
command-line flags generated from its fields.

Torch-free, so `lgcnet search -h` and `lgcnet train -h` stay fast. A config class lists its
fields with defaults and, in `HELP`, a line of help per field; `add_flags` turns each field into
`--field-name` (tuples take several values, bools are switches, dicts take JSON), and
`from_args` builds the config as `--config` JSON, then every flag given, in that order.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import types
import typing
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from lgcnet_deploy.core.metadata import read_json

C = TypeVar("C", bound="Settings")

# Flags every settings parser has that are not fields: they say what to do, not how.
ACTION_FLAGS = ("config", "resume", "func", "command")


class Settings:
    """Mixin for a dataclass of settings (subclasses are `@dataclass`es)."""

    HELP: ClassVar[dict[str, str]] = {}
    CHOICES: ClassVar[dict[str, tuple[str, ...]]] = {}
    KIND: ClassVar[str] = "settings"  # used in error messages ("search settings", ...)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls: type[C], d: dict[str, Any]) -> C:
        """Build from a dict; unknown keys are an error naming the known ones. Lists become
        tuples where the field is a tuple (JSON has no tuples)."""
        hints = typing.get_type_hints(cls)
        known = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
        unknown = sorted(set(d) - set(known))
        if unknown:
            raise ValueError(f"unknown {cls.KIND} setting(s) {', '.join(unknown)}; known: "
                             f"{', '.join(known)}")
        values = {k: tuple(v) if _is_tuple(hints[k]) and isinstance(v, list) else v
                  for k, v in d.items()}
        for name, allowed in cls.CHOICES.items():
            if values.get(name) is not None and values[name] not in allowed:  # None: unset
                raise ValueError(f"{cls.KIND} setting {name}={values[name]!r}: choose one of "
                                 f"{', '.join(allowed)}")
        return cls(**values)

    @classmethod
    def load(cls: type[C], path: str | Path, **overrides: Any) -> C:
        """Settings from a JSON file of fields, with `overrides` on top."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{cls.KIND} config not found: {path}")
        data = read_json(path, ValueError)
        if not isinstance(data, dict):
            raise ValueError(f"{path}: a {cls.KIND} config is a JSON object of fields")
        return cls.from_dict({**data, **overrides})

    @classmethod
    def add_flags(cls, p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        """`--config FILE` plus one flag per field; a flag left out keeps the file's value."""
        p.add_argument("--config", type=Path, default=None,
                       help=f"JSON file of {cls.__name__} fields (flags override it)")
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):  # type: ignore[arg-type]
            _add_flag(p, f, hints[f.name], cls.HELP.get(f.name), cls.CHOICES.get(f.name))
        return p

    @classmethod
    def from_args(cls: type[C], args: argparse.Namespace) -> C:
        """The settings a parsed command line asks for: --config, then the flags given."""
        overrides = {k: v for k, v in vars(args).items() if k not in ACTION_FLAGS}
        if args.config is not None:
            return cls.load(args.config, **overrides)
        return cls.from_dict(overrides)


def _is_tuple(hint: Any) -> bool:
    return typing.get_origin(_strip_none(hint)) is tuple


def _strip_none(hint: Any) -> Any:
    """`X | None` -> X (the flag parses X; None is only ever a default)."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return hint


def _add_flag(p: argparse.ArgumentParser, f: dataclasses.Field, hint: Any,
              help_text: str | None, choices: tuple[str, ...] | None) -> None:
    flag = "--" + f.name.replace("_", "-")
    kw: dict[str, Any] = {"dest": f.name, "default": argparse.SUPPRESS, "help": help_text}
    if choices:
        kw["choices"] = choices
    hint = _strip_none(hint)
    origin = typing.get_origin(hint)
    if hint is bool:
        p.add_argument(flag, action=argparse.BooleanOptionalAction, **kw)
        return
    if origin is tuple:
        args = typing.get_args(hint)
        kw["type"] = args[0]
        kw["nargs"] = "*" if len(args) == 2 and args[1] is Ellipsis else len(args)
    elif origin is dict or hint is dict:
        kw["type"] = json.loads
        kw["metavar"] = "JSON"
    elif hint in (int, float, str):
        kw["type"] = hint
    else:
        raise TypeError(f"settings field {f.name}: no flag for type {hint!r}")
    p.add_argument(flag, **kw)
