"""Training and search curves as PNG (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


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
