"""PyTorch backend for `.pt` checkpoints: folded BN, in-graph uint8 input and argmax.

On CPU it runs the folded fp32 model; on CUDA it hands the same module to the fast path in
`backends.torch_cuda` (fp16, channels_last, CUDA graphs).
"""

from __future__ import annotations

import numpy as np
import torch

from lgcnet_deploy.core.metadata import INPUT_UINT8_NHWC_BGR, OUTPUT_ARGMAX, ModelMeta
from lgcnet_deploy.model.checkpoint import load_checkpoint
from lgcnet_deploy.model.fold_bn import fold_batchnorm
from lgcnet_deploy.model.io_wrapper import wrap_io
from lgcnet_deploy.runtime.backends.base import Backend, BackendError


class TorchBackend(Backend):
    """A training checkpoint run by PyTorch on CPU or CUDA."""

    name = "torch"

    def _load(self) -> ModelMeta:
        net, meta, _ = load_checkpoint(self.path)
        meta = meta.replace(input_format=INPUT_UINT8_NHWC_BGR, output_kind=OUTPUT_ARGMAX)
        self.module = wrap_io(fold_batchnorm(net), meta)
        if self.device.startswith("cuda"):
            if not torch.cuda.is_available():
                raise BackendError("torch: device 'cuda' asked for but torch.cuda.is_available() "
                                   "is False; install a CUDA build of PyTorch or use "
                                   "device='cpu'")
            from lgcnet_deploy.runtime.backends.pytorch_cuda import CudaRunner

            self.runner = CudaRunner(self.module, self.device)
            meta = meta.replace(precision=self.runner.precision)
        elif self.device == "cpu":
            self.runner = self._run_cpu
        else:
            raise BackendError(f"torch: unknown device {self.device!r}; use 'cpu' or 'cuda[:N]'")
        return meta

    @torch.inference_mode()
    def _run_cpu(self, batch: np.ndarray) -> np.ndarray:
        return self.module(torch.from_numpy(batch)).numpy()

    def _infer(self, batch: np.ndarray) -> np.ndarray:
        return self.runner(batch)
