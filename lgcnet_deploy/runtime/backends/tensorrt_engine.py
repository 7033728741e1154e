"""TensorRT backend for `.engine` files: built by `lgcnet build`, or elsewhere (trtexec,
Polygraphy) and copied without a sidecar.

Load order is chosen so that a foreign or corrupt engine is refused in Python before
TensorRT sees it where we can tell: sidecar (if any) valid -> engine bytes match its hash ->
tensorrt and cuda-python importable -> a GPU -> same TensorRT version and GPU architecture
-> deserialise (None is an error) -> the engine's I/O tensors (engine_io.derive_io) match the
sidecar's metadata, or, without a sidecar, give the metadata (default classes/palette, one
warning). Inference: one stream, pinned host + device buffers allocated once,
execute_async_v3 on named tensors, and (default) the copy-in/enqueue/copy-out sequence
captured into a CUDA graph at the current batch size (recaptured when the batch changes).
Every inference and `close` first makes the engine's GPU current on the calling thread and
holds the backend's lock: one execution context is not to be used by two threads at once,
so a Segmenter per thread is the way to run threads in parallel. Every TensorRT call that
reports failure by returning False (set_input_shape, set_tensor_address, execute_async_v3)
is checked and raised, as Polygraphy's TrtRunner does
(NVIDIA/TensorRT tools/Polygraphy/polygraphy/backend/trt/runner.py);
set_optimization_profile_async raises instead, and is caught.

The raw API (not Polygraphy's TrtRunner) is kept here on purpose: this is the hot path, and
the runner allocates per call and has no CUDA-graph replay. API: NVIDIA/TensorRT
python/src/infer/pyCore.cpp and python/docstrings/infer/pyCoreDoc.h (ICudaEngine,
IExecutionContext); CUDA graphs: capture after one enqueue with the final shapes, on a
non-default stream (TensorRT developer guide, "CUDA Graphs"). docs/tensorrt.md has the
"verified against" table.
"""

from __future__ import annotations

import threading
import warnings
from types import ModuleType

import numpy as np

from lgcnet_deploy.core import cuda
from lgcnet_deploy.core.metadata import ModelMeta, file_sha256
from lgcnet_deploy.export.engine import import_tensorrt, trt_logger
from lgcnet_deploy.export.engine.engine_io import (
    EngineIO,
    check_io_matches,
    default_meta,
    derive_io,
)
from lgcnet_deploy.export.engine.sidecar import (
    EngineMismatchError,
    check_sidecar,
    find_sidecar,
    rebuild_command,
    sidecar_meta,
)
from lgcnet_deploy.runtime.backends.base import Backend, BackendError


def checked(ok: bool, call: str) -> None:
    """Raise BackendError when a TensorRT call that returns a success bool returned False."""
    if not ok:
        raise BackendError(f"TensorRT {call} failed (see TensorRT's log above)")


def cuda_index(device: str) -> int:
    """'cuda' / 'cuda:N'; 'cpu' (the Segmenter's default) also means GPU 0: engines only
    run on a GPU, and the .onnx is the file for CPUs."""
    if device in ("cpu", "cuda", "auto"):
        return 0
    if device.startswith("cuda:") and device[5:].isdigit():
        return int(device[5:])
    raise BackendError(f"tensorrt: unknown device {device!r}; use 'cuda' or 'cuda:N'")


def _visible_devices() -> int:
    """cuda.device_count(), with a too-old driver said as such (not as "no GPU")."""
    try:
        return cuda.device_count()
    except cuda.CudaDriverError as e:
        raise BackendError(f"TensorRT engines cannot run here: {e}") from e


