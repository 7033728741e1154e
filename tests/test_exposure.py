"""Exposure normalisation (`core.exposure`): one rule for the trainer and the Segmenter,
carried in a model's metadata from its recipe to its ONNX."""

from __future__ import annotations

import numpy as np
import pytest

from lgcnet_deploy import Segmenter
from lgcnet_deploy.cli import main as lgcnet
from lgcnet_deploy.core.classes import CAMVID
from lgcnet_deploy.core.exposure import (
    MIN_GAMMA,
    ExposureError,
    check_target,
    exposure_gamma,
    mean_luminance,
    normalise_exposure,
)
from lgcnet_deploy.core.metadata import (
    INPUT_UINT8_NHWC_BGR,
    OUTPUT_ARGMAX,
    MetadataError,
    ModelMeta,
)
from lgcnet_deploy.export.pipeline import export_onnx
from lgcnet_deploy.model.checkpoint import save_checkpoint


def _frame(level: int, seed: int = 0, size: tuple[int, int] = (90, 120)) -> np.ndarray:
    """A textured BGR frame whose pixels spread around `level`."""
    rng = np.random.default_rng(seed)
    return np.clip(rng.normal(level, 12, (*size, 3)), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("level", [45, 80, 110])
def test_a_dark_frame_is_brightened_to_about_the_target(level: int) -> None:
    frame = _frame(level)
    out = normalise_exposure(frame, 0.45)
    assert mean_luminance(frame) < 0.45
    assert mean_luminance(out) == pytest.approx(0.45, abs=0.04)
    assert out.dtype == np.uint8 and out.shape == frame.shape
    # a gamma curve keeps the order of the pixel values: edges and textures stay where they are
    order = np.argsort(frame.ravel(), kind="stable")
    assert (np.diff(out.ravel()[order].astype(int)) >= 0).all()


def test_a_frame_at_or_above_the_target_and_no_target_pass_unchanged() -> None:
    bright, dark = _frame(160), _frame(30)
    assert normalise_exposure(bright, 0.45) is bright
    assert normalise_exposure(dark, None) is dark
    assert exposure_gamma(bright, 0.45) == 1.0


def test_a_very_dark_frame_gets_the_strongest_gamma_only() -> None:
    assert exposure_gamma(np.zeros((8, 8, 3), np.uint8), 0.45) == MIN_GAMMA
    assert exposure_gamma(_frame(15), 0.45) == MIN_GAMMA


def test_the_mean_luminance_of_a_large_frame_is_read_on_a_grid() -> None:
    small = _frame(90, size=(60, 80))
    large = np.repeat(np.repeat(small, 16, 0), 16, 1)  # 960x1280: read on every 4th pixel
    assert mean_luminance(large) == pytest.approx(mean_luminance(small), abs=0.01)


@pytest.mark.parametrize("target", [0, 1, 1.5, -0.2, True, "0.45", None])
def test_a_target_outside_0_1_is_refused_with_the_range(target: object) -> None:
    with pytest.raises(ExposureError, match="between 0 and 1"):
        check_target(target)  # type: ignore[arg-type]


def test_the_target_travels_in_the_metadata_and_a_bad_one_is_named() -> None:
    meta = ModelMeta.for_dataset(CAMVID, exposure_target=0.45)
    assert ModelMeta.from_props(meta.to_props()).exposure_target == 0.45
    assert ModelMeta.from_props(ModelMeta.for_dataset(CAMVID).to_props()).exposure_target is None
    with pytest.raises(MetadataError, match=r"exposure_target.*mean luminance between 0 and 1"):
        ModelMeta.from_dict({**meta.to_dict(), "exposure_target": 2})


@pytest.fixture(scope="module")
def exposed_models(tmp_path_factory, trained_like_net):
    folder = tmp_path_factory.mktemp("exposed")
    meta = ModelMeta.for_dataset(CAMVID, input_size=(90, 120), exposure_target=0.45)
    checkpoint = save_checkpoint(folder / "m.pt", trained_like_net, meta)
    onnx = export_onnx(trained_like_net, meta.replace(
        genotype_hash=trained_like_net.genotype.hash, input_format=INPUT_UINT8_NHWC_BGR,
        output_kind=OUTPUT_ARGMAX), folder / "m.onnx")
    return {"pt": checkpoint, "onnx": onnx}


@pytest.mark.parametrize("kind", ["pt", "onnx"])
def test_the_model_file_carries_its_target_to_the_segmenter(exposed_models, kind: str) -> None:
    with Segmenter(exposed_models[kind]) as seg:
        assert seg.meta.exposure_target == 0.45
        assert seg.predict(_frame(40)).mask.shape == (90, 120)


def test_the_segmenter_prepares_frames_exactly_as_training_did(exposed_models) -> None:
    with Segmenter(exposed_models["onnx"]) as seg:  # uint8 NHWC BGR in: the frames as they are
        dark, bright = _frame(40, 1), _frame(150, 2)  # at the model's input size
        np.testing.assert_array_equal(seg.preprocess([dark, bright]),
                                      np.stack([normalise_exposure(dark, 0.45), bright]))


def test_a_large_frame_is_brightened_after_its_resize_by_its_own_gamma(exposed_models) -> None:
    with Segmenter(exposed_models["onnx"]) as seg:
        large = np.repeat(np.repeat(_frame(40, 3), 4, 0), 4, 1)  # 360x480 into a 90x120 model
        x = seg.preprocess([large])[0]
        assert mean_luminance(x) == pytest.approx(0.45, abs=0.04)


def test_lgcnet_info_says_the_model_brightens_dark_frames(exposed_models, capsys) -> None:
    assert lgcnet(["info", str(exposed_models["onnx"])]) == 0
    assert "frames of mean luminance under 0.45 brightened to it" in capsys.readouterr().out
