"""The NAS sanity check (Li & Talwalkar 2019; Yang et al. 2020): does the searched genotype
beat random genotypes of the same predicted latency, trained with one identical recipe?

    python -m experiments.sanity --config experiments/configs/sanity/camvid_cpu_short.json

Draws `n_random` genotypes by rejection sampling within ±`band` of the searched genotype's
LUT-predicted latency, trains every genotype with the same `recipe` (TrainConfig fields, the
same seed) through `lgcnet_research.train.trainer.Trainer`, and writes RESULTS/sanity.json and
RESULTS/sanity.md (val mIoU per genotype; mean and range of the random ones; the margin).
Resumable: a rerun continues unfinished trainings (OUT/<name>/last.pt) and skips finished ones;
`--report-only` writes the tables from the trainings finished so far. On a GPU machine the
sprint's stage train trains the same draw side by side (`--sanity-config`,
experiments/gpu_sprint/) and puts this module's table into its summary.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from lgcnet_research.base.settings import Settings


@dataclass
class SanityConfig(Settings):
    KIND: ClassVar[str] = "sanity check"
    HELP: ClassVar[dict[str, str]] = {
        "genotype": "the searched genotype (JSON)",
        "lut": "latency table the band is measured in",
        "n_random": "random genotypes to train (>= 3)",
        "band": "relative latency band around the searched genotype's prediction",
        "concentration": "Dirichlet mix per random genotype (omit: uniform per edge, as in "
                         "Li & Talwalkar's random search)",
        "recipe": "TrainConfig fields shared by every training run (JSON)",
        "out": "folder of the training runs",
        "results": "folder for sanity.json and sanity.md",
        "report_only": "train nothing: write the tables from the trainings finished so far",
    }

    genotype: str = "results/search/camvid_cpu_b0.005/genotype.json"
    lut: str = "results/luts/onnxruntime-cpu_769x1537.json"
    n_random: int = 3
    band: float = 0.05
    seed: int = 0
    concentration: float | None = None
    recipe: dict[str, Any] = field(default_factory=dict)
    out: str = "runs/sanity"
    results: str = "results/sanity"
    report_only: bool = False


def candidates(cfg: SanityConfig) -> tuple[list, dict[str, Any]]:
    """The searched genotype followed by `n_random` random ones in its latency band, and how
    they were drawn."""
    from lgcnet_deploy.model.genotype import load_genotype
    from lgcnet_research.latency.check import random_genotypes_at
    from lgcnet_research.latency.lut import LatencyTable

    if cfg.n_random < 1:
        raise ValueError(f"n_random must be >= 1 (the check asks for >= 3), got {cfg.n_random}")
    table = LatencyTable.load(cfg.lut)
    searched = load_genotype(cfg.genotype)
    target = table.predict_ms(searched)
    randoms, tries = random_genotypes_at(table, target, cfg.n_random, cfg.band, cfg.seed,
                                         cfg.concentration, searched.fusion_inputs,
                                         exclude=frozenset({searched.hash}))
    sampling = {"target_ms": round(target, 2), "band": cfg.band, "draws": tries,
                "concentration": cfg.concentration, "seed": cfg.seed,
                "predicted_ms": {g.name: round(table.predict_ms(g), 2)
                                 for g in [searched, *randoms]}}
    return [searched, *randoms], sampling


def train_one(genotype_path: Path, recipe: dict[str, Any], out: Path) -> dict[str, Any]:
    """Train (or finish training) one genotype with the shared recipe; its val record."""
    from lgcnet_research.train.config import TrainConfig
    from lgcnet_research.train.trainer import Trainer

    cfg = TrainConfig.from_dict({**recipe, "genotype": str(genotype_path), "out": str(out)})
    Trainer(cfg, resume=True).fit()
    record = finished_record(out, cfg.epochs)
    if record is None:
        raise RuntimeError(f"{out}: the training stopped before epoch {cfg.epochs} "
                           f"(recipe stop_after?); rerun to finish it")
    return record


def finished_record(run: Path, epochs: int) -> dict[str, Any] | None:
    """Final and best val mIoU and params of a training that reached `epochs`; None while
    it has not (not started, or interrupted: a rerun resumes it)."""
    from lgcnet_deploy.core.classes import CAMVID
    from lgcnet_deploy.model.checkpoint import read_checkpoint
    from lgcnet_deploy.model.genotype import Genotype
    from lgcnet_deploy.model.network import LGCNet

    if not (run / "last.pt").is_file():
        return None
    payload = read_checkpoint(run / "last.pt")
    state = payload["train_state"]
    if state.get("epoch") != epochs:
        return None
    net = LGCNet(Genotype.from_dict(payload["genotype"]), CAMVID.num_classes)
    return {"best_val_miou": state["best_miou"], "epochs": epochs,
            "params": sum(p.numel() for p in net.parameters()),
            **history_scores(state["history"])}


def history_scores(history: list[dict[str, Any]]) -> dict[str, Any]:
    """A row's final val mIoU, final per-class IoU and val history from a training's epoch
    records (the Trainer's history; the GPU sprint's reports hold the same records)."""
    from lgcnet_deploy.core.classes import CAMVID

    evals = [h for h in history if "val_miou" in h]
    return {"final_val_miou": evals[-1]["val_miou"],
            "final_val_iou": dict(zip(CAMVID.classes, evals[-1].get("val_iou", []))),
            "val_history": [[h["epoch"], h["val_miou"]] for h in evals]}


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Searched vs the finished random genotypes: mean and range of their final val mIoU, the
    margin and the searched genotype's rank (1 = best); None until the searched genotype and
    one random genotype are trained."""
    searched = rows[0]
    scores = [r["final_val_miou"] for r in rows[1:] if "final_val_miou" in r]
    if "final_val_miou" not in searched or not scores:
        return None
    mean = sum(scores) / len(scores)
    rank = 1 + sum(s > searched["final_val_miou"] for s in scores)
    return {"searched": searched["final_val_miou"], "random_mean": mean,
            "random_min": min(scores), "random_max": max(scores), "random_trained": len(scores),
            "margin_vs_mean": searched["final_val_miou"] - mean,
            "margin_vs_best_random": searched["final_val_miou"] - max(scores),
            "searched_rank": rank, "of": 1 + len(scores)}


