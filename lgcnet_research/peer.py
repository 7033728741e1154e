"""The research side of the LR-ASPP peer (torchvision's LR-ASPP MobileNetV3-Large trained from
scratch, `weights=None, weights_backbone=None`): its checkpoint.

The network is the SDK's one definition, `lgcnet_deploy.measure.bench.lraspp_net` (the same
module the SDK times and exports). The SDK's checkpoint rebuilds an LGCNet from the genotype it
stores; the peer has none, so its checkpoint is its own format: the peer's state dict, the
CamVid metadata, provenance, metrics and, for `last.pt`, the train state — the same fields as
an LGCNet checkpoint, minus the genotype. `experiments.pareto --peer-weights` scores one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from lgcnet_deploy.core.classes import CAMVID
from lgcnet_deploy.core.metadata import ModelMeta
from lgcnet_deploy.measure.bench import LRASPP_NAME, lraspp_net
from lgcnet_deploy.model.checkpoint import cpu_state_dict, load_payload, save_payload

PEER_FORMAT = "lgcnet-research-peer/1"


class PeerCheckpointError(ValueError):
    """A file is not a peer checkpoint, or its weights do not fit the peer."""


def peer_meta(input_size: tuple[int, int] = (360, 480)) -> ModelMeta:
    return ModelMeta.for_dataset(CAMVID, input_size=input_size, genotype_hash=LRASPP_NAME)


def save_peer_checkpoint(path: str | Path, model: nn.Module, meta: ModelMeta,
                         provenance: dict[str, Any] | None = None,
                         metrics: dict[str, Any] | None = None,
                         train_state: dict[str, Any] | None = None) -> Path:
    """Write a peer checkpoint atomically (CPU tensors; the SDK's save_checkpoint signature)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return save_payload(path, {"format": PEER_FORMAT, "model": LRASPP_NAME,
                               "meta": meta.to_dict(), "state_dict": cpu_state_dict(model),
                               "provenance": provenance or {}, "metrics": metrics or {},
                               "train_state": train_state or {}})


def read_peer_checkpoint(path: str | Path) -> dict[str, Any]:
    """The payload of a peer checkpoint (`weights_only=True`), its format checked."""
    return load_payload(path, PEER_FORMAT, "LR-ASPP peer checkpoint",
                        f"train one with `python -m lgcnet_research.train --model {LRASPP_NAME}`",
                        PeerCheckpointError)


def load_peer_weights(net: nn.Module, path: str | Path) -> dict[str, Any]:
    """Load a peer checkpoint's weights into `net` (a `lraspp_net`); returns the payload."""
    payload = read_peer_checkpoint(path)
    try:
        net.load_state_dict(payload["state_dict"])
    except RuntimeError as e:
        raise PeerCheckpointError(f"{path}: weights do not fit LR-ASPP MobileNetV3-Large "
                                  f"with {CAMVID.num_classes} classes: {e}") from e
    return payload


def load_peer(path: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """The trained peer of a checkpoint (eval mode) and its payload."""
    net = lraspp_net(CAMVID.num_classes)
    payload = load_peer_weights(net, path)
    return net.eval(), payload
