"""The genotype JSON's shape, checked strictly before anything is built from it: each field's
JSON type (no bool or float or string where an int belongs), bounded widths, lengths and
sizes, no unknown keys, provenance nested at most a few levels. `GENOTYPE_JSON` is the table:
a new field or a new kind of stem is one entry (the stem kinds come from `space.STEMS`).
What the values mean (op names per edge, reduction cells, fusion inputs) is checked after, by
`genotype._validate`."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from lgcnet_deploy.core.errors import BadInputError
from lgcnet_deploy.core.metadata import json_depth
from lgcnet_deploy.model.space import NUM_CELLS, STEMS

MAX_WIDTH = 1024  # channels of any layer; the paper's widest is 192, and 10^5 would need ~40 GB
MAX_TEXT = 200  # a name, an op name
MAX_PROVENANCE_BYTES = 64 * 1024  # as JSON; the shipped models' is under 3 kB
MAX_PROVENANCE_DEPTH = 8  # nesting levels; the shipped models' is 4
MAX_ITEMS = 64  # any list: a genotype has 14 cells of 5 edges

Check = Callable[[Any, str], None]  # (value, field path) -> None, or GenotypeError


class GenotypeError(BadInputError):
    """A genotype file or dict is malformed; the message names the bad field."""


def _wrong(where: str, expected: str, value: Any) -> GenotypeError:
    return GenotypeError(f"field '{where}': expected {expected}, got "
                         f"{type(value).__name__} {json.dumps(value)[:40] if _small(value) else ''}"
                         .rstrip())


def _small(value: Any) -> bool:
    return isinstance(value, bool | int | float | str) and len(str(value)) <= 40


def text(max_len: int = MAX_TEXT) -> Check:
    def check(value: Any, where: str) -> None:
        if type(value) is not str:
            raise _wrong(where, "a string", value)
        if len(value) > max_len:
            raise GenotypeError(f"field '{where}': {len(value)} characters, at most {max_len}")
    return check


def integer(low: int, high: int) -> Check:
    """An int in [low, high]; `type(...) is int` refuses True, 32.5 and "32"."""
    def check(value: Any, where: str) -> None:
        if type(value) is not int:
            raise _wrong(where, f"an integer {low}..{high}", value)
        if not low <= value <= high:
            raise GenotypeError(f"field '{where}': {value} is out of range {low}..{high}")
    return check


def boolean(value: Any, where: str) -> None:
    if type(value) is not bool:
        raise _wrong(where, "true or false", value)


def one_of(choices: tuple[str, ...]) -> Check:
    def check(value: Any, where: str) -> None:
        text()(value, where)
        if value not in choices:
            raise GenotypeError(f"field '{where}': unknown {where.rsplit('.', 1)[-1]} "
                                f"{value!r}; choose one of "
                                f"{', '.join(choices)}")
    return check


def items(item: Check, min_len: int = 0, max_len: int = MAX_ITEMS) -> Check:
    """A list of `min_len`..`max_len` values, each checked by `item`."""
    def check(value: Any, where: str) -> None:
        if type(value) is not list:
            raise _wrong(where, "a list", value)
        if not min_len <= len(value) <= max_len:
            raise GenotypeError(f"field '{where}': {len(value)} items, expected "
                                f"{min_len if min_len == max_len else f'{min_len}..{max_len}'}")
        for k, v in enumerate(value):
            item(v, f"{where}[{k}]")
    return check


def obj(fields: dict[str, Check], required: tuple[str, ...] = ()) -> Check:
    """A JSON object with only the keys of `fields`, those in `required` present."""
    def check(value: Any, where: str) -> None:
        if type(value) is not dict:
            raise _wrong(where or "genotype", "a JSON object", value)
        unknown = ", ".join(sorted(str(k)[:40] for k in value if k not in fields))
        if unknown:
            raise GenotypeError(f"field '{where or 'genotype'}': unknown key(s) {unknown}; "
                                f"allowed: {', '.join(fields)}")
        for key in required:
            if key not in value:
                raise GenotypeError(f"field '{_join(where, key)}' is missing")
        for key, v in value.items():
            fields[key](v, _join(where, key))
    return check


def json_tree(max_bytes: int, max_depth: int) -> Check:
    """Free-form JSON data (an object), bounded in size and nesting."""
    def check(value: Any, where: str) -> None:
        if type(value) is not dict:
            raise _wrong(where, "a JSON object", value)
        if json_depth(value, max_depth) > max_depth:
            raise GenotypeError(f"field '{where}': nested deeper than {max_depth} levels")
        size = len(json.dumps(value))
        if size > max_bytes:
            raise GenotypeError(f"field '{where}': {size} bytes as JSON, at most {max_bytes}")
    return check


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


WIDTH = integer(1, MAX_WIDTH)
GENOTYPE_JSON: Check = obj({
    "schema": text(),
    "name": text(),
    "stem": one_of(STEMS),
    "cells": items(obj({"ops": items(text()), "reduction": boolean,
                        "stride": integer(1, 32)}, required=("ops",)),
                   max_len=NUM_CELLS),
    "fusion": obj({"inputs": items(integer(0, NUM_CELLS - 1)), "ops": items(text())},
                  required=("inputs", "ops")),
    "widths": obj({"stem": items(WIDTH, 3, 3), "cells": items(WIDTH, 3, 3), "fusion": WIDTH},
                  required=("stem", "cells", "fusion")),
    "provenance": json_tree(MAX_PROVENANCE_BYTES, MAX_PROVENANCE_DEPTH),
}, required=("schema", "cells", "fusion", "widths"))


def check_genotype_json(data: Any) -> None:
    """GenotypeError naming the first field of `data` that breaks `GENOTYPE_JSON`."""
    GENOTYPE_JSON(data, "")
