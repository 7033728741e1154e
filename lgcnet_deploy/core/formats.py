"""The model-format table: which files the SDK reads, by suffix — the one place a suffix is
looked at.

Facts only: each row names a format, its suffixes, what `lgcnet info` and error messages
call it, the pip extra it needs beyond the base install, and whether it is a deployable
artifact. The code for each format lives in its own stage and looks the row up by name:
`artifact.describe` describes a file, `runtime.backends.base` picks the backend that runs
it; no module here names a later one.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lgcnet_deploy.core.errors import BadInputError, MissingDependencyError


class UnknownFormatError(BadInputError):
    """A path whose suffix is no model format the SDK reads."""


class MissingExtraError(MissingDependencyError):
    """A model format needs an optional dependency that is not installed."""


@dataclass(frozen=True)
class ModelFormat:
    name: str
    suffixes: tuple[str, ...]
    label: str  # what `lgcnet info` and error messages call it
    extra: str | None  # pip extra needed beyond the base install, if any
    deployable: bool  # an exported artifact (runs as is) rather than training output

    @contextmanager
    def needs_extra(self) -> Iterator[None]:
        """Imports inside the block that miss a third-party package raise MissingExtraError
        naming this format's extra."""
        if self.extra is None:
            yield
            return
        with missing_extra(self.extra, f"{self.label} files need",
                           "(or use an .onnx model, which the base install runs)"):
            yield


@contextmanager
def missing_extra(extra: str, needed_by: str = "this needs", hint: str = "") -> Iterator[None]:
    """Turn a missing third-party package into a MissingExtraError saying `needed_by` the
    package and which extra brings it (a missing module of ours stays a bug)."""
    try:
        yield
    except ModuleNotFoundError as e:
        if not e.name or e.name.startswith(("lgcnet_deploy", "lgcnet_research")):
            raise
        raise MissingExtraError(f"{needed_by} the Python package {e.name!r}: pip install "
                                f"'lgcnet-deploy[{extra}]'" + (f" {hint}" if hint else "")) from e


def import_attribute(ref: str, extra: str | None = None, needed_by: str = "this needs",
                     hint: str = "") -> Any:
    """Import "module:attribute" (lazy command entry points). With `extra`, a missing
    third-party package becomes a MissingExtraError (see `missing_extra`)."""
    module, attr = ref.split(":")
    if extra is None:
        return getattr(importlib.import_module(module), attr)
    with missing_extra(extra, needed_by, hint):
        return getattr(importlib.import_module(module), attr)


FORMATS: tuple[ModelFormat, ...] = (
    ModelFormat("onnx", (".onnx",), "ONNX model (ONNX Runtime)", None, True),
    ModelFormat("pytorch", (".pt", ".pth"), "LGCNet checkpoint (PyTorch)", "export", False),
    ModelFormat("engine", (".engine",), "TensorRT engine", "tensorrt", True),
)
SUFFIXES: dict[str, ModelFormat] = {s: f for f in FORMATS for s in f.suffixes}


def find_format(path: str | Path) -> ModelFormat | None:
    """The format of a model file by its suffix, or None (e.g. a genotype name)."""
    return SUFFIXES.get(Path(str(path)).suffix.lower())


def format_of(path: str | Path) -> ModelFormat:
    """The format of a model file by its suffix; UnknownFormatError names the supported ones."""
    fmt = find_format(path)
    if fmt is None:
        raise UnknownFormatError(f"{path}: unsupported model file suffix "
                                 f"{Path(str(path)).suffix.lower() or '(none)'!r}; supported: "
                                 f"{', '.join(sorted(SUFFIXES))}")
    return fmt
