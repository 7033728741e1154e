"""TensorRT engine files: the compatibility gate an ONNX passes first (`trt_rules.py`,
`trt_operators.py`), the sidecar (`sidecar.py`), engine I/O derivation (`engine_io.py`) and
the CUDA glue (`cuda.py`) that the builder (`export/engine.py`) and the engine backend
(`runtime/backends/tensorrt_engine.py`) share.

Nothing here imports tensorrt at module import time; `import_tensorrt()` does, with a message
saying what to install.
"""

from __future__ import annotations

from importlib.util import find_spec
from types import ModuleType
from typing import Any

from lgcnet_deploy.artifact.engine.sidecar import (
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


def tensorrt_gpu() -> bool:
    """TensorRT is installed and cuda-python sees a CUDA GPU (what engines need)."""
    if find_spec("tensorrt") is None:
        return False
    try:
        from lgcnet_deploy.artifact.engine import cuda

        return cuda.device_count() > 0
    except (ImportError, RuntimeError, OSError):
        return False


__all__ = ["INSTALL_TENSORRT", "EngineMismatchError", "check_sidecar", "import_tensorrt",
           "read_sidecar", "sidecar_path", "tensorrt_gpu", "trt_logger"]
