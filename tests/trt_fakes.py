"""Stand-ins for cuda-python's runtime and TensorRT's execution objects, so the engine
backend's own logic (device per thread, lock, CUDA-graph invalidation, profile selection)
runs here without a GPU. They model only what that logic relies on, each as NVIDIA documents
it: cudaSetDevice is per host thread, reshaping an execution context invalidates graphs
captured before, an execution context must not be entered by two threads at once. And a
stand-in for the builder (TensorRT's module and Polygraphy's loaders as `build_engine` calls
them), so `lgcnet build` runs to its sidecar here."""

from __future__ import annotations

import threading
import types
from pathlib import Path
from typing import ClassVar

import numpy as np

from lgcnet_deploy.core.metadata import INPUT_UINT8_NHWC_BGR, OUTPUT_ARGMAX, ModelMeta
from lgcnet_deploy.runtime.backends.tensorrt_engine import TensorRTBackend

H, W = 4, 6


class FakeRuntime:
    """cuda-python's runtime module: records cudaSetDevice per thread; versions settable."""

    cudaError_t = types.SimpleNamespace(cudaSuccess=0, cudaErrorInsufficientDriver=35,
                                        cudaErrorNoDevice=100)

    def __init__(self, devices: int = 2, driver: int = 12040, runtime: int = 12060,
                 count_error: int = 0) -> None:
        self.devices, self.driver, self.runtime, self.count_error = (devices, driver, runtime,
                                                                     count_error)
        self.current: dict[int, int] = {}  # host thread id -> its current device
        self.set_calls: list[tuple[int, int]] = []

    def cudaSetDevice(self, device: int) -> tuple[int]:
        self.current[threading.get_ident()] = device
        self.set_calls.append((threading.get_ident(), device))
        return (0,)

    def cudaGetDeviceCount(self) -> tuple[int, int]:
        return self.count_error, 0 if self.count_error else self.devices

    def cudaDriverGetVersion(self) -> tuple[int, int]:
        return 0, self.driver

    def cudaRuntimeGetVersion(self) -> tuple[int, int]:
        return 0, self.runtime

    def cudaGetErrorName(self, err: int) -> tuple[int, bytes]:
        return 0, f"cudaError{err}".encode()

    def cudaGetErrorString(self, err: int) -> tuple[int, bytes]:
        return 0, b"error"

    def device_of_this_thread(self) -> int:
        return self.current.get(threading.get_ident(), 0)  # CUDA's default: device 0


class FakeContext:
    """An IExecutionContext whose output is input + 1 (per pixel, first channel), computed
    on the "device"; it asserts it runs on the backend's device and is entered by one thread
    at a time."""

    def __init__(self, rt: FakeRuntime, device: int, inp: FakeBuffer, out: FakeBuffer) -> None:
        self.rt, self.device, self.inp, self.out = rt, device, inp, out
        self.batch, self.generation, self.inside, self.overlaps = 0, 0, 0, 0
        self.profile_error: str | None = None
        # opt-in (the lock test): the first call waits inside for a second thread to enter
        self.wait_for_second = False
        self.entered, self.second = threading.Event(), threading.Event()

    def set_input_shape(self, name: str, shape: tuple[int, ...]) -> bool:
        self.batch, self.generation = shape[0], self.generation + 1
        return True

    def set_optimization_profile_async(self, index: int, stream: int) -> bool:
        if self.profile_error:  # what the binding does: PY_ASSERT_RUNTIME_ERROR
            raise RuntimeError(self.profile_error)
        return True

    def execute_async_v3(self, stream: int) -> bool:
        assert self.rt.device_of_this_thread() == self.device, "kernels on the wrong GPU"
        self.inside += 1
        if self.inside > 1:
            self.overlaps += 1
            self.second.set()
        if self.wait_for_second and not self.entered.is_set():
            self.entered.set()
            self.second.wait(timeout=10)  # a safety net: set as soon as the second comes
        self.out.device[:self.batch] = self.inp.device[:self.batch, :, :, 0].astype(np.int32) + 1
        self.inside -= 1
        return True


class ObservedLock:
    """threading.Lock that sets `contended` when a thread has to wait for it."""

    def __init__(self) -> None:
        self._lock, self.contended = threading.Lock(), threading.Event()

    def __enter__(self) -> ObservedLock:
        if not self._lock.acquire(blocking=False):
            self.contended.set()
            self._lock.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self._lock.release()


