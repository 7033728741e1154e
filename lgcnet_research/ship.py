"""Ship a trained checkpoint as a package model: its weights under the genotype's final name
and provenance, the training's metadata and metrics, the provenance the caller assembled, and
the genotype file beside it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lgcnet_deploy.core.metadata import ModelMeta
from lgcnet_deploy.model.checkpoint import save_checkpoint
from lgcnet_deploy.model.genotype import Genotype
from lgcnet_deploy.model.network import LGCNet


def ship_checkpoint(best: dict[str, Any], genotype: Genotype, provenance: dict[str, Any],
                    out: str | Path, genotype_out: str | Path, *, summary: str,
                    assembled: str) -> Path:
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
                           metrics=best["metrics"])
    genotype.save(genotype_out)
    return path
