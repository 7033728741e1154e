"""ONNX Runtime backend: CPU by default, CUDA or TensorRT execution providers when installed."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort

from lgcnet_deploy.core.metadata import MetadataError, ModelMeta
from lgcnet_deploy.export.integrity import check_io, verify_weights_digest
from lgcnet_deploy.runtime.backends.base import Backend, BackendError

# device name -> ONNX Runtime execution providers, in order of preference
PROVIDERS = {
    "cpu": ["CPUExecutionProvider"],
    "cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"],
    "tensorrt": ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
}


class OnnxRuntimeBackend(Backend):
    """An .onnx model exported by `lgcnet export` (its metadata_props describe the I/O)."""

    name = "onnxruntime"

    def __init__(self, path, device: str = "cpu", threads: int | None = None,
                 verify: bool = True) -> None:
        self.threads = threads
        super().__init__(path, device, verify)

    def _load(self) -> ModelMeta:
        kind = self.device.split(":")[0]
        if kind not in PROVIDERS:
            raise BackendError(f"onnxruntime: unknown device {self.device!r}; use one of "
                               f"{', '.join(PROVIDERS)}")
        wanted = PROVIDERS[kind]
        if wanted[0] not in ort.get_available_providers():
            raise BackendError(
                f"onnxruntime: {wanted[0]} is not available in this onnxruntime build "
                f"(available: {', '.join(ort.get_available_providers())}); install "
                f"onnxruntime-gpu for CUDA/TensorRT, or use device='cpu'")
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if self.threads:
            opts.intra_op_num_threads = self.threads
        try:
            self.session = ort.InferenceSession(str(self.path), opts, providers=wanted)
        except Exception as e:  # ORT raises its own exception types for invalid/corrupt files
            raise BackendError(f"onnxruntime cannot load {self.path}: {e}") from e
        props = self.session.get_modelmeta().custom_metadata_map
        try:
            meta = ModelMeta.from_props(props)
        except MetadataError as e:
            raise BackendError(f"{self.path} was not exported by lgcnet-deploy ({e})") from e
        inp = self.session.get_inputs()[0]
        check_io(self.path, meta, inp.shape, self.session.get_outputs()[0].shape)
        if self.verify:
            verify_weights_digest(self.path)
        self.input_name = inp.name
        self.dynamic_batch = not isinstance(inp.shape[0], int)
        self.max_batch = None if self.dynamic_batch else inp.shape[0]
        return meta

    def _infer(self, batch: np.ndarray) -> np.ndarray:
        n = batch.shape[0]
        if self.max_batch is not None and n != self.max_batch:
            if n > self.max_batch:
                raise ValueError(f"{self.path.name} was exported with static batch "
                                 f"{self.max_batch}, got {n}; re-export with --dynamic-batch")
            pad = np.zeros((self.max_batch - n, *batch.shape[1:]), batch.dtype)
            return self.session.run(None, {self.input_name: np.concatenate([batch, pad])})[0][:n]
        return self.session.run(None, {self.input_name: batch})[0]

    @property
    def providers(self) -> list[str]:
        return self.session.get_providers()
