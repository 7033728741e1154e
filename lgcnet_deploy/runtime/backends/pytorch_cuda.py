"""PyTorch CUDA fast path for GPUs without TensorRT: fp16, channels_last, folded BN, CUDA graphs.

Used by TorchBackend for device 'cuda[:N]':  `CudaRunner(deploy_module, device)(np_batch)`.
The InGraphIO (BN folded before wrap_io) keeps its fp32 uint8 normalisation and
argmax; only the network inside runs in fp16 and channels_last (NHWC, what Tensor Cores
want; the uint8 NHWC input is already laid out that way). The forward is captured once per
input shape into a torch.cuda.CUDAGraph and replayed from static, pinned buffers, removing
the per-kernel launch overhead that dominates small real-time nets at batch 1.
`torch_compile=True` first compiles the module with TorchInductor (default mode; the graph
then captures its fused Triton kernels). It is off by default: it needs Triton, which Jetson's
PyTorch wheels usually lack, and costs tens of seconds at load; mode="reduce-overhead" would
be CUDA graphs again, taken here by our own capture.
Docs: https://docs.pytorch.org/docs/stable/notes/cuda.html#cuda-graphs ,
https://docs.pytorch.org/tutorials/intermediate/memory_format_tutorial.html ,
https://docs.pytorch.org/docs/stable/generated/torch.compile.html
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

from lgcnet_deploy.model.io_wrapper import InGraphIO


class _HalfNet(nn.Module):
    """Run `net` in fp16/channels_last on fp32 input; return fp32."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net.half().to(memory_format=torch.channels_last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.to(torch.float16, memory_format=torch.channels_last)).float()


class CudaRunner:
    """Callable `np batch -> np output` for an InGraphIO on a CUDA device (any torch device
    works; CUDA graphs are used only on CUDA). `forward` runs a device tensor and leaves the
    output on the device (what a network-only timing measures)."""

    def __init__(self, module: InGraphIO, device: str = "cuda", fp16: bool = True,
                 use_cuda_graph: bool = True, torch_compile: bool = False) -> None:
        self.device = torch.device(device)
        self.precision = "fp16" if fp16 else "fp32"
        module = copy.deepcopy(module).eval()
        if fp16:
            module.net = _HalfNet(module.net)
        self.module = module.to(self.device)
        if torch_compile:
            self.module = torch.compile(self.module)
        self.use_cuda_graph = use_cuda_graph and self.device.type == "cuda"
        self.mode = "+".join([*(["compile"] if torch_compile else []),
                              "cuda-graph" if self.use_cuda_graph else "eager"])
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # fixed shapes: pick the fastest conv once
        self._graphs: dict[tuple, tuple] = {}

    @torch.no_grad()
    def _capture(self, shape: tuple[int, ...], dtype: torch.dtype) -> tuple:
        static_in = torch.zeros(shape, dtype=dtype, device=self.device)
        side = torch.cuda.Stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side):  # warm-up (cuDNN autotuning, compilation) off the capture
            for _ in range(3):
                self.module(static_in)
        torch.cuda.current_stream(self.device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            static_out = self.module(static_in)
        host_in = torch.empty(shape, dtype=dtype, pin_memory=True)
        host_out = torch.empty(static_out.shape, dtype=static_out.dtype, pin_memory=True)
        return graph, static_in, static_out, host_in, host_out

    def _graph_for(self, x: torch.Tensor) -> tuple:
        key = (tuple(x.shape), x.dtype)
        if key not in self._graphs:
            self._graphs[key] = self._capture(*key)
        return self._graphs[key]

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Run a batch already on the device. With CUDA graphs the result is the graph's
        static output buffer: read or copy it before the next call."""
        if not self.use_cuda_graph:
            return self.module(x)
        graph, static_in, static_out, _, _ = self._graph_for(x)
        static_in.copy_(x)
        graph.replay()
        return static_out

    @torch.no_grad()
    def __call__(self, batch: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(batch))
        if not self.use_cuda_graph:
            return self.module(x.to(self.device)).cpu().numpy()
        graph, static_in, static_out, host_in, host_out = self._graph_for(x)
        host_in.copy_(x)
        static_in.copy_(host_in, non_blocking=True)
        graph.replay()
        host_out.copy_(static_out, non_blocking=True)
        torch.cuda.current_stream(self.device).synchronize()
        return host_out.numpy().copy()
