"""The LGCNet frame: stem to stride 4, 14 independent cells, dense-connected fusion cell.

The frame is shared by the derived network (one op per edge, below) and the search supernet
(a mixed op per edge, `search.supernet`): both pass an edge factory, and forward takes optional
per-edge weights. Sizes need no padding: stride-2 layers round up, Up x2 edges align to the
finer branch's exact size and the logits are resized bilinearly to the input size, so odd
inputs such as 769x1537 run as they are.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from lgcnet_deploy.model.genotype import Genotype
from lgcnet_deploy.model.ops import (
    Zero,
    build_op,
    conv_bn_relu,
    conv_bn_relu6,
    mbconv_stages,
    mbconv_stem,
    stage_ends,
)
from lgcnet_deploy.model.space import (
    CELL_EDGES,
    DEFAULT_STEM,
    FUSION_EDGES,
    FUSION_OUTPUTS,
    NUM_INTERMEDIATE_NODES,
    TRUNKS,
    Trunk,
)

# (cell k, edge e, channels, stride) -> module; (fusion edge e, c_in, c_out) -> module
CellEdgeFactory = Callable[[int, int, int, int], nn.Module]
FusionEdgeFactory = Callable[[int, int, int], nn.Module]
EdgeWeights = Sequence[torch.Tensor] | None


def _call(edge: nn.Module, x: torch.Tensor, w: torch.Tensor | None, *args) -> torch.Tensor:
    return edge(x, *args) if w is None else edge(x, w, *args)


class Stem(nn.Module):
    """The layers to stride 4 (`space.STEMS`): "conv", three conv-BN-ReLU (stride 2, 2, 1),
    or "mbconv", EfficientNet-Lite0's first layers (`ops.mbconv_stem`)."""

    def __init__(self, widths: Sequence[int], kind: str = DEFAULT_STEM) -> None:
        super().__init__()
        c1, c2, c3 = widths
        if kind == "mbconv":
            self.layers = mbconv_stem((c1, c2, c3))
        else:
            self.layers = nn.Sequential(conv_bn_relu(3, c1, 3, 2), conv_bn_relu(c1, c2, 3, 2),
                                        conv_bn_relu(c2, c3, 3, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class TrunkStem(nn.Module):
    """A pretrained backbone to stride 16 (`space.TRUNKS`): EfficientNet-Lite's first conv and
    MBConv stages; returns its features at strides 4, 8 and 16."""

    def __init__(self, trunk: Trunk) -> None:
        super().__init__()
        self.conv = conv_bn_relu6(3, trunk.stages[0][4], 3, 2)
        self.blocks = mbconv_stages(trunk.stages)
        ends = stage_ends(trunk.stages)
        self.taps = [ends[i] for i in trunk.tap_stages]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x, features = self.conv(x), []
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i in self.taps:
                features.append(x)
        return features


class Cell(nn.Module):
    """Two input nodes, N = 2 intermediate nodes summing their edges (Eq. 2), concat output."""

    def __init__(self, k: int, c_pp: int, c_p: int, c: int, reduction: bool,
                 reduction_prev: bool, edge_factory: CellEdgeFactory) -> None:
        super().__init__()
        self.edges = nn.ModuleList(
            edge_factory(k, e, c, 2 if reduction and src < 2 else 1)
            for e, (src, _) in enumerate(CELL_EDGES))
        # A derived net drops zero-op edges (they add nothing); a node whose every edge is the
        # zero op still needs its zeros. An input node no remaining edge reads gets no
        # pre-processing conv (it would be dead weight).
        self.node_edges = []
        for dst in range(NUM_INTERMEDIATE_NODES):
            edges = [e for e, (_, d) in enumerate(CELL_EDGES) if d == dst]
            self.node_edges.append([e for e in edges if not isinstance(self.edges[e], Zero)]
                                   or edges[:1])
        used = {CELL_EDGES[e][0] for edges in self.node_edges for e in edges}
        # i1 comes from two cells back: it is one stride finer when the previous cell reduced.
        self.pre0 = conv_bn_relu(c_pp, c, 1, 2 if reduction_prev else 1) if 0 in used else None
        self.pre1 = conv_bn_relu(c_p, c, 1) if 1 in used else None
        self.out_channels = 2 * c

    def forward(self, s0: torch.Tensor, s1: torch.Tensor,
                weights: EdgeWeights = None) -> torch.Tensor:
        states = [None if self.pre0 is None else self.pre0(s0),
                  None if self.pre1 is None else self.pre1(s1)]
        for edges in self.node_edges:
            node = None
            for e in edges:
                y = _call(self.edges[e], states[CELL_EDGES[e][0]],
                          None if weights is None else weights[e])
                node = y if node is None else node + y
            states.append(node)
        return torch.cat(states[2:], dim=1)


class FusionCell(nn.Module):
    """Dense-connected fusion cell over three cells at strides 4, 8, 16 (`space.FUSION_EDGES`)."""

    def __init__(self, in_channels: Sequence[int], c: int, edge_factory: FusionEdgeFactory) -> None:
        super().__init__()
        self.reduce = nn.ModuleList(conv_bn_relu(ci, c, 1) for ci in in_channels)
        self.edges = nn.ModuleList(
            edge_factory(e, c * len(edge.sources), c) for e, edge in enumerate(FUSION_EDGES))

    def forward(self, feats: Sequence[torch.Tensor], weights: EdgeWeights = None) -> torch.Tensor:
        x4, x8, x16 = (r(f) for r, f in zip(self.reduce, feats))
        nodes = {"I4": x4, "I8": x8, "I16": x16}
        size = {"4": x4.shape[-2:], "8": x8.shape[-2:]}
        for e, (edge, module) in enumerate(zip(FUSION_EDGES, self.edges)):
            w = None if weights is None else weights[e]
            x = torch.cat([nodes[s] for s in edge.sources], 1) if len(edge.sources) > 1 \
                else nodes[edge.sources[0]]
            if edge.kind == "up":  # target name ends with its stride, e.g. U16_8
                y = _call(module, x, w, tuple(size[edge.target.rsplit("_", 1)[1]]))
            else:
                y = _call(module, x, w)
            nodes[edge.target] = nodes[edge.target] + y if edge.target in nodes else y
        return sum(nodes[n] for n in FUSION_OUTPUTS)


class LGCNetFrame(nn.Module):
    """Stem, cells, fusion cell and a 1x1 classifier, with pluggable edges.

    With the paper's stems the cells form one chain from stride 4, the reduction cells halving
    it, and `fusion_inputs` name the cells the fusion cell reads. With a trunk (`space.TRUNKS`)
    each cell works at its `strides` entry, in one chain per stride that starts from the trunk's
    feature there, and the fusion cell reads each stride's last cell (or the trunk's feature
    where no cell works)."""

    def __init__(self, widths, strides: Sequence[int], fusion_inputs: Sequence[int],
                 num_classes: int, cell_edge: CellEdgeFactory, fusion_edge: FusionEdgeFactory,
                 stem: str = DEFAULT_STEM) -> None:
        super().__init__()
        self.trunk = stem in TRUNKS
        self.stem = TrunkStem(TRUNKS[stem]) if self.trunk else Stem(widths.stem, stem)
        self.strides = tuple(strides)
        # the two latest outputs of each chain (a chain per stride with a trunk, else one)
        chains = {s: [c, c] for s, c in zip((4, 8, 16), TRUNKS[stem].channels)} \
            if self.trunk else {4: [widths.stem[-1]] * 2}
        # a paper cell reduces where the stride doubles; a trunk's cells never do
        reduces = [not self.trunk and s != before
                   for s, before in zip(self.strides, (4, *self.strides[:-1]))]
        self.cells = nn.ModuleList()
        for k, stride in enumerate(self.strides):
            chain = chains[stride if self.trunk else 4]
            cell = Cell(k, chain[0], chain[1], widths.cell(stride), reduces[k],
                        k > 0 and reduces[k - 1], cell_edge)
            self.cells.append(cell)
            chain[:] = [chain[1], cell.out_channels]
        self.fusion_inputs = tuple(fusion_inputs) if not self.trunk else tuple(
            max((k for k, s in enumerate(self.strides) if s == stride), default=None)
            for stride in (4, 8, 16))
        in_channels = [chains[s][1] for s in (4, 8, 16)] if self.trunk else \
            [self.cells[k].out_channels for k in self.fusion_inputs]
        self.fusion = FusionCell(in_channels, widths.fusion, fusion_edge)
        self.classifier = nn.Conv2d(widths.fusion, num_classes, 1)

    def forward(self, x: torch.Tensor, cell_weights: Sequence[EdgeWeights] | None = None,
                fusion_weights: EdgeWeights = None) -> torch.Tensor:
        size = x.shape[-2:]
        features = self.stem(x)
        chains = dict(zip((4, 8, 16), ([f, f] for f in features))) if self.trunk else \
            {4: [features, features]}
        outputs = {}
        for k, cell in enumerate(self.cells):
            chain = chains[self.strides[k] if self.trunk else 4]
            chain[:] = [chain[1], cell(chain[0], chain[1],
                                       None if cell_weights is None else cell_weights[k])]
            if k in self.fusion_inputs:  # keep what the fusion cell reads, nothing more
                outputs[k] = chain[1]
        feats = [chains[s][1] if k is None else outputs[k]
                 for s, k in zip((4, 8, 16), self.fusion_inputs)]
        y = self.fusion(feats, fusion_weights)
        return F.interpolate(self.classifier(y), size=size, mode="bilinear", align_corners=False)


class LGCNet(LGCNetFrame):
    """The derived network of a genotype: one op per edge. Returns logits at input size."""

    def __init__(self, genotype: Genotype, num_classes: int) -> None:
        self.genotype = genotype
        self.num_classes = num_classes
        super().__init__(
            genotype.widths, genotype.strides, genotype.fusion_inputs, num_classes,
            cell_edge=lambda k, e, c, s: build_op(genotype.cells[k][e], c, c, s),
            fusion_edge=lambda e, ci, co: build_op(genotype.fusion_ops[e], ci, co),
            stem=genotype.stem)

