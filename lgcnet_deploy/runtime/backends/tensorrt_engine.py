"""TensorRT backend for `.engine` files built by `lgcnet build`.

Load order is chosen so that a foreign or corrupt engine is refused in Python, never handed to
TensorRT blind: sidecar present and ours -> engine bytes match its hash -> tensorrt and
cuda-python importable -> a GPU -> same TensorRT version and GPU architecture -> deserialise
(None is an error) -> named I/O tensors match the metadata. Inference: one stream, pinned
host + device buffers allocated once, execute_async_v3 on named tensors, and (default) the
copy-in/enqueue/copy-out sequence captured once per batch size into a CUDA graph.

API (TensorRT 10/11 Python): Runtime.deserialize_cuda_engine, ICudaEngine.num_io_tensors/
get_tensor_name/get_tensor_mode/get_tensor_dtype/get_tensor_shape/get_tensor_profile_shape,
IExecutionContext.set_input_shape/get_tensor_shape/set_tensor_address/execute_async_v3;
  https://docs.nvidia.com/deeplearning/tensorrt/latest/_static/python-api/infer/Core/Engine.html
  https://docs.nvidia.com/deeplearning/tensorrt/latest/_static/python-api/infer/Core/ExecutionContext.html
  https://docs.nvidia.com/deeplearning/tensorrt/latest/api/migration/tensorrt-8x-to-10x-python-api-patterns.html
CUDA graphs: enqueue once after setting shapes, then capture on a non-default stream (TensorRT
developer guide, "CUDA Graphs").
"""

from __future__ import annotations

import warnings

import numpy as np

from lgcnet_deploy.core import cuda
from lgcnet_deploy.core.metadata import INPUT_UINT8_NHWC_BGR, OUTPUT_ARGMAX, ModelMeta, file_sha256
from lgcnet_deploy.export.engine import import_tensorrt, trt_logger
from lgcnet_deploy.export.engine.sidecar import (
    EngineMismatchError,
    check_sidecar,
    read_sidecar,
    rebuild_command,
    sidecar_meta,
)
from lgcnet_deploy.runtime.backends.base import Backend, BackendError


def cuda_index(device: str) -> int:
    """'cuda' / 'cuda:N'; 'cpu' (the Segmenter's default) also means GPU 0: engines only
    run on a GPU, and the .onnx is the file for CPUs."""
    if device in ("cpu", "cuda", "auto"):
        return 0
    if device.startswith("cuda:") and device[5:].isdigit():
        return int(device[5:])
    raise BackendError(f"tensorrt: unknown device {device!r}; use 'cuda' or 'cuda:N'")


