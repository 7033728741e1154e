"""PyTorch CUDA fast path for GPUs without TensorRT: fp16, channels_last, folded BN, CUDA graphs.

Used by TorchBackend for device 'cuda[:N]':  `CudaRunner(deploy_module, device)(np_batch)`.
The InGraphIO (BN already folded by wrap_io) keeps its fp32 uint8 normalisation and
argmax; only the network inside runs in fp16 and channels_last (NHWC, what Tensor Cores
want; the uint8 NHWC input is already laid out that way). The forward is captured once per
input shape into a torch.cuda.CUDAGraph and replayed from static, pinned buffers, removing
the per-kernel launch overhead that dominates small real-time nets at batch 1.
torch.compile is not used: its mode="reduce-overhead" is itself CUDA graphs, and
"max-autotune" needs Triton, which Jetson's PyTorch wheels usually lack.
Docs: https://docs.pytorch.org/docs/stable/notes/cuda.html#cuda-graphs ,
https://docs.pytorch.org/tutorials/intermediate/memory_format_tutorial.html
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

from lgcnet_deploy.export.io_wrapper import InGraphIO


class _HalfNet(nn.Module):
    """Run `net` in fp16/channels_last on fp32 input; return fp32."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net.half().to(memory_format=torch.channels_last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.to(torch.float16, memory_format=torch.channels_last)).float()


class CudaRunner:
    """Callable `np batch -> np output` for an InGraphIO on a CUDA device (any torch device
    works; CUDA graphs are used only on CUDA)."""

    def __init__(self, module: InGraphIO, device: str = "cuda", fp16: bool = True,
                 use_cuda_graph: bool = True) -> None:
        self.device = torch.device(device)
        self.precision = "fp16" if fp16 else "fp32"
        module = copy.deepcopy(module).eval()
        if fp16:
            module.net = _HalfNet(module.net)
        self.module = module.to(self.device)
        self.use_cuda_graph = use_cuda_graph and self.device.type == "cuda"
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # fixed shapes: pick the fastest conv once
        self._graphs: dict[tuple, tuple] = {}

    @torch.no_grad()
    def _capture(self, shape: tuple[int, ...], dtype: torch.dtype) -> tuple:
        static_in = torch.zeros(shape, dtype=dtype, device=self.device)
        side = torch.cuda.Stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side):  # warm-up (cuDNN autotuning) off the capture
            for _ in range(3):
                self.module(static_in)
        torch.cuda.current_stream(self.device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            static_out = self.module(static_in)
        host_in = torch.empty(shape, dtype=dtype, pin_memory=True)
        host_out = torch.empty(static_out.shape, dtype=static_out.dtype, pin_memory=True)
        return graph, static_in, static_out, host_in, host_out

    @torch.no_grad()
    def __call__(self, batch: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(batch))
        if not self.use_cuda_graph:
            return self.module(x.to(self.device)).cpu().numpy()
        key = (tuple(x.shape), x.dtype)
        if key not in self._graphs:
            self._graphs[key] = self._capture(*key)
        graph, static_in, static_out, host_in, host_out = self._graphs[key]
        host_in.copy_(x)
        static_in.copy_(host_in, non_blocking=True)
        graph.replay()
        host_out.copy_(static_out, non_blocking=True)
        torch.cuda.current_stream(self.device).synchronize()
        return host_out.numpy().copy()