def markdown(rows: list[dict[str, Any]], summary: dict[str, Any] | None) -> str:
    lines = ["| genotype | hash | predicted ms | params | final val mIoU % | best val mIoU % |",
             "|---|---|---:|---:|---:|---:|"]
    for r in rows:
        scores = (f"{r['params']:,} | {100 * r['final_val_miou']:.2f} | "
                  f"{100 * r['best_val_miou']:.2f}") if "final_val_miou" in r \
            else "– | not trained yet | –"
        lines.append(f"| {r['name']} | {r['hash']} | {r['predicted_ms']:.1f} | {scores} |")
    s = summary
    lines += ["", "Not enough genotypes trained for a comparison yet." if s is None else
              f"Random genotypes ({s['random_trained']} trained): mean "
              f"{100 * s['random_mean']:.2f} %, range {100 * s['random_min']:.2f}–"
              f"{100 * s['random_max']:.2f} %. Searched: {100 * s['searched']:.2f} % "
              f"({100 * s['margin_vs_mean']:+.2f} points vs the random mean, rank "
              f"{s['searched_rank']} of {s['of']})."]
    return "\n".join(lines) + "\n"


def plot(rows: list[dict[str, Any]], path: Path) -> Path:
    """Val mIoU against epoch of every trained genotype, one line each."""
    from lgcnet_research.base.plots import plot_val_lines

    lines = [(f"{r['name']} ({r['hash']})", [e for e, _ in r["val_history"]],
              [m for _, m in r["val_history"]]) for r in rows if "val_history" in r]
    return plot_val_lines(lines, path, xlabel="epoch", size=(7, 4),
                          title="sanity check: searched vs random genotypes, one recipe")


def run(cfg: SanityConfig) -> dict[str, Any]:
    """Sample, train every genotype, write sanity.json, sanity.md, sanity_curves.png and the
    genotypes beside them; returns the result."""
    from lgcnet_research.train.config import TrainConfig

    genotypes, sampling = candidates(cfg)
    out, results = Path(cfg.out), Path(cfg.results)
    for folder in (out, results):
        (folder / "genotypes").mkdir(parents=True, exist_ok=True)
    epochs = TrainConfig.from_dict(cfg.recipe).epochs
    rows = []
    for g in genotypes:
        name = "searched" if g is genotypes[0] else g.name
        path = g.save(out / "genotypes" / f"{name}.json")
        g.save(results / "genotypes" / f"{name}.json")
        record = finished_record(out / name, epochs) if cfg.report_only \
            else train_one(path, cfg.recipe, out / name)
        rows.append({"name": name, "hash": g.hash,
                     "predicted_ms": sampling["predicted_ms"][g.name], **(record or {})})
    summary = summarize(rows)
    result = {"config": cfg.to_dict(), "sampling": sampling, "rows": rows, "summary": summary}
    (results / "sanity.json").write_text(json.dumps(result, indent=1) + "\n")
    (results / "sanity.md").write_text(markdown(rows, summary))
    if any("val_history" in r for r in rows):
        plot(rows, results / "sanity_curves.png")
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m experiments.sanity", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    cfg = SanityConfig.from_args(SanityConfig.add_flags(p).parse_args(argv))
    result = run(cfg)
    print(markdown(result["rows"], result["summary"]), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
