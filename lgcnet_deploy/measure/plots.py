"""Benchmark plots (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def plot_bench(results, curve: dict[str, float] | None, folder: Path) -> list[Path]:
    """Latency histograms (network and end to end) and, if given, latency vs resolution."""
    folder.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(7, 4))
    for r in results:
        ax.hist(r.network.samples, bins=30, alpha=0.6, label=f"{r.name} network")
        if r.end_to_end:
            ax.hist(r.end_to_end.samples, bins=30, alpha=0.4, label=f"{r.name} end-to-end")
    ax.set(xlabel="latency (ms)", ylabel="calls", title=f"{results[0].backend} "
           f"{results[0].precision}, {results[0].input_size[0]}x{results[0].input_size[1]}, "
           f"batch {results[0].batch}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    out = [folder / "latency_hist.png"]
    fig.savefig(out[0], dpi=100)
    plt.close(fig)
    if curve:
        fig, ax = plt.subplots(figsize=(6, 4))
        pixels = [int(k.split("x")[0]) * int(k.split("x")[1]) / 1e6 for k in curve]
        ax.plot(pixels, list(curve.values()), marker="o")
        for (k, v), px in zip(curve.items(), pixels):
            ax.annotate(k, (px, v), textcoords="offset points", xytext=(4, -10), fontsize=8)
        ax.set(xlabel="input megapixels", ylabel="network latency (ms)",
               title="latency vs resolution")
        ax.grid(alpha=0.3)
        fig.tight_layout()
        out.append(folder / "latency_vs_resolution.png")
        fig.savefig(out[1], dpi=100)
        plt.close(fig)
    return out
