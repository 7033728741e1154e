"""Do searches (seeds) decide alike? Edge-by-edge agreement and the convergence figure.

    python -m experiments.agreement runs/search_s0 runs/search_s1 \\
        --out results/search/decisive --write
    python -m experiments.agreement runs/s0 runs/s1 runs/s2 --out OUT  # every pair

Reads RUN/genotype.json and RUN/search_log.jsonl of each run; writes OUT/agreement.json
(`pairs`, per pair of runs: fraction of the 70 cell edges with the same op, the same for the
fusion edges, the agreement two genotypes with these op frequencies would reach by chance, the
permutation p-value of the observed agreement and, where both runs still hold
search_state.pt, the correlations of their final cell logits α′ (`alpha_correlation*`), which
see a shared preference before the argmax does; per run `latency_pull_per_cell`;
`seed_agreement`: that of the one pair, or with more runs the pairs' mean) and
OUT/convergence.png (mean top-1 op probability and entropy of the cell edges per step, one
line per run, and each pair's agreement per step where the logs carry `cell_argmax`), and
with the states OUT/alpha_correlation.png (per cell). `--write` (two runs) records
`seed_agreement` in each run's genotype provenance.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from itertools import combinations
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from lgcnet_deploy.model.genotype import Genotype, load_genotype

if TYPE_CHECKING:  # torch only where a run's state is read: the agreement itself needs none
    import torch

PERMUTATIONS = 10_000


def seed_agreement(a: Genotype, b: Genotype) -> dict[str, float]:
    """Fraction of cell edges (and of fusion edges) on which `a` and `b` chose the same op;
    `chance` is the cell-edge agreement expected from their op frequencies alone, `p_value`
    the share of random edge shuffles of `b` that agree with `a` at least as often."""
    if a.reductions != b.reductions or a.fusion_inputs != b.fusion_inputs:
        raise ValueError("genotypes of different search spaces (reductions or fusion inputs) "
                         "cannot be compared edge by edge")
    ops_a = [op for cell in a.cells for op in cell]
    ops_b = [op for cell in b.cells for op in cell]
    freq_a, freq_b = Counter(ops_a), Counter(ops_b)
    chance = sum(freq_a[op] * freq_b[op] for op in freq_a) / (len(ops_a) * len(ops_b))
    return {"cell_edges": _same(ops_a, ops_b), "fusion_edges": _same(a.fusion_ops, b.fusion_ops),
            "chance": chance, "p_value": permutation_p_value(ops_a, ops_b)}


def permutation_p_value(ops_a: list[str], ops_b: list[str], n: int = PERMUTATIONS) -> float:
    """One-sided permutation test of the edge-by-edge agreement (fixed seed: reproducible):
    (1 + #shuffles with >= the observed matches) / (1 + n)."""
    names = sorted(set(ops_a) | set(ops_b))
    a = np.array([names.index(op) for op in ops_a])
    b = np.array([names.index(op) for op in ops_b])
    shuffled = np.random.default_rng(0).permuted(np.tile(b, (n, 1)), axis=1)
    hits = int(((shuffled == a).sum(1) >= (a == b).sum()).sum())
    return (1 + hits) / (1 + n)


def _same(x: list[str] | tuple[str, ...], y: list[str] | tuple[str, ...]) -> float:
    return sum(u == v for u, v in zip(x, y, strict=True)) / len(x)


def final_cell_state(run: Path) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The GGM-updated cell logits α′ (cells, edges, q) of a run's last state and the latency
    table's cost (µs) of each; None without RUN/search_state.pt (committed result folders
    leave it out: it holds the weights)."""
    from experiments.gradient_snr import load_supernet
    from lgcnet_research.search.run import STATE

    if not (run / STATE).is_file():
        return None
    net, _, _ = load_supernet(run)
    return net.cell_logits().detach(), net.lat_cells.clone()


def latency_pull(logits: torch.Tensor, latency: torch.Tensor) -> list[float]:
    """Per cell, the correlation of its mean logit per op with minus its mean latency per op:
    near 1, what the cell prefers is the latency table's pull; below 0, the cell prefers ops
    against their cost."""
    import torch

    return [float(torch.corrcoef(torch.stack([a.mean(0), -t.mean(0)]))[0, 1])
            for a, t in zip(logits, latency)]


def alpha_correlation(a: torch.Tensor | None, b: torch.Tensor | None) -> dict:
    """How alike two runs' final cell logits α′ (cells, edges, q) are, {} when either is
    missing; each an edge-centred correlation: `alpha_correlation` over all cell edges,
    `alpha_correlation_per_cell` cell by cell, and `alpha_correlation_within_cells`, the mean
    over cells of the correlation left once each cell's mean logit per op is taken out. The
    latency table pulls every edge of a cell alike (only the reduction cells' input edges
    differ) and both runs the same way, so only the within-cell figure is free of it."""
    if a is None or b is None:
        return {}
    from lgcnet_research.search.relax import edge_centred_correlation

    within = [edge_centred_correlation(x - x.mean(0), y - y.mean(0)) for x, y in zip(a, b)]
    return {"alpha_correlation": edge_centred_correlation(a, b),
            "alpha_correlation_per_cell": [edge_centred_correlation(x, y) for x, y in zip(a, b)],
            "alpha_correlation_within_cells": float(np.mean(within))}


def read_log(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "search_log.jsonl").read_text().splitlines()]


def agreement_per_step(log_a: list[dict], log_b: list[dict]) -> list[tuple[int, float]]:
    """(step, cell-edge agreement of the two runs' argmax) at every step both logs recorded
    `cell_argmax` for (logs written before that field existed give none)."""
    by_step = {r["step"]: r["cell_argmax"] for r in log_b if "cell_argmax" in r}
    return [(r["step"], _same(r["cell_argmax"], by_step[r["step"]])) for r in log_a
            if "cell_argmax" in r and r["step"] in by_step]


def plot_convergence(logs: dict[str, list[dict]], path: Path) -> Path:
    """Mean top-1 op probability and mean entropy of the cell edges per step, per run, and
    (when the logs carry each step's argmax) the two runs' agreement per step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(15, 3.6))
    for label, log in logs.items():
        steps = [r["step"] for r in log]
        ax1.plot(steps, [r["mean_top1_prob"] for r in log], label=label)
        ax2.plot(steps, [r["mean_entropy"] for r in log], label=label)
    ax1.axhline(0.5, color="grey", ls="--", lw=1)
    ax1.set(xlabel="step", ylabel="probability", title="mean top-1 op probability (cell edges)")
    ax2.set(xlabel="step", ylabel="nats", title="mean op-choice entropy (ln 8 = 2.08)")
    for (label_a, log_a), (label_b, log_b) in combinations(logs.items(), 2):
        curve = agreement_per_step(log_a, log_b)
        if curve:
            ax3.plot(*zip(*curve), lw=1, label=f"{label_a} vs {label_b}",
                     **({"color": "black"} if len(logs) == 2 else {}))
    ax3.set(xlabel="step", ylabel="fraction", ylim=(0, 1),
            title="seed agreement of the argmax (cell edges)")
    for ax in (ax1, ax2, ax3):
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_alpha_correlation(pairs: dict[str, list[float]], pulls: dict[str, list[float]],
                           path: Path) -> Path:
    """Per cell: each pair's α′ correlation (left) and each run's latency pull (right)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 3.6), sharey=True)
    for ax, lines, title in ((ax1, pairs, "seeds' correlation of the final α′"),
                             (ax2, pulls, "latency pull (α′ against minus the LUT cost)")):
        for label, values in lines.items():
            ax.plot(range(len(values)), values, marker="o", lw=1, label=label)
        ax.axhline(0, color="grey", lw=1)
        ax.set(xlabel="cell", ylabel="correlation", ylim=(-1, 1), title=title)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def mean_agreement(pairs: list[dict[str, float]]) -> dict[str, float]:
    """The pairs' mean cell-edge, fusion-edge and chance agreement (no p-value: the pairs
    share genotypes, so they are not independent tests)."""
    keys = ["cell_edges", "fusion_edges", "chance"]
    if all("alpha_correlation" in pair for pair in pairs):
        keys += ["alpha_correlation", "alpha_correlation_within_cells"]
    return {k: float(np.mean([pair[k] for pair in pairs])) for k in keys} | {"pairs": len(pairs)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m experiments.agreement",
                                description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", type=Path, help="two or more search run folders")
    p.add_argument("--out", type=Path, required=True, help="folder for agreement.json/.png")
    p.add_argument("--write", action="store_true",
                   help="record seed_agreement in both runs' genotype.json provenance (two runs)")
    args = p.parse_args(argv)
    if len(args.runs) < 2 or (args.write and len(args.runs) != 2):
        p.error("give two or more runs; --write records one pair's agreement: give two")
    genotypes = [load_genotype(run / "genotype.json") for run in args.runs]
    states = [final_cell_state(run) for run in args.runs]
    logits = [state[0] if state else None for state in states]
    scores = [seed_agreement(a, b) | alpha_correlation(la, lb)
              for (a, la), (b, lb) in combinations(zip(genotypes, logits), 2)]
    pairs = [{"seeds": [a.provenance.get("seed"), b.provenance.get("seed")],
              "genotypes": [a.hash, b.hash], **score}
             for (a, b), score in zip(combinations(genotypes, 2), scores)]
    agreement = scores[0] if len(scores) == 1 else mean_agreement(scores)
    args.out.mkdir(parents=True, exist_ok=True)
    result = {"runs": [str(r) for r in args.runs], "genotypes": [g.hash for g in genotypes],
              "seeds": [g.provenance.get("seed") for g in genotypes],
              "mean_top1_prob": [g.provenance.get("mean_top1_prob") for g in genotypes],
              "latency_pull_per_cell": [latency_pull(*state) if state else None
                                        for state in states],
              "seed_agreement": agreement, "pairs": pairs}
    (args.out / "agreement.json").write_text(json.dumps(result, indent=1) + "\n")
    plot_convergence({f"seed {g.provenance.get('seed')}": read_log(run)
                      for g, run in zip(genotypes, args.runs)}, args.out / "convergence.png")
    if all(state is not None for state in states):
        plot_alpha_correlation(
            {"seeds {} vs {}".format(*pair["seeds"]): pair["alpha_correlation_per_cell"]
             for pair in pairs},
            {f"seed {seed}": pull for seed, pull in zip(result["seeds"],
                                                         result["latency_pull_per_cell"])},
            args.out / "alpha_correlation.png")
    if args.write:
        for run, g, other in zip(args.runs, genotypes, genotypes[::-1]):
            g.provenance.update(seed_agreement=agreement["cell_edges"],
                                seed_agreement_with={"genotype": other.hash,
                                                     "seed": other.provenance.get("seed"),
                                                     **agreement})
            g.save(run / "genotype.json")
    for pair in pairs:
        print(f"seeds {pair['seeds'][0]} vs {pair['seeds'][1]}: {pair['cell_edges']:.2f} of cell "
              f"edges (chance {pair['chance']:.2f}, p = {pair['p_value']:.4f}), "
              f"{pair['fusion_edges']:.2f} of fusion edges"
              + (f"; α′ correlation {pair['alpha_correlation']:.2f} "
                 f"({pair['alpha_correlation_within_cells']:.2f} within cells)"
                 if "alpha_correlation" in pair else ""))
    if len(pairs) > 1:
        print(f"mean of {len(pairs)} pairs: {agreement['cell_edges']:.2f} of cell edges "
              f"(chance {agreement['chance']:.2f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
