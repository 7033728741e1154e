"""Research plots: training curves, search curves and the genotype figure (matplotlib, Agg
backend: no display needed)."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from lgcnet_deploy.measure.lineage import runs_of


def plot_curves(history: list[dict], path: Path) -> Path:
    """Loss per epoch and val mIoU where measured, side by side."""
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.5))
    ax1.plot([h["epoch"] for h in history], [h["loss"] for h in history])
    ax1.set(xlabel="epoch", ylabel="OHEM CE loss", title="training loss")
    evals = [h for h in history if "val_miou" in h]
    ax2.plot([h["epoch"] for h in evals], [100 * h["val_miou"] for h in evals], marker="o")
    ax2.set(xlabel="epoch", ylabel="mIoU %", title="CamVid val mIoU (360x480)")
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_search(history: list[dict], path: Path) -> Path:
    """Search curves: CE (and val mIoU), expected LAT, temperature, α entropy per cell."""
    steps = [h["step"] for h in history]
    fig, axes = plt.subplots(1, 4, figsize=(17, 3.6))
    axes[0].plot(steps, [h["ce"] for h in history], label="train CE")
    axes[0].set(xlabel="step", ylabel="cross-entropy", title="CE (and val mIoU of argmax α)")
    evals = [h for h in history if h.get("val_miou") is not None]
    if evals:
        twin = axes[0].twinx()
        twin.plot([h["step"] for h in evals], [100 * h["val_miou"] for h in evals], "o-",
                  color="tab:green", label="val mIoU %")
        twin.set_ylabel("val mIoU %")
    timed = [h for h in history if h.get("lat_ms") is not None]  # β = 0 logs no latency
    if timed:
        axes[1].plot([h["step"] for h in timed], [h["lat_ms"] for h in timed],
                     label="E[LAT] of sampled Z (ops)")
        axes[1].plot([h["step"] for h in timed], [h["derived_ms"] for h in timed],
                     label="argmax net (predicted)")
        axes[1].legend(fontsize=7)
    axes[1].set(xlabel="step", ylabel="ms", title="latency (LUT)")
    axes[2].plot(steps, [h["tau"] for h in history])
    axes[2].set(xlabel="step", ylabel="λ", yscale="log", title="Gumbel temperature")
    names = list(history[0]["entropy"])
    cmap = plt.get_cmap("viridis")
    for i, name in enumerate(names):
        axes[3].plot(steps, [h["entropy"][name] for h in history], lw=1,
                     color="black" if name == "fusion" else cmap(i / max(len(names) - 1, 1)),
                     label=name if name in ("cell0", f"cell{len(names) - 2}", "fusion") else None)
    axes[3].set(xlabel="step", ylabel="nats", title="α entropy per cell")
    axes[3].legend(fontsize=7)
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def plot_genotype(genotype, path: Path, alpha_probs=None) -> Path:
    """The genotype as a grid: one row per cell (5 edges) plus the fusion cell's 13 edges,
    coloured by op; with `alpha_probs` (cells x 5 x q), each cell shows the chosen op's share."""
    from lgcnet_deploy.model.space import CELL_EDGES, CELL_OPS, FUSION_EDGES, FUSION_OPS, UP_OPS

    names = list(dict.fromkeys((*CELL_OPS, *FUSION_OPS, *UP_OPS)))
    cmap = plt.get_cmap("tab20", len(names))
    fig, (ax, axf) = plt.subplots(2, 1, figsize=(9, 8.5), gridspec_kw={"height_ratios": [14, 2.2]})
    grid = [[names.index(op) for op in ops] for ops in genotype.cells]
    ax.imshow(grid, cmap=cmap, vmin=-0.5, vmax=len(names) - 0.5, aspect="auto")
    for k, ops in enumerate(genotype.cells):
        for e, op in enumerate(ops):
            text = op.replace("dil_sep_conv_3x3_", "dil ").replace("_3x3", "")
            if alpha_probs is not None:
                text += f"\n{100 * float(alpha_probs[k][e][CELL_OPS.index(op)]):.1f}%"
            ax.text(e, k, text, ha="center", va="center", fontsize=7)
    src = ["i1", "i2", "x1"]
    ax.set_xticks(range(len(CELL_EDGES)),
                  [f"{src[s]}→x{d + 1}" for s, d in CELL_EDGES])
    ax.set_yticks(range(len(genotype.cells)),
                  [f"cell {k} (s{s})" if genotype.has_trunk else
                   f"cell {k}{' (red.)' if k in genotype.reductions else ''}"
                   for k, s in enumerate(genotype.strides)])
    ax.set_title(f"{genotype.name} ({genotype.hash})")
    axf.imshow([[names.index(op) for op in genotype.fusion_ops]], cmap=cmap, vmin=-0.5,
               vmax=len(names) - 0.5, aspect="auto")
    for e, op in enumerate(genotype.fusion_ops):
        axf.text(e, 0, op.replace("dil_sep_conv_3x3_", "dil\n").replace("global_pool_", "gp\n"),
                 ha="center", va="center", fontsize=6)
    axf.set_xticks(range(len(FUSION_EDGES)), ["+".join(fe.sources) + "\n→" + fe.target
                                              for fe in FUSION_EDGES], fontsize=6)
    axf.set_yticks([0], ["fusion"])
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _draw_lines(ax, lines: list[tuple[str, list[float], list[float]]], **style) -> None:
    """Each labelled (label, epochs, fractions) line on `ax`, drawn in %."""
    for label, epochs, values in lines:
        ax.plot(epochs, [100 * v for v in values], marker=".", label=label, **style)