class TensorRTBackend(Backend):
    """A serialized TensorRT engine on one GPU."""

    name = "tensorrt"

    def __init__(self, path, device: str = "cuda", cuda_graph: bool = True) -> None:
        self.use_cuda_graph = cuda_graph
        self._graphs: dict[int, cuda.Graph] = {}
        self._buffers: list[cuda.HostDeviceBuffer] = []
        self.stream: cuda.Stream | None = None
        super().__init__(path, device)

    def _load(self) -> ModelMeta:
        side = read_sidecar(self.path)
        if file_sha256(self.path) != side["engine_sha256"]:
            raise EngineMismatchError(f"{self.path} does not match the hash in its sidecar "
                                      f"(corrupt, or replaced by another engine); rebuild "
                                      f"it:\n  {rebuild_command(side)}")
        try:
            trt = import_tensorrt()
            cuda.runtime()
        except ImportError as e:
            raise BackendError(f"{self.path.name} is a TensorRT engine (built with TensorRT "
                               f"{side['tensorrt']} for a {side['gpu'].get('name')}), but {e}"
                               ) from e
        index = cuda_index(self.device)
        if cuda.device_count() == 0:
            raise BackendError("no CUDA GPU is visible (NVIDIA driver missing, or "
                               "CUDA_VISIBLE_DEVICES hides it): TensorRT engines need one. "
                               "On a CPU use the ONNX model: Segmenter('model.onnx')")
        cuda.set_device(index)
        check_sidecar(side, trt.__version__, cuda.device_info(index))

        self._runtime = trt.Runtime(trt_logger(trt))
        self.engine = self._runtime.deserialize_cuda_engine(self.path.read_bytes())
        if self.engine is None:
            raise EngineMismatchError(f"TensorRT could not deserialise {self.path} (see its log "
                                      f"above); rebuild it:\n  {rebuild_command(side)}")
        meta = sidecar_meta(side)
        self._check_io(trt, meta)
        self.context = self.engine.create_execution_context()
        shape = tuple(self.engine.get_tensor_shape(self.input_name))
        self.dynamic_batch = shape[0] == -1
        if self.dynamic_batch:
            self.min_batch, _, self.max_batch = (
                s[0] for s in self.engine.get_tensor_profile_shape(self.input_name, 0))
            shape = (self.max_batch, *shape[1:])
        else:
            self.min_batch = self.max_batch = shape[0]
        self.context.set_input_shape(self.input_name, shape)
        out_shape = tuple(self.context.get_tensor_shape(self.output_name))
        self.stream = cuda.Stream()
        self.inp = cuda.HostDeviceBuffer(shape, trt.nptype(
            self.engine.get_tensor_dtype(self.input_name)))
        self.out = cuda.HostDeviceBuffer(out_shape, trt.nptype(
            self.engine.get_tensor_dtype(self.output_name)))
        self._buffers = [self.inp, self.out]
        self.context.set_tensor_address(self.input_name, self.inp.device_ptr)
        self.context.set_tensor_address(self.output_name, self.out.device_ptr)
        self._batch = shape[0]
        return meta

    def _check_io(self, trt, meta: ModelMeta) -> None:
        """Exactly one input and one output whose dtypes are what `meta` promises."""
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        ins = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        outs = [n for n in names if n not in ins]
        want_in = trt.uint8 if meta.input_format == INPUT_UINT8_NHWC_BGR else trt.float32
        want_out = trt.int32 if meta.output_kind == OUTPUT_ARGMAX else trt.float32
        got = [self.engine.get_tensor_dtype(n) for n in ins + outs]
        if len(ins) != 1 or len(outs) != 1 or got != [want_in, want_out]:
            raise EngineMismatchError(
                f"{self.path}: engine I/O {dict(zip(ins + outs, map(str, got)))} does not match "
                f"its metadata ({meta.input_format} in, {meta.output_kind} out); rebuild it")
        self.input_name, self.output_name = ins[0], outs[0]

    def _enqueue(self, batch: int) -> None:
        self.inp.to_device(self.stream, self.inp.nbytes // self.inp.shape[0] * batch)
        if not self.context.execute_async_v3(self.stream.ptr):
            raise BackendError(f"TensorRT execution of {self.path.name} failed (see log above)")
        self.out.to_host(self.stream, self.out.nbytes // self.out.shape[0] * batch)

    def _graph(self, batch: int) -> cuda.Graph | None:
        if batch not in self._graphs:
            self._enqueue(batch)  # TensorRT must run once with these shapes before a capture
            self.stream.synchronize()
            try:
                self._graphs[batch] = cuda.Graph(self.stream, lambda: self._enqueue(batch))
            except (cuda.CudaError, BackendError) as e:
                warnings.warn(f"{self.path.name}: CUDA graph capture failed ({e}); running "
                              f"without CUDA graphs", stacklevel=3)
                self.use_cuda_graph = False
                return None
        return self._graphs[batch]

    def _infer(self, batch: np.ndarray) -> np.ndarray:
        n = batch.shape[0]
        if not 1 <= n <= self.max_batch:
            raise ValueError(f"{self.path.name} takes batches of {self.min_batch}.."
                             f"{self.max_batch} frames, got {n}; rebuild with a larger --max")
        # Static engines run their full batch (extra rows are stale and dropped); dynamic
        # ones run at max(n, the profile's minimum).
        run = max(n, self.min_batch) if self.dynamic_batch else self.max_batch
        if run != self._batch:
            self.context.set_input_shape(self.input_name, (run, *self.inp.shape[1:]))
            self._batch = run
        self.inp.host[:n] = batch
        graph = self._graph(run) if self.use_cuda_graph else None
        if graph is not None:
            graph.launch()
        else:
            self._enqueue(run)
        self.stream.synchronize()
        return self.out.host[:n].copy()

    def _close(self) -> None:
        for graph in self._graphs.values():
            graph.close()
        for buf in self._buffers:
            buf.close()
        if self.stream is not None:
            self.stream.close()
        self.context = self.engine = self._runtime = None
