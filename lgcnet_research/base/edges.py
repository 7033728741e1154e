"""Every searchable edge of the LGCNet frame with the shapes it sees at a given input size.

Torch-free and analytic (stride-2 layers round up, as `lgcnet_deploy.model.network` does), so the
latency table, the supernet's latency cost and the LUT check enumerate the same edges.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from lgcnet_deploy.model.genotype import Genotype, Widths
from lgcnet_deploy.model.space import (
    CELL_EDGES,
    CELL_OPS,
    FUSION_EDGES,
    NUM_CELLS,
    cell_strides,
    edge_choices,
)


class EdgeSpec(NamedTuple):
    """One edge: where it is (cell k or fusion, edge e), its choices and its tensor shapes."""

    cell: int | None  # None for a fusion-cell edge
    edge: int
    choices: tuple[str, ...]
    c_in: int
    c_out: int
    stride: int
    in_hw: tuple[int, int]
    out_hw: tuple[int, int]


def size_at(input_hw: Sequence[int], stride: int) -> tuple[int, int]:
    """Feature-map size at `stride` (a power of two): each stride-2 layer rounds up."""
    h, w = input_hw
    while stride > 1:
        h, w, stride = -(-h // 2), -(-w // 2), stride // 2
    return int(h), int(w)


def _node_stride(node: str) -> int:
    return int(node.split("_")[-1].lstrip("IMFUV"))  # I16, M8, U16_8, V8_4 -> 16, 8, 8, 4


def edge_specs(widths: Widths, reductions: Sequence[int], input_hw: Sequence[int],
               num_cells: int = NUM_CELLS) -> list[EdgeSpec]:
    """The 14 x 5 cell edges (cell order) then the 13 fusion edges (`space.FUSION_EDGES` order)."""
    strides = cell_strides(tuple(reductions), num_cells)
    specs = []
    for k in range(num_cells):
        s_in = strides[k - 1] if k else 4
        c = widths.cell(strides[k])
        for e, (src, _) in enumerate(CELL_EDGES):
            stride = 2 if k in reductions and src < 2 else 1
            hw = size_at(input_hw, s_in if src < 2 else strides[k])
            specs.append(EdgeSpec(k, e, CELL_OPS, c, c, stride, hw, size_at(hw, stride)))
    c = widths.fusion
    for e, fe in enumerate(FUSION_EDGES):
        specs.append(EdgeSpec(None, e, edge_choices(fe.kind), c * len(fe.sources), c, 1,
                              size_at(input_hw, _node_stride(fe.sources[0])),
                              size_at(input_hw, _node_stride(fe.target))))
    return specs


def trunk_edge_specs(widths: Widths, strides: Sequence[int],
                     input_hw: Sequence[int]) -> list[EdgeSpec]:
    """The edges after a trunk: each cell's at its own stride (no reduction, so they have the
    shapes of the paper's normal cells there), then the 13 fusion edges."""
    specs = []
    for k, stride in enumerate(strides):
        c, hw = widths.cell(stride), size_at(input_hw, stride)
        specs += [EdgeSpec(k, e, CELL_OPS, c, c, 1, hw, hw) for e in range(len(CELL_EDGES))]
    return specs + edge_specs(widths, (), input_hw, 0)


def genotype_edge_specs(genotype: Genotype, input_hw: Sequence[int]) -> list[EdgeSpec]:
    """The edges of `genotype`'s network: `edge_specs` for the paper's frame,
    `trunk_edge_specs` after a trunk."""
    if not genotype.has_trunk:
        return edge_specs(genotype.widths, genotype.reductions, input_hw, len(genotype.cells))
    return trunk_edge_specs(genotype.widths, genotype.strides, input_hw)


def genotype_choices(genotype: Genotype) -> list[str]:
    """The op chosen on each edge, in `edge_specs` order."""
    return [op for ops in genotype.cells for op in ops] + list(genotype.fusion_ops)