class FakeBuffer:
    """HostDeviceBuffer: a host and a "device" array."""

    def __init__(self, shape: tuple[int, ...], dtype: type) -> None:
        self.shape, self.nbytes = shape, int(np.prod(shape)) * np.dtype(dtype).itemsize
        self.host, self.device = np.zeros(shape, dtype), np.zeros(shape, dtype)
        self.closed = False

    def _rows(self, nbytes: int | None) -> int:
        return self.shape[0] if nbytes is None else nbytes * self.shape[0] // self.nbytes

    def to_device(self, stream: object, nbytes: int | None = None) -> None:
        self.device[:self._rows(nbytes)] = self.host[:self._rows(nbytes)]

    def to_host(self, stream: object, nbytes: int | None = None) -> None:
        self.host[:self._rows(nbytes)] = self.device[:self._rows(nbytes)]

    def close(self) -> None:
        self.closed = True


class FakeStream:
    ptr = 1

    def __init__(self) -> None:
        self.closed = False

    def synchronize(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True


class FakeGraph:
    """cuda.Graph: records the work at capture; replaying it after the context was reshaped
    is an error (the kernels were recorded for the old shapes)."""

    made: ClassVar[list[FakeGraph]] = []

    def __init__(self, stream: FakeStream, enqueue) -> None:
        self.context = FakeGraph.context
        self.batch, self.generation = self.context.batch, self.context.generation
        self.enqueue, self.closed = enqueue, False
        FakeGraph.made.append(self)

    def launch(self) -> None:
        assert not self.closed, "launched a closed graph"
        assert self.context.generation == self.generation, (
            f"graph captured at batch {self.batch} replayed after the context was reshaped")
        self.enqueue()

    def close(self) -> None:
        self.closed = True

    context: FakeContext


def fake_backend(rt: FakeRuntime, device: int = 1, max_batch: int = 4,
                 dynamic: bool = True, cuda_graph: bool = True) -> TensorRTBackend:
    """A TensorRTBackend past `_load`, on fake CUDA objects (the real `_infer`/`_close`)."""
    backend = TensorRTBackend.__new__(TensorRTBackend)
    backend.use_cuda_graph, backend._graph, backend._lock = cuda_graph, None, threading.Lock()
    backend.path, backend.device, backend._closed = (types.SimpleNamespace(name="fake.engine"),
                                                     f"cuda:{device}", False)
    backend.meta = ModelMeta.for_dataset(_camvid(), input_format=INPUT_UINT8_NHWC_BGR,
                                         output_kind=OUTPUT_ARGMAX).replace(input_size=(H, W))
    backend._device_index, backend.input_name, backend.output_name = device, "input", "output"
    backend.inp = FakeBuffer((max_batch, H, W, 3), np.uint8)
    backend.out = FakeBuffer((max_batch, H, W), np.int32)
    backend._buffers, backend.stream = [backend.inp, backend.out], FakeStream()
    backend.context = FakeContext(rt, device, backend.inp, backend.out)
    backend.dynamic_batch = dynamic
    backend.min_batch, backend.max_batch = (1 if dynamic else max_batch), max_batch
    backend._set_batch(max_batch, backend.inp.shape)
    FakeGraph.context, FakeGraph.made = backend.context, []
    return backend


def _camvid():
    from lgcnet_deploy.core.classes import CAMVID

    return CAMVID


def frames(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 200, (n, H, W, 3), dtype=np.uint8)


class FakeBuilder:
    """`tensorrt` and `polygraphy.backend.trt` as build_engine uses them: the network it
    parses is recorded as (ONNX path, strongly typed), and the build writes a stand-in engine
    (no I/O tensors) where SaveEngine is told to."""

    __version__ = "10.12.0.36"  # strongly typed for every precision
    MemoryPoolType = types.SimpleNamespace(WORKSPACE="workspace")
    ProfilingVerbosity = types.SimpleNamespace(DETAILED="detailed")

    def __init__(self) -> None:
        self.networks: list[tuple[str, bool]] = []

    def NetworkFromOnnxPath(self, path: str, strongly_typed: bool) -> str:
        self.networks.append((path, strongly_typed))
        return path

    def Profile(self) -> types.SimpleNamespace:
        return types.SimpleNamespace(add=lambda name, *shapes: (name, shapes))

    def CreateConfig(self, **settings: object) -> dict:
        return settings

    def PostprocessConfig(self, config: dict, func: object) -> dict:
        return config

    def EngineFromNetwork(self, network: str, config: dict, save_timing_cache: str | None) -> str:
        return network

    def SaveEngine(self, engine: str, path: str):
        def build() -> types.SimpleNamespace:
            Path(path).write_bytes(f"engine of {engine}".encode())
            return types.SimpleNamespace(num_io_tensors=0)
        return build