class TensorRTBackend(Backend):
    """A serialized TensorRT engine on one GPU."""

    name = "tensorrt-engine"  # not ONNX Runtime's TensorRT provider ("ort-tensorrt")

    def __init__(self, path, device: str = "cuda", cuda_graph: bool = True) -> None:
        self.use_cuda_graph = cuda_graph
        self._graph: cuda.Graph | None = None  # captured at the context's current batch
        # One execution context and one set of buffers: an IExecutionContext must not be
        # used by two threads at once (TensorRT developer guide, "Thread Safety").
        self._lock = threading.Lock()
        self._buffers: list[cuda.HostDeviceBuffer] = []
        self.stream: cuda.Stream | None = None
        super().__init__(path, device)

    def _load(self) -> ModelMeta:
        side = find_sidecar(self.path)
        if side is not None and file_sha256(self.path) != side["engine_sha256"]:
            raise EngineMismatchError(f"{self.path} does not match the hash in its sidecar "
                                      f"(corrupt, or replaced by another engine); rebuild "
                                      f"it:\n  {rebuild_command(side)}")
        trt = self._import(side)
        index = cuda_index(self.device)
        if _visible_devices() == 0:
            raise BackendError("no CUDA GPU is visible (NVIDIA driver missing, or "
                               "CUDA_VISIBLE_DEVICES hides it): TensorRT engines need one. "
                               "On a CPU use the ONNX model: Segmenter('model.onnx')")
        cuda.set_device(index)
        self._device_index = index
        if side is not None:
            check_sidecar(side, trt.__version__, cuda.device_info(index))
        self._runtime = trt.Runtime(trt_logger(trt))
        self.engine = self._runtime.deserialize_cuda_engine(self.path.read_bytes())
        if self.engine is None:
            hint = rebuild_command(side) if side else "rebuild it with this machine's TensorRT"
            raise EngineMismatchError(f"TensorRT could not deserialise {self.path} (see its log "
                                      f"above; an engine only loads on the TensorRT version "
                                      f"and GPU architecture that built it):\n  {hint}")
        io = derive_io([(n, self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT,
                         tuple(self.engine.get_tensor_shape(n)),
                         self.engine.get_tensor_dtype(n).name)
                        for n in map(self.engine.get_tensor_name,
                                     range(self.engine.num_io_tensors))], self.path.name)
        if side is None:
            meta = default_meta(io, self.path.name)
        else:
            meta = sidecar_meta(side, self.path)
            check_io_matches(io, meta, self.path.name)
        self._bind(trt, io)
        return meta

    def _import(self, side: dict | None) -> ModuleType:
        """tensorrt, after checking cuda-python imports too; BackendError saying what's missing."""
        try:
            trt = import_tensorrt()
            cuda.runtime()
        except ImportError as e:
            built = (f" (built with TensorRT {side['tensorrt']} for a {side['gpu']['name']})"
                     if side else "")
            raise BackendError(f"{self.path.name} is a TensorRT engine{built}, but {e}") from e
        return trt

    def _bind(self, trt: ModuleType, io: EngineIO) -> None:
        """Execution context, stream, buffers for the largest batch, tensor addresses."""
        self.input_name, self.output_name = io.input_name, io.output_name
        self.context = self.engine.create_execution_context()
        if self.context is None:
            raise BackendError(f"TensorRT could not create an execution context for "
                               f"{self.path.name} (out of GPU memory?)")
        self.stream = cuda.Stream()
        shape = io.input_shape
        self.dynamic_batch = io.dynamic_batch
        if self.dynamic_batch:
            self._select_profile()
            self.min_batch, _, self.max_batch = (
                s[0] for s in self.engine.get_tensor_profile_shape(self.input_name, 0))
            shape = (self.max_batch, *shape[1:])
        else:
            self.min_batch = self.max_batch = shape[0]
        self._set_batch(shape[0], shape)
        out_shape = tuple(self.context.get_tensor_shape(self.output_name))
        self.inp = cuda.HostDeviceBuffer(shape, trt.nptype(
            self.engine.get_tensor_dtype(self.input_name)))
        self.out = cuda.HostDeviceBuffer(out_shape, trt.nptype(
            self.engine.get_tensor_dtype(self.output_name)))
        self._buffers = [self.inp, self.out]
        for name, buf in ((self.input_name, self.inp), (self.output_name, self.out)):
            checked(self.context.set_tensor_address(name, buf.device_ptr),
                    f"set_tensor_address({name!r})")

    def _select_profile(self) -> None:
        """Profile 0 on our stream. The binding raises RuntimeError instead of returning
        False (PY_ASSERT_RUNTIME_ERROR, python/src/infer/pyCore.cpp:336-342)."""
        try:
            self.context.set_optimization_profile_async(0, self.stream.ptr)
        except RuntimeError as e:
            raise BackendError(f"TensorRT set_optimization_profile_async(0) failed for "
                               f"{self.path.name} ({e}; see TensorRT's log above)") from e

    def _set_batch(self, batch: int, shape: tuple[int, ...]) -> None:
        """Reshape the context; a graph captured at another batch is dropped, since its
        kernels were recorded for that shape (trtexec captures once per context after a
        warm-up enqueue: samples/common/sampleInference.cpp:1334-1350)."""
        checked(self.context.set_input_shape(self.input_name, (batch, *shape[1:])),
                f"set_input_shape({self.input_name!r}, batch {batch})")
        self._batch = batch
        self._drop_graph()

    def _drop_graph(self) -> None:
        if self._graph is not None:
            graph, self._graph = self._graph, None
            graph.close()

    def _enqueue(self, batch: int) -> None:
        self.inp.to_device(self.stream, self.inp.nbytes // self.inp.shape[0] * batch)
        checked(self.context.execute_async_v3(self.stream.ptr),
                f"execute_async_v3 of {self.path.name}")
        self.out.to_host(self.stream, self.out.nbytes // self.out.shape[0] * batch)

    def _captured(self, batch: int) -> cuda.Graph | None:
        """The CUDA graph for the context's current batch, captured on first use."""
        if self._graph is None:
            self._enqueue(batch)  # TensorRT must run once with these shapes before a capture
            self.stream.synchronize()
            try:
                self._graph = cuda.Graph(self.stream, lambda: self._enqueue(batch))
            except (cuda.CudaError, BackendError) as e:
                warnings.warn(f"{self.path.name}: CUDA graph capture failed ({e}); running "
                              f"without CUDA graphs", stacklevel=4)
                self.use_cuda_graph = False
        return self._graph

    def _infer(self, batch: np.ndarray) -> np.ndarray:
        n = batch.shape[0]
        if not 1 <= n <= self.max_batch:
            raise ValueError(f"{self.path.name} takes batches of {self.min_batch}.."
                             f"{self.max_batch} frames, got {n}; rebuild with a larger --max")
        # Static engines run their full batch (extra rows are stale and dropped); dynamic
        # ones run at max(n, the profile's minimum).
        run = max(n, self.min_batch) if self.dynamic_batch else self.max_batch
        with self._lock:
            # cudaSetDevice is per host thread: a Segmenter made on the main thread may
            # predict on a worker (the ROS 2 node does), which starts on device 0.
            cuda.make_current(self._device_index)
            if run != self._batch:
                self._set_batch(run, self.inp.shape)
            self.inp.host[:n] = batch
            graph = self._captured(run) if self.use_cuda_graph else None
            if graph is not None:
                graph.launch()
            else:
                self._enqueue(run)
            self.stream.synchronize()
            return self.out.host[:n].copy()

    def _close(self) -> None:
        with self._lock:
            if self.stream is not None:  # loaded far enough to hold CUDA resources
                cuda.make_current(self._device_index)
            self._drop_graph()
            for buf in self._buffers:
                buf.close()
            if self.stream is not None:
                self.stream.close()
            self.context = self.engine = self._runtime = None
