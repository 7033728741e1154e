"""In-graph deployment I/O: optional normalisation of uint8 BGR frames and argmax, with the
mean/std the model's metadata names (the one source of normalisation the Segmenter reads
too). BatchNorm folding is a step of its own (`fold_bn`), taken before this wrap."""

from __future__ import annotations

import torch
from torch import nn

from lgcnet_deploy.core.metadata import INPUT_UINT8_NHWC_BGR, OUTPUT_ARGMAX, ModelMeta


class InGraphIO(nn.Module):
    """A segmentation net with its deployment I/O inside the graph.

    uint8 input: (N, H, W, 3) BGR as OpenCV gives it, normalised inside the graph (4x fewer
    bytes in than float32). argmax output: (N, H, W) int32 class map (about C x fewer bytes
    out than logits; int32 because TensorRT has no int64 ArgMax output on every version).
    """

    def __init__(self, net: nn.Module, uint8_input: bool, argmax_output: bool,
                 mean_rgb: tuple[float, float, float], std_rgb: tuple[float, float, float]
                 ) -> None:
        super().__init__()
        self.net = net
        self.uint8_input = uint8_input
        self.argmax_output = argmax_output
        # Fold BGR->RGB, /255 and mean/std into one per-channel affine on BGR channels.
        mean_bgr, std_bgr = torch.tensor(mean_rgb[::-1]), torch.tensor(std_rgb[::-1])
        self.register_buffer("scale", (1.0 / (255.0 * std_bgr)).view(1, 3, 1, 1))
        self.register_buffer("shift", (-mean_bgr / std_bgr).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.uint8_input:
            # Cast first: TensorRT takes UINT8 only as a network input that feeds a Cast
            # directly (onnx-tensorrt ModelImporter.cpp rejects UINT8 intermediate tensors),
            # so the uint8 -> float Cast must come before the NHWC -> NCHW Transpose.
            x = x.float().permute(0, 3, 1, 2) * self.scale + self.shift
            x = x.flip(1)  # BGR -> RGB channel order expected by the net
        y = self.net(x)
        return y.argmax(1).to(torch.int32) if self.argmax_output else y


def wrap_io(net: nn.Module, meta: ModelMeta) -> InGraphIO:
    """Wrap `net` (BN folded or not: fold first for deployment) with the I/O
    meta.input_format/output_kind name and meta's mean/std."""
    return InGraphIO(net.eval(), meta.input_format == INPUT_UINT8_NHWC_BGR,
                     meta.output_kind == OUTPUT_ARGMAX, meta.mean_rgb, meta.std_rgb).eval()
