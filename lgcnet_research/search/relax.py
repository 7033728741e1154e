"""Gumbel-softmax relaxation of the one-hot op choice (Eq. 3-4) and its temperature schedule.

α is stored as logits (log α of Eq. 4): Z = softmax((α + G) / λ), G ~ Gumbel(0, 1), as in
SNAS/GDAS code (shared/paper/NOTES.md). `hard=True` is the straight-through variant: the
forward pass uses the one-hot argmax of Z (one op per edge is computed) while gradients flow
through the soft Z; it makes a supernet step about as cheap as a derived-network step.
"""

from __future__ import annotations

import math

import torch


def gumbel_softmax(logits: torch.Tensor, tau: float, hard: bool = False,
                   generator: torch.Generator | None = None, noise: bool = True,
                   uniform_paths: bool = False) -> torch.Tensor:
    """Sample relaxed one-hot vectors along the last dim of `logits` at temperature `tau`;
    `noise=False` drops the Gumbel noise: softmax(logits / tau), DARTS' deterministic mix.
    `uniform_paths` (hard only): the one-hot is the argmax of the noise alone, a uniform draw
    that α does not steer, while the gradient still flows through softmax((logits + G)/tau)."""
    if tau <= 0:
        raise ValueError(f"temperature must be > 0, got {tau}")
    if uniform_paths and not (hard and noise):
        raise ValueError("uniform_paths draws the one-hot op from the Gumbel noise: it needs "
                         "hard=True and noise=True")
    gumbel = torch.zeros_like(logits)
    if noise:
        u = torch.rand(logits.shape, generator=generator, device=logits.device,
                       dtype=logits.dtype).clamp_(1e-10, 1.0 - 1e-7)
        gumbel = -torch.log(-torch.log(u))
    z = torch.softmax((logits + gumbel) / tau, dim=-1)
    if not hard:
        return z
    chosen = (gumbel if uniform_paths else z).argmax(-1, keepdim=True)
    one_hot = torch.zeros_like(z).scatter_(-1, chosen, 1.0)
    return one_hot - z.detach() + z


def temperature(step: int, total: int, tau_max: float = 1.0, tau_min: float = 0.03) -> float:
    """Exponential annealing from tau_max (step 0) to tau_min (last step), the paper's 1 → 0.03."""
    if total <= 1:
        return tau_min
    frac = min(max(step, 0), total - 1) / (total - 1)
    return tau_max * math.exp(frac * math.log(tau_min / tau_max))


def entropy(logits: torch.Tensor) -> torch.Tensor:
    """Mean entropy (nats) of softmax(logits) over leading dims: 0 decided, log q uniform."""
    logp = torch.log_softmax(logits, dim=-1)
    return -(logp.exp() * logp).sum(-1).mean()


def decision_stats(logits: torch.Tensor, free_ops: tuple[int, ...] = ()) -> dict[str, float]:
    """Over all edges of `logits` (..., q): mean top-1 probability of softmax, mean entropy
    (nats), and the share of edges whose argmax is one of the `free_ops` indices."""
    probs = torch.softmax(logits.detach(), dim=-1).reshape(-1, logits.shape[-1])
    top1 = probs.argmax(-1)
    free = sum(int((top1 == i).sum()) for i in free_ops) / len(top1)
    return {"mean_top1_prob": float(probs.max(-1).values.mean()),
            "mean_entropy": float(entropy(logits.detach())), "free_op_share": free}


def edge_centred_correlation(a: torch.Tensor, b: torch.Tensor) -> float:
    """Pearson correlation of two (..., q) arrays of per-edge op scores (logits or gradients),
    each edge centred over its q ops first: only differences between an edge's ops move its
    softmax."""
    centred = [x - x.mean(-1, keepdim=True) for x in (a, b)]
    return float(torch.corrcoef(torch.stack([c.flatten() for c in centred]))[0, 1])
