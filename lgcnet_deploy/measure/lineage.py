"""Which CamVid splits a model's lineage trained on, from its checkpoint's provenance (the
`data` of its run and of every run it was warm-started from, nested under `init`), so that an
evaluation on frames the model has seen says so next to its number."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from typing import Any

from lgcnet_deploy.core.formats import find_format
from lgcnet_deploy.model.shipped import SHIPPED_MODELS, SHIPPED_TRAINED_ON

MAX_LINEAGE = 64  # warm starts followed; a provenance is bounded, this guards a damaged one
# a run's `data` ("CamVid all (468 frames)") -> the splits of its frames; every fold trains on
# drive 0016E5, whose frames lie in train and in val
SPLITS_OF = {"all": ("train", "val"), "train": ("train",), "val": ("val",),
             "fold": ("train", "val")}


def runs_of(provenance: dict[str, Any]) -> list[dict[str, Any]]:
    """The runs behind a checkpoint, oldest first: each warm start's provenance holds the
    provenance of the checkpoint it started from under `init`."""
    runs: list[dict[str, Any]] = []
    node: Any = provenance
    while isinstance(node, dict) and node and len(runs) < MAX_LINEAGE:
        runs.append(node)
        init = node.get("init")
        node = init.get("provenance") if isinstance(init, dict) else None
    return runs[::-1]


def splits_seen(provenance: dict[str, Any]) -> set[str]:
    """The splits whose frames trained this model or any run it started from."""
    seen: set[str] = set()
    for run in runs_of(provenance):
        match = re.match(r"CamVid (\w+)", str(run.get("data") or ""))
        if match:
            seen.update(SPLITS_OF.get(match.group(1), ()))
    return seen


def trained_on(model: str | Path) -> set[str] | None:
    """The splits a model's lineage saw: a shipped model's (recorded beside it, for the base
    install), a checkpoint's from its provenance; None when unknown (an ONNX or engine file
    carries no training lineage)."""
    name = str(model)
    if name in SHIPPED_MODELS and not Path(name).exists():
        return set(SHIPPED_TRAINED_ON[name])
    fmt = find_format(name)
    if fmt is None or fmt.name != "pytorch" or importlib.util.find_spec("torch") is None:
        return None
    from lgcnet_deploy.model.checkpoint import read_checkpoint

    return splits_seen(read_checkpoint(name).get("provenance") or {})


def seen_warning(model: str | Path, split: str) -> str | None:
    """A line for a report on `split` when the model's lineage trained on it."""
    seen = trained_on(model)
    if not seen or split not in seen:
        return None
    return (f"warning: {model} was trained on frames of CamVid {split} (its lineage: "
            f"{', '.join(sorted(seen))}): this mIoU checks the file, it does not measure "
            f"accuracy on unseen frames")
