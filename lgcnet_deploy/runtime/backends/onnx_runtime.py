"""ONNX Runtime backend: CPU by default; CUDA, or TensorRT through ONNX Runtime's TensorRT
execution provider ("ort-tensorrt", not the `.engine` backend), when installed.

The TensorRT provider gets FP16 and its engine and timing caches (otherwise it rebuilds the
engine in fp32 at every start), INT8 for a Q/DQ model (it sets TensorRT's INT8 builder flag
only when asked, and TensorRT refuses Q/DQ layers without it), and is never left silently:
ONNX Runtime falls back to the next provider when one fails to register, so a session without
it is an error, and nodes the TensorRT gate would refuse (they would run on CUDA/CPU) are
named in a warning.
Options: https://onnxruntime.ai/docs/execution-providers/TensorRT-ExecutionProvider.html
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from lgcnet_deploy.artifact.integrity import check_io, verify_weights_digest
from lgcnet_deploy.core.errors import BadInputError, damaged
from lgcnet_deploy.core.logs import ort_severity
from lgcnet_deploy.core.metadata import MetadataError, ModelMeta
from lgcnet_deploy.runtime.backends.base import Backend, BackendError

ORT_TENSORRT, ORT_CUDA, ORT_CPU = ("TensorrtExecutionProvider", "CUDAExecutionProvider",
                                   "CPUExecutionProvider")
# device kind -> ONNX Runtime execution providers, in order of preference; the kind's first
# provider must be the one the session gets
PROVIDERS = {
    "cpu": [ORT_CPU],
    "cuda": [ORT_CUDA, ORT_CPU],
    "tensorrt": [ORT_TENSORRT, ORT_CUDA, ORT_CPU],
}
LABELS = {ORT_CPU: "onnxruntime", ORT_CUDA: "ort-cuda", ORT_TENSORRT: "ort-tensorrt"}
# ONNX Runtime's exception types (pybind, by name) that mean the file itself is unreadable;
# its generic "Fail" means that too on the CPU, where no device can be the cause.
ORT_FILE_ERRORS = frozenset({"InvalidProtobuf", "InvalidGraph", "InvalidArgument",
                             "NoSuchFile", "NotImplemented", "UnicodeDecodeError"})


def ort_tensorrt_cache() -> Path:
    """Where ONNX Runtime's TensorRT provider keeps engines and timing caches."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "lgcnet" / "ort-tensorrt"


def provider_options(provider: str, device_index: int, qdq: bool = False) -> dict[str, Any]:
    """The options each GPU provider gets (ONNX Runtime's documented option names). `qdq`: the
    model holds Q/DQ nodes. The TensorRT provider sets BuilderFlag.INT8 only for
    trt_int8_enable (onnxruntime tensorrt_execution_provider.cc), and TensorRT refuses a Q/DQ
    network without it ("Int8 precision has been set for a layer or layer output, but int8 is
    not configured in the builder", microsoft/onnxruntime#13381); no calibration table, which
    is for models without Q/DQ (microsoft/onnxruntime#8969)."""
    if provider == ORT_TENSORRT:
        cache = str(ort_tensorrt_cache())
        return {"device_id": device_index, "trt_fp16_enable": True, "trt_int8_enable": qdq,
                "trt_engine_cache_enable": True, "trt_engine_cache_path": cache,
                "trt_timing_cache_enable": True, "trt_timing_cache_path": cache}
    return {"device_id": device_index} if provider == ORT_CUDA else {}


def _has_qdq(path: Path) -> bool:
    import onnx

    from lgcnet_deploy.artifact.describe import has_qdq

    try:
        return has_qdq(onnx.load(str(path), load_external_data=False))
    except Exception as e:  # protobuf's DecodeError and friends
        raise damaged(path, "ONNX model", e) from e


