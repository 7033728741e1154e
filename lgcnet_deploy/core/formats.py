"""The model-format table: which files the SDK reads, by suffix — the one place a suffix is
looked at.

Each row names, as "module:attribute" strings imported only when a file of that format is
used, the runtime backend that runs it and the function that describes it for `lgcnet info`
(metadata without loading it for inference), and the pip extra it needs beyond the base
install. Strings rather than imports keep this stage-0 module free of torch, onnx and
tensorrt, and let each format's code live in its own stage.
"""

from __future__ import annotations

import importlib
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
    backend: str  # "module:Class" of the runtime backend
    describe: str  # "module:function(path) -> dict" for `lgcnet info`
    extra: str | None  # pip extra needed beyond the base install, if any
    deployable: bool  # an exported artifact (runs as is) rather than training output

    def load_backend_class(self) -> type:
        return self._resolve(self.backend)

    def describe_file(self, path: str | Path) -> dict[str, Any]:
        return self._resolve(self.describe)(Path(path))

    def _resolve(self, ref: str) -> Any:
        if self.extra is None:
            return import_attribute(ref)
        return import_attribute(ref, self.extra, f"{self.label} files need",
                                "(or use an .onnx model, which the base install runs)")


def import_attribute(ref: str, extra: str | None = None, needed_by: str = "this needs",
                     hint: str = "") -> Any:
    """Import "module:attribute". With `extra`, a missing third-party package becomes a
    MissingExtraError saying `needed_by` the package and which extra brings it."""
    module, attr = ref.split(":")
    try:
        return getattr(importlib.import_module(module), attr)
    except ModuleNotFoundError as e:
        if extra is None or not e.name or e.name.startswith(("lgcnet_deploy", "lgcnet_research")):
            raise
        raise MissingExtraError(f"{needed_by} the Python package {e.name!r}: pip install "
                                f"'lgcnet-deploy[{extra}]'" + (f" {hint}" if hint else "")) from e


FORMATS: tuple[ModelFormat, ...] = (
    ModelFormat("onnx", (".onnx",), "ONNX model (ONNX Runtime)",
                "lgcnet_deploy.runtime.backends.onnx_runtime:OnnxRuntimeBackend",
                "lgcnet_deploy.export.describe:describe_onnx", None, True),
    ModelFormat("pytorch", (".pt", ".pth"), "LGCNet checkpoint (PyTorch)",
                "lgcnet_deploy.runtime.backends.pytorch:TorchBackend",
                "lgcnet_deploy.model.checkpoint:describe_checkpoint", "export", False),
    ModelFormat("engine", (".engine",), "TensorRT engine",
                "lgcnet_deploy.runtime.backends.tensorrt_engine:TensorRTBackend",
                "lgcnet_deploy.export.describe:describe_engine", "tensorrt", True),
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

