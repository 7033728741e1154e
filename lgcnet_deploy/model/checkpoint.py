"""Checkpoint format: genotype + weights + metadata + provenance, loadable with weights_only."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import torch

from lgcnet_deploy.core.classes import CAMVID, Dataset
from lgcnet_deploy.core.errors import BadInputError, MissingFileError, damaged
from lgcnet_deploy.core.formats import find_format
from lgcnet_deploy.core.metadata import ModelMeta
from lgcnet_deploy.model.genotype import Genotype, GenotypeError, load_genotype
from lgcnet_deploy.model.network import LGCNet
from lgcnet_deploy.model.shipped import resolve_model

CHECKPOINT_FORMAT = "lgcnet-checkpoint/1"


class CheckpointError(BadInputError):
    """A checkpoint is not an LGCNet checkpoint or does not match what the caller expects."""


def save_checkpoint(path: str | Path, model: LGCNet, meta: ModelMeta,
                    provenance: dict[str, Any] | None = None,
                    metrics: dict[str, Any] | None = None,
                    train_state: dict[str, Any] | None = None) -> Path:
    """Write a checkpoint atomically (a crash mid-write never corrupts the previous file),
    its weights on the CPU."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": CHECKPOINT_FORMAT,
        "genotype": model.genotype.to_dict(),
        "meta": meta.replace(genotype_hash=model.genotype.hash,
                             genotype=model.genotype.to_dict()).to_dict(),
        "state_dict": cpu_state_dict(model),
        "provenance": provenance or {},
        "metrics": metrics or {},
        "train_state": train_state or {},
    }
    return save_payload(path, payload)


def cpu_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The weights on the CPU, so that a GPU run's checkpoint loads anywhere."""
    return {k: v.detach().cpu() for k, v in model.state_dict().items()}


def save_payload(path: Path, payload: dict[str, Any]) -> Path:
    """torch.save under a temporary name, then rename: a crash never leaves half a file."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)
    return path


def load_payload(path: str | Path, expected_format: str, what: str, how_to_make: str,
                 error: type[ValueError] = CheckpointError) -> dict[str, Any]:
    """Load a checkpoint dict safely (`weights_only=True`) and check its `format`; `error`
    names the file, what it should be and how to make one."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"{what} not found: {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for corrupt or foreign files
        raise error(_unloadable(path, e)) from e
    if not isinstance(payload, dict) or payload.get("format") != expected_format:
        raise error(f"{path}: not an {what} (expected format {expected_format!r}); "
                    f"{how_to_make}")
    return payload


def _unloadable(path: Path, e: Exception) -> str:
    """Why torch.load failed: a pickle that names a class or function (weights_only refuses
    to import it, as it could run code) or a damaged file."""
    globals_ = [x for x in str(e).splitlines() if "GLOBAL" in x]
    if isinstance(e, pickle.UnpicklingError) and globals_:
        return (f"{path}: refused: it holds Python objects other than tensors and plain data "
                f"({globals_[0].strip()[:120]}), which could run code on load; use a checkpoint "
                f"written by lgcnet")
    return str(damaged(path, "checkpoint", e))


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load an LGCNet checkpoint dict safely and check its format and fields."""
    payload = load_payload(path, CHECKPOINT_FORMAT, "LGCNet checkpoint",
                           "produce one with `lgcnet train`")
    wrong = [k for k in ("genotype", "meta", "state_dict") if not isinstance(payload.get(k), dict)]
    if wrong:
        raise CheckpointError(str(damaged(path, "checkpoint", f"field(s) {', '.join(wrong)} "
                                          f"missing or not a dict")))
    return payload


def describe_checkpoint(path: Path) -> dict[str, Any]:
    """What a checkpoint holds, for `lgcnet info`: metadata, metrics, provenance, size."""
    ck = read_checkpoint(path)
    params = sum(v.numel() for v in ck["state_dict"].values() if v.is_floating_point())
    return {"backend": "torch", "format": ck["format"], "parameters_and_buffers": params,
            **ck["meta"], "metrics": ck["metrics"], "provenance": ck["provenance"]}


def load_checkpoint(path: str | Path, genotype: Genotype | None = None,
                    num_classes: int | None = None) -> tuple[LGCNet, ModelMeta, dict[str, Any]]:
    """Rebuild the model of a checkpoint. Returns (model in eval mode, metadata, payload).

    `genotype`/`num_classes`, when given, must match the checkpoint's, else CheckpointError.
    """
    payload = read_checkpoint(path)
    try:
        stored = Genotype.from_dict(payload["genotype"])
    except GenotypeError as e:
        raise CheckpointError(f"{path}: stored genotype is invalid: {e}") from e
    meta = ModelMeta.from_dict(payload["meta"], path)
    if genotype is not None and genotype.hash != stored.hash:
        raise CheckpointError(f"{path}: checkpoint is for genotype {stored.hash} "
                              f"({stored.name}), not {genotype.hash} ({genotype.name})")
    if num_classes is not None and num_classes != meta.num_classes:
        raise CheckpointError(f"{path}: checkpoint has {meta.num_classes} classes, "
                              f"expected {num_classes}")
    model = LGCNet(stored, meta.num_classes)
    try:
        model.load_state_dict(payload["state_dict"])
    except (RuntimeError, TypeError, ValueError, AttributeError) as e:  # damaged entries
        raise CheckpointError(f"{path}: weights do not fit genotype {stored.hash}: {e}") from e
    return model.eval(), meta, payload


def load_net(source: str | Path | Genotype, dataset: Dataset = CAMVID,
             input_size: tuple[int, int] | None = None) -> tuple[LGCNet, ModelMeta, bool]:
    """A net from a checkpoint (.pt/.pth; a shipped model's short name is its checkpoint) or,
    for speed work, a genotype (name, JSON path or Genotype) with random weights.
    Returns (net, meta, trained); `input_size` overrides the metadata's (H, W)."""
    if not isinstance(source, Genotype):
        source = resolve_model(source)
    fmt = None if isinstance(source, Genotype) else find_format(source)
    if fmt is not None and fmt.name == "pytorch":
        net, meta, _ = load_checkpoint(source)
        trained = True
    else:
        genotype = load_genotype(source)
        net = LGCNet(genotype, dataset.num_classes).eval()
        meta = ModelMeta.for_dataset(dataset, genotype_hash=genotype.hash,
                                     genotype=genotype.to_dict(),
                                     extra={"weights": "untrained (genotype only)"})
        trained = False
    if input_size is not None:
        meta = meta.replace(input_size=tuple(input_size))
    return net, meta, trained
