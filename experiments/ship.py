"""Ship a trained checkpoint as a package model: its weights under the genotype's final name and
provenance, the training's metadata and metrics, each run of its warm-start lineage with the
command that ran it, and the genotype file beside it. What a model ships with is a config in
experiments/configs/ship/; the trained checkpoint is named on the command line:

    python -m experiments.ship experiments/configs/ship/lgcnet-camvid-searched.json \\
        --best runs/decided/gpu_cpu_ft/best.pt

A config's `runs` lists the lineage oldest first: each run's `command`, optionally its `last`
checkpoint (whose history gives the epochs and val mIoU that older training code did not
record) and any other field to record. `genotype_provenance_from` copies fields of result
files (a seed agreement, say) into the genotype's provenance. `recipe` (fields the checkpoint's
run must have been trained with) and `final_epoch` refuse the wrong checkpoint: another fold's
run, or an unfinished one.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from lgcnet_deploy.core.metadata import ModelMeta
from lgcnet_deploy.measure.lineage import runs_of
from lgcnet_deploy.model.checkpoint import read_checkpoint, save_checkpoint
from lgcnet_deploy.model.genotype import Genotype, load_genotype
from lgcnet_deploy.model.network import LGCNet
from lgcnet_research.base.plots import plot_lineage
from lgcnet_research.base.settings import Settings
from lgcnet_research.train.trainer import run_record


@dataclass
class ShipConfig(Settings):
    KIND: ClassVar[str] = "shipping"

    genotype: str  # the genotype the weights were trained for (JSON)
    name: str  # the shipped genotype's name
    weights: str  # the package model to write (.pt)
    genotype_out: str  # its genotype file in the package
    summary: str  # one line: what was trained how
    runs: list[dict[str, Any]]  # the lineage, oldest first (see the module's docstring)
    genotype_provenance: dict[str, Any] = field(default_factory=dict)
    # {key: [result JSON, field, [keys to copy]]}
    genotype_provenance_from: dict[str, list[Any]] = field(default_factory=dict)
    lineage_png: str | None = None  # the lineage figure to draw, if any
    metrics: dict[str, Any] = field(default_factory=dict)  # added to the checkpoint's metrics
    recipe: dict[str, Any] = field(default_factory=dict)  # fields its last run's recipe holds
    final_epoch: bool = False  # ship only a run's last epoch (a finished run's last.pt)


def ship_checkpoint(best: dict[str, Any], genotype: Genotype, provenance: dict[str, Any],
                    out: str | Path, genotype_out: str | Path, *, summary: str,
                    assembled: str, metrics: dict[str, Any] | None = None) -> Path:
    """Write `best` (a read checkpoint) to `out` as a model of `genotype`, with `provenance`
    plus a one-line `summary` and what `assembled` it, and the genotype to `genotype_out`;
    refuses weights trained for another architecture."""
    trained = best["meta"]["genotype_hash"]
    if genotype.hash != trained:
        raise ValueError(f"genotype {genotype.hash} is not the one these weights were trained "
                         f"for ({trained})")
    net = LGCNet(genotype, len(best["meta"]["classes"]))
    net.load_state_dict(best["state_dict"])
    path = save_checkpoint(out, net, ModelMeta.from_dict(best["meta"]),
                           provenance={**provenance, "summary": summary, "assembled": assembled},
                           metrics={**best["metrics"], **(metrics or {})})
    genotype.save(genotype_out)
    return path


def shipped_genotype(cfg: ShipConfig) -> Genotype:
    """The trained genotype under its shipped name, its provenance completed by the config."""
    genotype = load_genotype(cfg.genotype)
    provenance = {**genotype.provenance, **cfg.genotype_provenance}
    for key, (path, at, keys) in cfg.genotype_provenance_from.items():
        found = json.loads(Path(path).read_text())[at]
        provenance[key] = {k: found[k] for k in keys}
    return Genotype.from_dict({**genotype.to_dict(), "name": cfg.name, "provenance": provenance})


def annotate_lineage(provenance: dict[str, Any], runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Record each run's command and fields, oldest first, in the lineage of `provenance`;
    a run's `last` checkpoint fills in the epochs and val history it ran."""
    chain = runs_of(provenance)
    if len(chain) != len(runs):
        raise ValueError(f"{len(chain)} runs in the checkpoint's lineage, the config lists "
                         f"{len(runs)}")
    for run, spec in zip(chain, runs):
        if "last" in spec:
            run.update(run_record(read_checkpoint(spec["last"])["train_state"]["history"]))
        run.update({k: v for k, v in spec.items() if k != "last"})
    return provenance


def final_validation(checkpoint: dict[str, Any]) -> dict[str, Any]:
    """The last validated epoch's per-class IoU of a run's `last.pt` (its `best.pt` records
    them in its metrics already)."""
    history = (checkpoint.get("train_state") or {}).get("history") or []
    done = [h for h in history if "val_iou" in h]
    if not done or "val_per_class_iou" in checkpoint["metrics"]:
        return {}
    classes = checkpoint["meta"]["classes"]
    return {"val_miou": done[-1]["val_miou"], "epoch": done[-1]["epoch"],
            "val_per_class_iou": dict(zip(classes, done[-1]["val_iou"]))}


def check_run(best: dict[str, Any], cfg: ShipConfig) -> None:
    """ValueError unless `best` comes from the run `cfg` ships: its last run's recipe holds
    the config's `recipe` fields and, with `final_epoch`, that run had finished."""
    provenance = best["provenance"]
    recipe = provenance.get("recipe") or {}
    wrong = sorted(k for k, v in cfg.recipe.items() if recipe.get(k) != v)
    if wrong:
        found = ", ".join(f"{k}={recipe.get(k)!r}" for k in wrong)
        wanted = ", ".join(f"{k}={cfg.recipe[k]!r}" for k in wrong)
        raise ValueError(f"the checkpoint's run was trained with {found}; this config ships a "
                         f"run with {wanted}")
    done, planned = provenance.get("epochs_run"), recipe.get("epochs")
    if cfg.final_epoch and (done is None or done != planned):
        raise ValueError(f"the checkpoint is epoch {done} of its run's {planned}: ship the "
                         f"finished run's last.pt (continue the run with --resume)")


def ship(cfg: ShipConfig, best_path: str | Path, assembled: str) -> Path:
    best = read_checkpoint(best_path)
    check_run(best, cfg)
    provenance = annotate_lineage(best["provenance"], cfg.runs)
    path = ship_checkpoint(best, shipped_genotype(cfg), provenance, cfg.weights,
                           cfg.genotype_out, summary=cfg.summary, assembled=assembled,
                           metrics={**final_validation(best), **cfg.metrics})
    if cfg.lineage_png:
        plot_lineage(provenance, Path(cfg.lineage_png))
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m experiments.ship", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("config", type=Path, help="a ShipConfig JSON (experiments/configs/ship/)")
    p.add_argument("--best", type=Path, required=True, help="the trained checkpoint to ship")
    args = p.parse_args(argv)
    cfg = ShipConfig.load(args.config)
    path = ship(cfg, args.best, assembled=f"python -m experiments.ship {args.config.as_posix()}")
    metrics = read_checkpoint(path)["metrics"]
    runs = f"{len(cfg.runs)} run" + ("s" if len(cfg.runs) != 1 else "")
    print(f"{path}: {100 * metrics['val_miou']:.2f} % val, {runs}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
