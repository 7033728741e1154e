"""Rare-class crops (`rare_class_crops`): a share of the training crops holds a pixel of a class
drawn rarest-first, on the CPU path and on the device path; without it the crops are drawn as
they always were."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lgcnet_research.train.config import TrainConfig
from lgcnet_research.train.data import (
    CamVidTorch,
    RareCrops,
    augment_batch,
    rare_anchor,
    rare_class_weights,
)
from lgcnet_research.train.trainer import Trainer

POLE = 2  # CamVid's class index of pole


def only(cls: int, num_classes: int = 11) -> np.ndarray:
    """Class weights that draw `cls` whenever a frame holds it."""
    weights = np.zeros(num_classes)
    weights[cls] = 1.0
    return weights


def test_class_weights_are_inverse_pixel_shares_and_zero_for_unseen_classes():
    weights = rare_class_weights(np.array([0.5, 0.25, 0.0, 0.25]))
    assert weights.tolist() == [2.0, 4.0, 0.0, 4.0]


def test_an_anchor_is_a_pixel_of_a_drawn_class_and_none_in_a_void_frame():
    label = np.full((20, 30), 11, np.uint8)  # void everywhere
    rare = RareCrops(1.0, rare_class_weights(np.full(11, 1 / 11)))
    assert rare_anchor(label, rare, np.random.default_rng(0)) is None
    label[3, 7] = POLE
    label[10:, :] = 0  # sky fills the lower half; its weight is 0 here
    rare = RareCrops(1.0, only(POLE))
    assert {rare_anchor(label, rare, np.random.default_rng(s)) for s in range(5)} == {(3, 7)}


def test_cpu_crops_hold_the_rare_class_when_its_share_is_one(camvid_val):
    frames = [i for i in range(12) if (camvid_val[i][1] == POLE).any()]
    assert len(frames) >= 3  # CamVid's frames nearly all hold a pole
    data = CamVidTorch("val", crop=(64, 64), scale_range=(0.75, 1.25),
                       rare_crops=RareCrops(1.0, only(POLE)))
    plain = CamVidTorch("val", crop=(64, 64), scale_range=(0.75, 1.25))
    for epoch in range(2):
        data.set_epoch(epoch)
        plain.set_epoch(epoch)
        assert all((data[i][1] == POLE).any() for i in frames)
    # a 64x64 crop anywhere misses the poles of some frames: the share is what puts them in
    assert not all((plain[i][1] == POLE).any() for i in frames)


def test_without_rare_crops_the_draws_are_those_of_a_run_without_the_setting(camvid_val):
    # the recipe's default builds no RareCrops, so a run's batches stay bit-identical
    a = CamVidTorch("val", crop=(64, 64), seed=3)
    b = CamVidTorch("val", crop=(64, 64), seed=3, rare_crops=None)
    for i in range(3):
        assert torch.equal(a[i][0], b[i][0]) and torch.equal(a[i][1], b[i][1])


def test_device_crops_hold_the_rare_class_and_void_frames_fall_back():
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (6, 48, 64, 3), dtype=torch.uint8, generator=g)
    labels = torch.zeros(6, 48, 64, dtype=torch.uint8)
    for i in range(5):  # one pole pixel per frame, somewhere else each time
        labels[i, 7 * i + 3, 11 * i + 5] = POLE
    labels[5] = 11  # a frame of void only
    rare = RareCrops(1.0, only(POLE))
    for seed in range(3):
        _, y = augment_batch(images, labels, (16, 16), (0.9, 1.1), 11,
                             torch.Generator().manual_seed(seed), rare_crops=rare)
        assert all((y[i] == POLE).any() for i in range(5))
        assert (y[5] == 11).all()  # drawn anywhere, without error
    _, y = augment_batch(images, labels, (16, 16), (0.9, 1.1), 11,
                         torch.Generator().manual_seed(0))
    assert not all((y[i] == POLE).any() for i in range(5))


@pytest.mark.parametrize("device_data", [False, True])
def test_the_recipe_builds_rare_crops_from_its_training_frames(tmp_path, camvid_val,
                                                               device_data):
    cfg = TrainConfig(out=str(tmp_path), batch=2, crop=(64, 64), threads=1, limit=(4, 1),
                      epochs=1, rare_class_crops=0.5, device_data=device_data)
    trainer = Trainer(cfg)
    rare = (trainer.loader if device_data else trainer.dataset).rare_crops
    if device_data:  # a batch is drawn with them
        assert next(iter(trainer.loader))[1].shape == (2, 64, 64)
    assert rare.share == 0.5 and rare.class_weights.shape == (11,)
    assert rare.class_weights[POLE] > rare.class_weights[3]  # pole rarer than road
    assert Trainer(TrainConfig(out=str(tmp_path), crop=(64, 64), threads=1, limit=(4, 1),
                               epochs=1)).dataset.rare_crops is None
    with pytest.raises(ValueError, match="rare_class_crops"):
        Trainer(TrainConfig(out=str(tmp_path), threads=1, limit=(4, 1), epochs=1,
                            rare_class_crops=1.5))
