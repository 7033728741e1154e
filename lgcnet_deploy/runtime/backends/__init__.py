"""Inference backends behind one interface (`base.Backend`), and the map from a model file's
format (the table in `lgcnet_deploy.core.formats`) to the backend that runs it."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from lgcnet_deploy.core.formats import format_of
from lgcnet_deploy.model.shipped import check_model_name, resolve_model
from lgcnet_deploy.runtime.backends.base import Backend, BackendError


def backend_for(path: str | Path) -> type[Backend]:
    """The backend class for a model file: the format table (`core/formats.py`) names the
    format, this maps it to the backend that runs it. Each backend is imported only when a
    file of its format is used, so the base install never imports torch or tensorrt."""
    fmt = format_of(path)
    with fmt.needs_extra():
        if fmt.name == "pytorch":
            from lgcnet_deploy.runtime.backends.pytorch import TorchBackend

            return TorchBackend
        if fmt.name == "engine":
            from lgcnet_deploy.runtime.backends.tensorrt_engine import TensorRTBackend

            return TensorRTBackend
    from lgcnet_deploy.runtime.backends.onnx_runtime import OnnxRuntimeBackend

    return OnnxRuntimeBackend


def shipped_suffix(device: str) -> str:
    """Which file of a shipped model runs on `device`: its ONNX, except on CUDA with torch
    installed, where the checkpoint's PyTorch CUDA path (fp16, CUDA graphs) runs and no
    onnxruntime-gpu is needed. On a CPU the ONNX is the right one even with torch: ONNX
    Runtime loads it in about 0.2 s (the checkpoint: about 2 s, torch import included) and
    infers as fast, and every install gets the same masks from the same file."""
    if device.startswith("cuda") and importlib.util.find_spec("torch") is not None:
        return ".pt"
    return ".onnx"


def load_backend(path: str | Path, device: str = "cpu", verify: bool = True) -> Backend:
    """Load a model file, or a shipped model by short name (e.g. "lgcnet-camvid", see
    `shipped_suffix` for which of its files); `verify=False` skips the ONNX weights-digest
    check."""
    check_model_name(path)
    path = resolve_model(path, shipped_suffix(device))
    backend = backend_for(path)
    if verify:
        return backend(path, device=device)
    if format_of(path).name == "engine":  # a changed engine is never deserialized: no opt-out
        raise BackendError(f"{path}: verify=False applies to ONNX models only")
    return backend(path, device=device, verify=False)