def plot_val_lines(lines: list[tuple[str, list[float], list[float]]], path: Path, *,
                   xlabel: str, title: str, size: tuple[float, float] = (9, 3.8),
                   ylabel: str = "val mIoU %") -> Path:
    """Val mIoU (fractions, drawn in %) against epoch, one labelled line per (label, epochs,
    mious): the one plot behind a checkpoint's lineage and the sprint's side-by-side runs."""
    fig, ax = plt.subplots(figsize=size)
    _draw_lines(ax, lines)
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_val_grid(panels: dict[str, list[tuple[str, list[float], list[float]]]], path: Path,
                  *, xlabel: str, title: str, columns: int = 4) -> Path:
    """Small multiples of `plot_val_lines`' lines (fractions, drawn in %), one panel per
    title of `panels` (a class, say), one shared legend: where one class moves apart."""
    rows = math.ceil(len(panels) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(3.2 * columns, 2.4 * rows), sharex=True,
                             squeeze=False)
    for ax, (name, lines) in zip(axes.flat, panels.items()):
        _draw_lines(ax, lines, markersize=3)
        ax.set_title(name, fontsize=9)
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=7)
    for ax in axes.flat[len(panels):]:
        ax.axis("off")
    for ax in axes[-1]:
        ax.set_xlabel(xlabel, fontsize=8)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=7, loc="lower center", ncol=min(len(labels), 4))
    fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0.03 * math.ceil(len(labels) / 4) + 0.02, 1, 1))
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_lineage(provenance: dict, path: Path) -> Path:
    """Val mIoU over the cumulative epochs of every run in a checkpoint's lineage, one colour
    per run, labelled with its hardware, epochs and base LR."""
    lines, offset = [], 0
    for run in runs_of(provenance):
        history = run.get("val_history") or []
        recipe = run.get("recipe") if isinstance(run.get("recipe"), dict) else {}
        epochs = run.get("epochs_run") or (history[-1][0] if history else 0)
        label = (f"{run.get('hardware', '?')[:28]}: {epochs} ep, lr {recipe.get('lr', '?')}")
        lines.append((label, [offset + e for e, _ in history], [m for _, m in history]))
        offset += epochs
    path.parent.mkdir(parents=True, exist_ok=True)  # a new model's results folder
    return plot_val_lines(lines, path, xlabel="epoch (cumulative)",
                          title="CamVid val mIoU (360x480)")


def main(argv: list[str] | None = None) -> None:
    """`python -m lgcnet_research.base.plots lineage CHECKPOINT --out PNG`."""
    import argparse

    from lgcnet_deploy.model.checkpoint import read_checkpoint

    p = argparse.ArgumentParser(prog="python -m lgcnet_research.base.plots")
    p.add_argument("what", choices=["lineage"])
    p.add_argument("checkpoint", type=Path)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    provenance = read_checkpoint(args.checkpoint)["provenance"]
    print(plot_lineage(provenance, args.out))


if __name__ == "__main__":
    main()
