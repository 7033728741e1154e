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
SPLITS_OF = {"all": ("train", "val"), "train": ("train",), "val": ("val",)}


def splits_seen(provenance: dict[str, Any]) -> set[str]:
    """The splits whose frames trained this model or any run it started from."""
    seen: set[str] = set()
    node: Any = provenance
    for _ in range(MAX_LINEAGE):
        if not isinstance(node, dict):
            break
        match = re.match(r"CamVid (\w+)", str(node.get("data") or ""))
        if match:
            seen.update(SPLITS_OF.get(match.group(1), ()))
        init = node.get("init")
        node = init.get("provenance") if isinstance(init, dict) else None
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
