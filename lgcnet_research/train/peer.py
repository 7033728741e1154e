"""Checkpoints of the research nets that are not LGCNets: the LR-ASPP peer (torchvision's
LR-ASPP MobileNetV3-Large trained from scratch, `weights=None, weights_backbone=None`) and the
teachers (`lgcnet_research.train.teacher`, EfficientNet-Lite0, -Lite1 or -Lite2 from ImageNet).

The peer's network is the SDK's one definition, `lgcnet_deploy.measure.bench.lraspp_net` (the
same module the SDK times and exports). The SDK's checkpoint rebuilds an LGCNet from the
genotype it stores; these nets have none, so their checkpoint is its own format: the net's name
and state dict, the CamVid metadata, provenance, metrics and, for `last.pt`, the train state —
the same fields as an LGCNet checkpoint, minus the genotype. `experiments.pareto
--peer-weights` scores a peer.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from torch import nn

from lgcnet_deploy.core.classes import CAMVID, DEFAULT_INPUT_SIZE
from lgcnet_deploy.core.metadata import ModelMeta
from lgcnet_deploy.measure.bench import LRASPP_NAME, lraspp_net
from lgcnet_deploy.model.checkpoint import cpu_state_dict, load_payload, save_payload
from lgcnet_research.train.teacher import TEACHERS, teacher_net

PEER_FORMAT = "lgcnet-research-peer/1"


class PeerCheckpointError(ValueError):
    """A file is not a peer checkpoint, or its weights do not fit the peer."""


# name -> builder(num_classes, from_imagenet): a checkpoint's weights replace ImageNet's anyway
RESEARCH_NETS: dict[str, Callable[[int, bool], nn.Module]] = {
    LRASPP_NAME: lambda n, _: lraspp_net(n),
    **{name: partial(teacher_net, variant=variant) for name, variant in TEACHERS.items()},
}


def research_net(name: str, num_classes: int, from_imagenet: bool = True) -> nn.Module:
    """A fresh research net by name (the teacher's backbone from ImageNet)."""
    return RESEARCH_NETS[name](num_classes, from_imagenet)


def peer_meta(input_size: tuple[int, int] = DEFAULT_INPUT_SIZE,
              name: str = LRASPP_NAME) -> ModelMeta:
    return ModelMeta.for_dataset(CAMVID, input_size=input_size, genotype_hash=name)


def save_peer_checkpoint(path: str | Path, model: nn.Module, meta: ModelMeta,
                         provenance: dict[str, Any] | None = None,
                         metrics: dict[str, Any] | None = None,
                         train_state: dict[str, Any] | None = None) -> Path:
    """Write a research-net checkpoint atomically (CPU tensors; the SDK's save_checkpoint
    signature); the net's name is the metadata's `genotype_hash` (see `peer_meta`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return save_payload(path, {"format": PEER_FORMAT, "model": meta.genotype_hash,
                               "meta": meta.to_dict(), "state_dict": cpu_state_dict(model),
                               "provenance": provenance or {}, "metrics": metrics or {},
                               "train_state": train_state or {}})


def read_peer_checkpoint(path: str | Path) -> dict[str, Any]:
    """The payload of a peer checkpoint (`weights_only=True`), its format checked."""
    return load_payload(path, PEER_FORMAT, "LR-ASPP peer checkpoint",
                        f"train one with `python -m lgcnet_research.train --model {LRASPP_NAME}`",
                        PeerCheckpointError)


def load_peer_weights(net: nn.Module, path: str | Path) -> dict[str, Any]:
    """Load a research checkpoint's weights into `net`; returns the payload."""
    payload = read_peer_checkpoint(path)
    try:
        net.load_state_dict(payload["state_dict"])
    except RuntimeError as e:
        raise PeerCheckpointError(f"{path}: weights do not fit {payload.get('model')} "
                                  f"with {CAMVID.num_classes} classes: {e}") from e
    return payload


def load_peer(path: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """The trained net of a research checkpoint (eval mode) and its payload."""
    name = read_peer_checkpoint(path).get("model", LRASPP_NAME)
    if name not in RESEARCH_NETS:
        raise PeerCheckpointError(f"{path}: unknown research net {name!r}; known: "
                                  f"{', '.join(RESEARCH_NETS)}")
    net = research_net(name, CAMVID.num_classes, from_imagenet=False)
    payload = load_peer_weights(net, path)
    return net.eval(), payload
