"""The GCN-Guided Module (GGM, §III-C, Eq. 5-7) and the ablation variants of Tables VI and IX.

For adjacent cells k-1, k with architecture logits α_{k-1}, α_k (p edges x q ops):

    α'_k = α_k + γ Φ2(G(Φ1(α_{k-1}), A))                      (5)
    A    = softmax(φ1(α_k) φ2(α_{k-1})ᵀ),  φ1 = α_k w1, φ2 = α_{k-1} w2   (6)  p x p
    G    = A Φ1(α_{k-1}) W + Φ1(α_{k-1})                      (7)  one GCN layer + residual

Φ1: q -> d and Φ2: d -> q are FC layers (no bias, so the module cannot learn a global op
prior), w1, w2 are q x q and W is d x d. Eq. 5 feeds the raw α_{k-1} (not α'_{k-1}): the
exchange is local, between neighbours only. The module exists during search only.

Variants: "fc" (Table VI c: α'_k = α_k + γ Φ2(Φ1(α_{k-1})), no graph) and the
"operation-identity" graph (Table IX: every op is a node; A = softmax(a_k a_{k-1}ᵀ) over the
flattened p·q logits, row-normalised like Eq. 6 so its scale stays bounded).
"""

from __future__ import annotations

import torch
from torch import nn

COMMUNICATIONS = ("none", "fc", "gcn")
GRAPHS = ("edge", "op")


class GCNGuidedModule(nn.Module):
    """α_k, α_{k-1} (p x q) -> α'_k (p x q)."""

    def __init__(self, q: int, d: int = 64, gamma: float = 0.5, graph: str = "edge") -> None:
        super().__init__()
        if graph not in GRAPHS:
            raise ValueError(f"unknown reasoning graph {graph!r}; choose one of {GRAPHS}")
        self.gamma, self.graph = gamma, graph
        node_dim = q if graph == "edge" else 1  # an edge's q logits, or one op's logit
        self.phi1 = nn.Linear(node_dim, d, bias=False)  # Φ1
        self.phi2 = nn.Linear(d, node_dim, bias=False)  # Φ2
        self.weight = nn.Parameter(torch.empty(d, d))  # W of Eq. 7
        nn.init.xavier_uniform_(self.weight)
        if graph == "edge":
            self.w1 = nn.Parameter(torch.eye(q) + 0.01 * torch.randn(q, q))
            self.w2 = nn.Parameter(torch.eye(q) + 0.01 * torch.randn(q, q))

    def adjacency(self, alpha_k: torch.Tensor, alpha_prev: torch.Tensor) -> torch.Tensor:
        """Row-normalised adjacency: edge graph p x p (Eq. 6), op graph pq x pq."""
        if self.graph == "edge":
            return torch.softmax((alpha_k @ self.w1) @ (alpha_prev @ self.w2).T, dim=-1)
        return torch.softmax(alpha_k.reshape(-1, 1) @ alpha_prev.reshape(1, -1), dim=-1)

    def forward(self, alpha_k: torch.Tensor, alpha_prev: torch.Tensor) -> torch.Tensor:
        nodes = alpha_prev if self.graph == "edge" else alpha_prev.reshape(-1, 1)
        emb = self.phi1(nodes)
        g = self.adjacency(alpha_k, alpha_prev) @ emb @ self.weight + emb  # Eq. 7
        return alpha_k + self.gamma * self.phi2(g).reshape(alpha_k.shape)  # Eq. 5


class FCModule(nn.Module):
    """Table VI (c): α'_k = α_k + γ Φ2(Φ1(α_{k-1})), a fully connected exchange, no graph."""

    def __init__(self, q: int, d: int = 64, gamma: float = 0.5) -> None:
        super().__init__()
        self.gamma = gamma
        self.phi1 = nn.Linear(q, d, bias=False)
        self.phi2 = nn.Linear(d, q, bias=False)

    def forward(self, alpha_k: torch.Tensor, alpha_prev: torch.Tensor) -> torch.Tensor:
        return alpha_k + self.gamma * self.phi2(self.phi1(alpha_prev))


class CellCommunication(nn.Module):
    """Applies one module between every pair of adjacent cells: (K, p, q) -> (K, p, q)."""

    def __init__(self, num_cells: int, q: int, mode: str = "gcn", d: int = 64,
                 gamma: float = 0.5, graph: str = "edge") -> None:
        super().__init__()
        if mode not in COMMUNICATIONS:
            raise ValueError(f"unknown cell communication {mode!r}; choose one of "
                             f"{COMMUNICATIONS}")
        self.mode = mode
        make = {"none": lambda: None, "fc": lambda: FCModule(q, d, gamma),
                "gcn": lambda: GCNGuidedModule(q, d, gamma, graph)}[mode]
        self.links = nn.ModuleList(make() for _ in range(num_cells - 1)) if mode != "none" \
            else nn.ModuleList()

    def forward(self, alphas: torch.Tensor) -> torch.Tensor:
        if self.mode == "none":
            return alphas
        out = [alphas[0]] + [link(alphas[k + 1], alphas[k]) for k, link in enumerate(self.links)]
        return torch.stack(out)
