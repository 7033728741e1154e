"""Thin helpers over NVIDIA cuda-python's runtime API: errors, pinned/device buffers, stream,
CUDA-graph capture. Imported lazily: `import lgcnet_deploy` never needs CUDA.

cuda-python returns a tuple (cudaError_t, *results) from every call; `check` turns a
non-success code into CudaError and unwraps the results. Module layout differs by version:
cuda-python >= 12.6 (and 13.x, the only layout there) has `cuda.bindings.runtime`; older 12.x
(e.g. what JetPack 6 users pin) has `cuda.cudart`.

Docs relied on:
  https://nvidia.github.io/cuda-python/cuda-bindings/latest/module/runtime.html
  https://docs.nvidia.com/deeplearning/tensorrt/latest/api/migration/tensorrt-8x-to-10x-python-api-patterns.html
  NVIDIA/TensorRT samples/python/common_runtime.py (cudaMallocHost/cudaMemcpyAsync usage)
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from functools import cache
from types import ModuleType
from typing import Any

import numpy as np

INSTALL_CUDA_PYTHON = ("pip install 'lgcnet-deploy[tensorrt-cu12]' or '[tensorrt-cu13]', the "
                       "major of the 'CUDA Version' nvidia-smi shows; Jetson/JetPack 6: pip "
                       "install 'cuda-python>=12.2,<13'")


class CudaError(RuntimeError):
    """A CUDA runtime call failed; the message names the call's error code."""


@cache
def runtime() -> ModuleType:
    """cuda-python's runtime module (`cudart`), or ImportError saying what to install."""
    try:
        from cuda.bindings import runtime as rt  # cuda-python >= 12.6
    except ImportError:
        try:
            from cuda import cudart as rt  # cuda-python 12.0-12.5
        except ImportError as e:
            raise ImportError(f"NVIDIA cuda-python is not installed: {INSTALL_CUDA_PYTHON}") from e
    return rt


def check(result: tuple) -> Any:
    """Raise CudaError unless `result[0]` is cudaSuccess; return the remaining value(s)."""
    rt = runtime()
    err, *values = result
    if err != rt.cudaError_t.cudaSuccess:
        name = rt.cudaGetErrorName(err)[1]
        text = rt.cudaGetErrorString(err)[1]
        raise CudaError(f"{_str(name)}: {_str(text)}")
    if not values:
        return None
    return values[0] if len(values) == 1 else tuple(values)


def _str(b: bytes | str) -> str:
    return b.decode(errors="replace").rstrip("\x00") if isinstance(b, bytes) else str(b)


class CudaDriverError(CudaError):
    """The NVIDIA driver is older than the CUDA version the installed wheels were built for."""


def _version(encoded: int) -> str:
    """CUDA's 1000 * major + 10 * minor (12040) as '12.4'."""
    return f"{encoded // 1000}.{encoded % 1000 // 10}"


def versions() -> dict[str, str | None]:
    """The CUDA version the driver supports and the one cuda-python's runtime was built for
    ('12.4', '13.0'; None where the call fails, e.g. no driver at all)."""
    rt = runtime()
    found: dict[str, str | None] = {}
    for key, call in (("driver_cuda", rt.cudaDriverGetVersion),
                      ("runtime_cuda", rt.cudaRuntimeGetVersion)):
        err, value = call()
        found[key] = _version(int(value)) if err == rt.cudaError_t.cudaSuccess and value else None
    return found


def insufficient_driver_message() -> str:
    """What to do when the driver is too old for the wheels: both versions and the extra
    that matches the driver."""
    v = versions()
    driver = v["driver_cuda"] or "unknown"
    major = driver.split(".")[0] if v["driver_cuda"] else "12"
    return (f"the NVIDIA driver is too old for the installed CUDA wheels: it supports CUDA "
            f"{driver}, cuda-python's runtime is CUDA {v['runtime_cuda'] or 'unknown'} "
            f"(cudaErrorInsufficientDriver). Install the wheels for your driver (nvidia-smi "
            f"shows its 'CUDA Version'): pip install 'lgcnet-deploy[tensorrt-cu{major}]', or "
            f"update the driver (CUDA 13 wheels need R580 or newer)")


def device_count() -> int:
    """Visible CUDA devices (0 when the driver reports no device); CudaDriverError when the
    driver is too old for the installed cuda-python (that is not "no GPU")."""
    rt = runtime()
    err, n = rt.cudaGetDeviceCount()
    if err == rt.cudaError_t.cudaErrorInsufficientDriver:
        raise CudaDriverError(insufficient_driver_message())
    if err == rt.cudaError_t.cudaErrorNoDevice:
        return 0
    return int(check((err, n)))


def device_info(device: int = 0) -> dict[str, Any]:
    """Name, compute capability ('8.7') and memory of a CUDA device."""
    props = check(runtime().cudaGetDeviceProperties(device))
    return {"name": _str(props.name), "compute_capability": f"{props.major}.{props.minor}",
            "total_memory_mib": int(props.totalGlobalMem) >> 20}


