"""The search space: op names (Tables II and III), cell and fusion-cell edge layouts.

Torch-free so that genotypes can be validated where only ONNX Runtime is installed.
`lgcnet_deploy.model.ops` maps every name here to a module factory.
"""

from __future__ import annotations

from typing import NamedTuple

# Table II: candidate operations on every cell edge (q = 8, zero included).
CELL_OPS: tuple[str, ...] = (
    "max_pool_3x3",
    "skip_connect",
    "conv_3x3",
    "none",
    "sep_conv_3x3",
    "dil_sep_conv_3x3_d2",
    "dil_sep_conv_3x3_d4",
    "dil_sep_conv_3x3_d8",
)

# Table III: candidate operations on the fusion cell's op edges.
FUSION_OPS: tuple[str, ...] = (
    "conv_1x1",
    "conv_3x3",
    "sep_conv_3x3",
    "dil_sep_conv_3x3_d2",
    "dil_sep_conv_3x3_d4",
    "dil_sep_conv_3x3_d8",
    "dil_sep_conv_3x3_d12",
    "global_pool_1x1",
    "global_pool_5x5",
)

# "Up x2" edges choose between a deconvolution and interpolation.
UP_OPS: tuple[str, ...] = ("deconv", "interp")

# EfficientNet-Lite0's stages as the op table's MBConvs build them: (repeats, kernel, stride,
# expand, in, out) per stage, EfficientNet-B0's table, which Lite0 keeps (no squeeze-excitation,
# ReLU6). Stage 0 follows a 3x3 stride-2 conv to 32 channels.
LITE0_STAGES: tuple[tuple[int, int, int, int, int, int], ...] = (
    (1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40), (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192), (1, 3, 1, 6, 192, 320))


class Trunk(NamedTuple):
    """A pretrained backbone in place of the stem and the reduction cells: its stages and the
    features it hands on at strides 4, 8 and 16 (channels, and the stage that ends each)."""

    stages: tuple[tuple[int, int, int, int, int, int], ...]
    channels: tuple[int, int, int]  # at strides 4, 8, 16
    tap_stages: tuple[int, int, int]  # the stage whose last block gives each


# The layers before the cells. "conv": the paper's three convs to stride 4; "mbconv":
# EfficientNet-Lite0's first layers to stride 4 (from ImageNet; the paper's network was
# ImageNet-pretrained); a trunk (TRUNKS): EfficientNet-Lite0 to stride 16, whose features at
# strides 4, 8, 16 feed the cells (one branch of cells per stride, no reduction cells) and the
# fusion cell, so ImageNet knowledge reaches most of the network.
# "lite0_s16_e4": the same with its stride-4 stage (two MBConvs, the widest maps of the trunk)
# expanding 4x instead of 6x, the channels of most ImageNet weight kept
# (`lgcnet_research.train.pretrained`): at 769x1537 that stage's first expansion alone is an
# eighth of the whole network's time on ONNX Runtime CPU.
TRUNKS: dict[str, Trunk] = {
    "lite0_s16": Trunk(LITE0_STAGES[:5], (24, 40, 112), (1, 2, 4)),
    "lite0_s16_e4": Trunk((LITE0_STAGES[0], (2, 3, 2, 4, 16, 24), *LITE0_STAGES[2:5]),
                          (24, 40, 112), (1, 2, 4)),
}
STEMS: tuple[str, ...] = ("conv", "mbconv", *TRUNKS)
DEFAULT_STEM = "conv"
# where a trunk's cells may work: 4 too, so a cell can refine the finest, thin-structure features
TRUNK_CELL_STRIDES: tuple[int, ...] = (4, 8, 16)
TRUNK_CELL_STRIDES_TEXT = ", ".join(map(str, TRUNK_CELL_STRIDES))  # for messages and help
MAX_TRUNK_CELLS = 8

NUM_CELLS = 14
NUM_INTERMEDIATE_NODES = 2
# Edge e of a cell: (source, target) with sources 0=i1, 1=i2, 2=x1; targets are x1, x2.
CELL_EDGES: tuple[tuple[int, int], ...] = ((0, 0), (1, 0), (0, 1), (1, 1), (2, 1))
DEFAULT_REDUCTIONS: tuple[int, ...] = (1, 8)  # shared/paper/NOTES.md: strides 4 | 8 | 16
DEFAULT_FUSION_INPUTS: tuple[int, ...] = (0, 7, 13)
FUSION_CHANNELS = 48


class FusionEdge(NamedTuple):
    """One searchable edge of the dense-connected fusion cell."""

    kind: str  # "op" (FUSION_OPS) or "up" (UP_OPS)
    sources: tuple[str, ...]  # concatenated before the op (cross-branch dense connection)
    target: str


# Nine nodes: three 48-channel inputs I (strides 16, 8, 4 from the fusion inputs, coarse to
# fine), a middle node M and a final node F per branch. Thirteen edges: I->M per branch; Up x2
# edges carry coarser middles to finer branches, where they are concatenated (dense, cross
# branch) before the edge to F; a detail edge I4->F4; Up x2 edges bring F16 and F8 to stride 4
# where the three finals are summed. Shapes are read off shared/paper/NOTES.md (Fig. 5 is not
# in the text, so any DAG with these counts is faithful).
FUSION_EDGES: tuple[FusionEdge, ...] = (
    FusionEdge("op", ("I16",), "M16"),
    FusionEdge("op", ("I8",), "M8"),
    FusionEdge("op", ("I4",), "M4"),
    FusionEdge("up", ("M16",), "U16_8"),
    FusionEdge("up", ("M8",), "U8_4"),
    FusionEdge("up", ("U16_8",), "U16_4"),
    FusionEdge("op", ("M16",), "F16"),
    FusionEdge("op", ("M8", "U16_8"), "F8"),
    FusionEdge("op", ("M4", "U8_4", "U16_4"), "F4"),
    FusionEdge("op", ("I4",), "F4"),
    FusionEdge("up", ("F16",), "V16_8"),
    FusionEdge("up", ("V16_8",), "V16_4"),
    FusionEdge("up", ("F8",), "V8_4"),
)
FUSION_OUTPUTS: tuple[str, ...] = ("F4", "V8_4", "V16_4")  # summed element-wise


def edge_choices(kind: str) -> tuple[str, ...]:
    """Candidate op names for a fusion edge kind."""
    return {"op": FUSION_OPS, "up": UP_OPS}[kind]


def cell_strides(reductions: tuple[int, ...] | list[int], num_cells: int = NUM_CELLS) -> list[int]:
    """Output stride of every cell; the stem ends at stride 4 and each reduction doubles it."""
    strides, s = [], 4
    for k in range(num_cells):
        s *= 2 if k in reductions else 1
        strides.append(s)
    return strides
