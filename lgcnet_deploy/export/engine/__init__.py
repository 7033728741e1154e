"""TensorRT engines: the compatibility gate (`trt_rules.py`), build through Polygraphy
(`build.py`), sidecar checks (`sidecar.py`) and engine I/O derivation (`engine_io.py`).

Nothing here imports tensorrt at module import time; `import_tensorrt()` does, with a message
saying what to install.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from lgcnet_deploy.export.engine.sidecar import (
    EngineMismatchError,
    check_sidecar,
    read_sidecar,
    sidecar_path,
)

INSTALL_TENSORRT = (
    "desktop/server GPU: pip install 'lgcnet-deploy[tensorrt-cu12]' where nvidia-smi shows "
    "'CUDA Version: 12.x' ('[tensorrt-cu13]' for 13.x, an R580+ driver; '[tensorrt]' is the "
    "cu12 one: tensorrt, cuda-python, polygraphy); Jetson: TensorRT comes with JetPack 6 "
    "(sudo apt install python3-libnvinfer), then pip install 'cuda-python>=12.2,<13' "
    "polygraphy. "
    "Without a GPU use the ONNX model instead: Segmenter('model.onnx') runs on ONNX Runtime "
    "(CPU). See docs/tensorrt.md")

MIN_TENSORRT = 10  # named-tensor API (get_tensor_name, execute_async_v3); bindings are gone


def import_tensorrt() -> ModuleType:
    """The tensorrt module (>= 10), or ImportError saying exactly what to install."""
    try:
        import tensorrt as trt
    except ImportError as e:
        raise ImportError(f"TensorRT's Python package `tensorrt` is not installed. "
                          f"{INSTALL_TENSORRT}") from e
    if int(trt.__version__.split(".")[0]) < MIN_TENSORRT:
        raise ImportError(f"TensorRT {trt.__version__} is too old: lgcnet-deploy needs "
                          f"TensorRT >= {MIN_TENSORRT}. {INSTALL_TENSORRT}")
    return trt


_LOGGERS: dict[int, Any] = {}


def trt_logger(trt: ModuleType, verbose: bool = False) -> Any:
    """One trt.Logger per process: TensorRT expects every builder and runtime to share it."""
    logger = _LOGGERS.setdefault(id(trt), trt.Logger(trt.Logger.WARNING))
    logger.min_severity = trt.Logger.VERBOSE if verbose else trt.Logger.WARNING
    return logger


__all__ = ["INSTALL_TENSORRT", "EngineMismatchError", "check_sidecar", "import_tensorrt",
           "read_sidecar", "sidecar_path", "trt_logger"]