def set_device(device: int) -> None:
    """Check that `device` exists, then make it current on this thread."""
    n = device_count()
    if not 0 <= device < n:
        raise CudaError(f"CUDA device {device} requested but {n} device(s) visible")
    make_current(device)


def make_current(device: int) -> None:
    """cudaSetDevice: the current device is per host thread, so every thread that runs work
    for a device sets it first."""
    check(runtime().cudaSetDevice(device))


class Stream:
    """One non-default CUDA stream (graphs cannot be captured on the legacy default stream)."""

    def __init__(self) -> None:
        self.handle = check(runtime().cudaStreamCreate())

    @property
    def ptr(self) -> int:
        """The raw cudaStream_t, as TensorRT's execute_async_v3 takes it."""
        return int(self.handle)

    def synchronize(self) -> None:
        check(runtime().cudaStreamSynchronize(self.handle))

    def close(self) -> None:
        if self.handle is not None:
            check(runtime().cudaStreamDestroy(self.handle))
            self.handle = None


class HostDeviceBuffer:
    """A pinned host array and a device allocation of the same shape and dtype."""

    def __init__(self, shape: tuple[int, ...], dtype: np.dtype | type) -> None:
        rt = runtime()
        self.dtype = np.dtype(dtype)
        self.shape = tuple(int(s) for s in shape)
        self.nbytes = int(np.prod(self.shape)) * self.dtype.itemsize
        self._host_ptr = check(rt.cudaMallocHost(self.nbytes))
        self.device = check(rt.cudaMalloc(self.nbytes))
        raw = ctypes.cast(int(self._host_ptr), ctypes.POINTER(ctypes.c_uint8))
        self.host = np.ctypeslib.as_array(raw, (self.nbytes,)).view(self.dtype).reshape(self.shape)

    @property
    def device_ptr(self) -> int:
        return int(self.device)

    def to_device(self, stream: Stream, nbytes: int | None = None) -> None:
        """Async copy of the first `nbytes` (default: all) host bytes to the device."""
        rt = runtime()
        check(rt.cudaMemcpyAsync(self.device, self.host.ctypes.data, nbytes or self.nbytes,
                                 rt.cudaMemcpyKind.cudaMemcpyHostToDevice, stream.handle))

    def to_host(self, stream: Stream, nbytes: int | None = None) -> None:
        rt = runtime()
        check(rt.cudaMemcpyAsync(self.host.ctypes.data, self.device, nbytes or self.nbytes,
                                 rt.cudaMemcpyKind.cudaMemcpyDeviceToHost, stream.handle))

    def close(self) -> None:
        if self.device is not None:
            rt = runtime()
            self.host = None
            check(rt.cudaFree(self.device))
            check(rt.cudaFreeHost(self._host_ptr))
            self.device = None


def _end_capture_on_error(stream: Stream) -> None:
    """Leave a failed capture as trtexec's TrtCudaGraph::endCaptureOnError does: end it,
    destroy the graph it returns (none when the capture was invalidated) and clear the
    sticky error, raising nothing so that the error that broke the capture is the one seen."""
    rt = runtime()
    err, graph = rt.cudaStreamEndCapture(stream.handle)
    if err == rt.cudaError_t.cudaSuccess and graph is not None and int(graph):
        rt.cudaGraphDestroy(graph)
    rt.cudaGetLastError()


class Graph:
    """A CUDA graph captured from the work `enqueue` puts on `stream`, replayed by `launch`.

    The captured work keeps its buffer addresses and shapes: the caller copies new data into
    the same buffers and relaunches. Capture is thread-local so that other threads (e.g. a
    decoder) may keep making CUDA calls meanwhile. When `enqueue` raises, the capture is
    ended, its graph destroyed, and `enqueue`'s error propagates (the stream stays usable).
    """

    def __init__(self, stream: Stream, enqueue: Callable[[], None]) -> None:
        rt = runtime()
        self.stream, self.exec = stream, None
        check(rt.cudaStreamBeginCapture(
            stream.handle, rt.cudaStreamCaptureMode.cudaStreamCaptureModeThreadLocal))
        try:
            enqueue()
        except BaseException:
            _end_capture_on_error(stream)
            raise
        graph = check(rt.cudaStreamEndCapture(stream.handle))
        try:
            # cudaGraphInstantiateWithFlags(graph, flags) has the same signature in CUDA 11.4+,
            # 12 and 13, unlike cudaGraphInstantiate whose arguments changed in CUDA 12.
            self.exec = check(rt.cudaGraphInstantiateWithFlags(graph, 0))
        except BaseException:
            rt.cudaGraphDestroy(graph)  # unchecked: the instantiate error is the one to report
            raise
        check(rt.cudaGraphDestroy(graph))

    def launch(self) -> None:
        check(runtime().cudaGraphLaunch(self.exec, self.stream.handle))

    def close(self) -> None:
        if self.exec is not None:
            check(runtime().cudaGraphExecDestroy(self.exec))
            self.exec = None