class OnnxRuntimeBackend(Backend):
    """An .onnx model exported by `lgcnet export` (its metadata_props describe the I/O)."""

    def __init__(self, path, device: str = "cpu", threads: int | None = None,
                 verify: bool = True) -> None:
        self.threads = threads
        super().__init__(path, device, verify)

    @property
    def name(self) -> str:
        """'onnxruntime' on the CPU, 'ort-cuda' / 'ort-tensorrt' on a GPU provider."""
        session = getattr(self, "session", None)
        return LABELS.get(session.get_providers()[0], "onnxruntime") if session else \
            "onnxruntime"

    def _load(self) -> ModelMeta:
        kind, _, index = self.device.partition(":")
        if kind not in PROVIDERS or (index and not index.isdigit()):
            raise BackendError(f"onnxruntime: unknown device {self.device!r}; use one of "
                               f"{', '.join(PROVIDERS)} (GPU ones with an optional :N)")
        wanted = PROVIDERS[kind]
        if wanted[0] not in ort.get_available_providers():
            raise BackendError(
                f"onnxruntime: {wanted[0]} is not available in this onnxruntime build "
                f"(available: {', '.join(ort.get_available_providers())}); install "
                f"onnxruntime-gpu for CUDA/TensorRT, or use device='cpu'")
        qdq = wanted[0] == ORT_TENSORRT and _has_qdq(self.path)
        if wanted[0] == ORT_TENSORRT:
            ort_tensorrt_cache().mkdir(parents=True, exist_ok=True)
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        ort.set_default_logger_severity(ort_severity())  # the SDK's log level (core.logs)
        opts.log_severity_level = ort_severity()
        if self.threads:
            opts.intra_op_num_threads = self.threads
        providers = [(p, provider_options(p, int(index or 0), qdq)) for p in wanted]
        try:
            self.session = ort.InferenceSession(str(self.path), opts, providers=providers)
        except Exception as e:  # ORT raises its own exception types for invalid/corrupt files
            name = type(e).__name__
            if name in ORT_FILE_ERRORS or (kind == "cpu" and name == "Fail"):
                raise damaged(self.path, "ONNX model", e) from e
            raise BackendError(f"onnxruntime cannot load {self.path}: {e}") from e
        got = self.session.get_providers()
        if got[0] != wanted[0]:
            raise BackendError(f"onnxruntime: {wanted[0]} failed to start for {self.path.name} "
                               f"(ONNX Runtime fell back to {got[0]}; its log above says "
                               f"why); not running on another provider silently")
        if wanted[0] == ORT_TENSORRT:
            self._warn_partial_tensorrt()
        try:
            props = self.session.get_modelmeta().custom_metadata_map
        except UnicodeDecodeError as e:  # metadata strings that are no longer UTF-8
            raise damaged(self.path, "ONNX model", e) from e
        try:
            meta = ModelMeta.from_props(props)
        except MetadataError as e:
            raise MetadataError(f"{self.path} was not exported by lgcnet-deploy ({e})") from e
        inp = self.session.get_inputs()[0]
        check_io(self.path, meta, inp.shape, self.session.get_outputs()[0].shape)
        if self.verify:
            verify_weights_digest(self.path)
        self.input_name = inp.name
        self.dynamic_batch = not isinstance(inp.shape[0], int)
        self.max_batch = None if self.dynamic_batch else inp.shape[0]
        return meta

    def _warn_partial_tensorrt(self) -> None:
        """ONNX Runtime hands nodes TensorRT rejects to CUDA/CPU without a word; say so."""
        from lgcnet_deploy.artifact.engine.trt_rules import check_onnx, errors

        broken = errors(check_onnx(self.path, profiled_inputs={
            i.name for i in self.session.get_inputs()}))
        if broken:
            warnings.warn(f"{self.path.name}: {len(broken)} node(s) break TensorRT rules and "
                          f"will run on {ORT_CUDA}/{ORT_CPU}, e.g. {broken[0]}; see `lgcnet "
                          f"check-trt {self.path}`", stacklevel=3)

    def _infer(self, batch: np.ndarray) -> np.ndarray:
        n = batch.shape[0]
        if self.max_batch is not None and n != self.max_batch:
            if n > self.max_batch:
                raise BadInputError(f"{self.path.name} was exported with static batch "
                                    f"{self.max_batch}, got {n}; re-export with --dynamic-batch")
            pad = np.zeros((self.max_batch - n, *batch.shape[1:]), batch.dtype)
            return self.session.run(None, {self.input_name: np.concatenate([batch, pad])})[0][:n]
        return self.session.run(None, {self.input_name: batch})[0]

    @property
    def providers(self) -> list[str]:
        return self.session.get_providers()
