"""The shipped default's path, rehearsed on tiny data: the shipped recipe (the recipe of the
campaign's trunk+w16+exposure+lovasz arm at its shipped length) trains on two frames, ships
through its own ship config into a scratch folder, exports, passes `lgcnet check-trt`, shows
its lineage and exposure target in `lgcnet info`, segments a frame from its ONNX and warns in
`lgcnet eval` that its lineage saw val. What runs when the real run has finished
(docs/training.md, "Shipping the default")."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from experiments.campaign import QUEUE, queue
from experiments.ship import ShipConfig, check_run
from experiments.ship import main as ship_main
from lgcnet_deploy.cli import main as cli_main
from lgcnet_deploy.measure.lineage import runs_of, splits_seen
from lgcnet_deploy.model.checkpoint import read_checkpoint
from lgcnet_deploy.model.shipped import DEFAULT_MODEL, shipped_file
from lgcnet_deploy.runtime.segmenter import Segmenter
from lgcnet_research.train.config import TrainConfig
from lgcnet_research.train.fold_eval import check_unseen
from lgcnet_research.train.folds import FoldError
from lgcnet_research.train.trainer import Trainer

ROOT = Path(__file__).resolve().parent.parent
TRAIN_CONFIG = ROOT / "configs" / "train" / "ship_trunk.json"
SHIP_CONFIG = ROOT / "experiments" / "configs" / "ship" / "lgcnet-camvid-trunk.json"
SHIPPED_ARM = "trunk+w16+exposure+lovasz"  # the campaign's arm whose recipe ships


def test_the_shipped_recipe_is_the_screened_arms_recipe_at_its_shipped_length():
    shipped = TrainConfig.load(TRAIN_CONFIG).to_dict()
    (fold,) = [s.settings().to_dict() for s in queue(QUEUE)
               if getattr(s, "arm", None) == SHIPPED_ARM and s.settings().fold == "A"
               and s.settings().seed == 0]
    changed = {k for k in shipped if shipped[k] != fold[k]}
    assert changed == {"fold", "out", "epochs", "finish_epochs", "eval_every"}
    assert shipped["fold"] == "all" and shipped["teacher_targets"] is None
    cfg = ShipConfig.load(SHIP_CONFIG)
    assert {k: shipped[k] for k in cfg.recipe} == cfg.recipe and cfg.final_epoch
    assert TRAIN_CONFIG.relative_to(ROOT).as_posix() in cfg.runs[0]["command"]
    assert ROOT / cfg.weights == shipped_file(DEFAULT_MODEL)
    assert ROOT / cfg.weights != ROOT / cfg.genotype_out  # the old genotype file stays


@pytest.mark.parametrize("provenance,error", [
    ({"recipe": {"fold": "A", "epochs": 250}, "epochs_run": 250}, "trained with fold='A'"),
    ({"recipe": {"fold": "all", "epochs": 250}, "epochs_run": 120}, "epoch 120 of its run's 250"),
])
def test_ship_refuses_another_fold_or_an_unfinished_run(provenance, error):
    cfg = ShipConfig.load(SHIP_CONFIG)
    cfg.recipe = {"fold": "all"}
    with pytest.raises(ValueError, match=error):
        check_run({"provenance": provenance}, cfg)
    check_run({"provenance": {**provenance, "recipe": {"fold": "all", "epochs": 120},
                              "epochs_run": 120}}, cfg)


def _tiny_run(tmp_path: Path) -> Path:
    """The shipped recipe for one epoch on two frames (its finishing phase, on 64x96 crops
    here); returns its last.pt."""
    cfg = TrainConfig.load(TRAIN_CONFIG, out=str(tmp_path / "run"), epochs=1, finish_epochs=1,
                           finish_crop=(64, 96), limit=(2, 1), batch=2, crop=(64, 64),
                           threads=None)
    Trainer(cfg).fit()
    return tmp_path / "run" / "last.pt"


def _ship(tmp_path: Path, last: Path) -> dict:
    """The real ship config, its outputs moved into tmp_path; returns the shipped file."""
    cfg = json.loads(SHIP_CONFIG.read_text())
    figure = tmp_path / Path(cfg["lineage_png"])  # a folder of its own, not there yet
    cfg.update(weights=str(tmp_path / "m.pt"), genotype_out=str(tmp_path / "g.json"),
               lineage_png=str(figure))
    (tmp_path / "ship.json").write_text(json.dumps(cfg))
    assert ship_main([str(tmp_path / "ship.json"), "--best", str(last)]) == 0
    assert figure.stat().st_size > 0
    return read_checkpoint(tmp_path / "m.pt")


@pytest.mark.slow
def test_shipping_rehearsal_on_tiny_data(tmp_path, camvid_val, capsys):
    last = _tiny_run(tmp_path)
    assert "aux_heads" in read_checkpoint(last)["train_state"]
    shipped = _ship(tmp_path, last)
    assert shipped["genotype"]["name"] == "lite0-s16-lean16-camvid" and not shipped["train_state"]
    assert not any(k.startswith("heads.") for k in shipped["state_dict"])  # aux heads stay
    (run,) = runs_of(shipped["provenance"])
    assert run["data"] == "CamVid all (2 frames)" and "ship_trunk.json" in run["command"]
    assert "teacher" not in run  # not distilled
    assert "not measure accuracy" in shipped["metrics"]["val_note"]
    assert splits_seen(shipped["provenance"]) == {"train", "val"}
    with pytest.raises(FoldError):
        check_unseen("A", shipped["provenance"], tmp_path / "m.pt")
    onnx = tmp_path / "m.onnx"
    assert cli_main(["export", str(tmp_path / "m.pt"), "-o", str(onnx)]) == 0
    assert cli_main(["check-trt", str(onnx)]) == 0
    capsys.readouterr()
    assert cli_main(["info", str(tmp_path / "m.pt")]) == 0
    info = " ".join(capsys.readouterr().out.split())
    assert "lineage 1 run, 1 epochs; the last on CamVid all (2 frames)" in info
    assert "distilled" not in info and "brightened to it (exposure normalisation)" in info
    frame = camvid_val[0][0]
    with Segmenter(onnx) as a, Segmenter(tmp_path / "m.pt") as b:
        assert a.meta.genotype_hash == "4dc143e5b35a" and a.meta.exposure_target == 0.45
        assert (a.predict(frame).mask == b.predict(frame).mask).mean() > 0.99
    assert cli_main(["eval", str(tmp_path / "m.pt"), "--limit", "1"]) == 0
    assert "was trained on frames of CamVid val" in capsys.readouterr().out


def test_a_fold_run_saw_frames_of_train_and_val():
    """Every fold trains on drive 0016E5, whose frames lie in train and in val, so `lgcnet
    eval --split val` of a fold run (or of a model warm-started from one) warns."""
    fold_run = {"data": "CamVid fold A train (367 frames)"}
    assert splits_seen(fold_run) == {"train", "val"}
    assert splits_seen({"data": "CamVid train (367 frames)",
                        "init": {"provenance": fold_run}}) == {"train", "val"}
    assert splits_seen({"data": "CamVid train (367 frames)"}) == {"train"}
