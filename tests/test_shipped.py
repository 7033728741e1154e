"""The shipped models: the default measured on the 101 CamVid val frames, every lineage, and
the decision record of every searched genotype that ships."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from lgcnet_deploy.measure.evaluate import evaluate
from lgcnet_deploy.measure.lineage import runs_of
from lgcnet_deploy.model.checkpoint import load_checkpoint, read_checkpoint
from lgcnet_deploy.model.genotype import GENOTYPE_DIR, load_genotype
from lgcnet_deploy.model.shipped import (
    DEFAULT_MODEL,
    SHIPPED_MODELS,
    resolve_model,
    shipped_file,
)
from lgcnet_deploy.runtime.segmenter import Segmenter
from lgcnet_research.base.plots import plot_lineage

ROOT = Path(__file__).resolve().parent.parent


def test_shipped_default_measures_what_it_records(camvid_val):
    """The default trained on val too (its last run used all 468 labelled frames), so val
    checks that the file scores what its run recorded; accuracy is the folds' (README)."""
    report = evaluate(Segmenter(shipped_file(DEFAULT_MODEL)), "val", progress=False)
    recorded = read_checkpoint(shipped_file(DEFAULT_MODEL))["metrics"]
    assert report.frames == 101
    assert abs(report.miou - recorded["val_miou"]) < 1e-3
    assert "not measure accuracy" in recorded["val_note"]
    for name, iou in recorded["val_per_class_iou"].items():
        assert abs(report.per_class_iou[name] - iou) < 1e-3


def test_lineage_walks_warm_starts_oldest_first(tmp_path):
    scratch = {"hardware": "cpu", "recipe": {"lr": 0.02}, "val_history": [[5, 0.2], [10, 0.3]]}
    tuned = {"hardware": "gpu", "recipe": {"lr": 0.01}, "val_history": [[4, 0.5]],
             "init": {"path": "a.pt", "metrics": {"val_miou": 0.3}, "provenance": scratch}}
    assert runs_of(tuned) == [scratch, tuned]
    assert runs_of({}) == []
    assert plot_lineage(tuned, tmp_path / "l.png").stat().st_size > 0


def test_shipped_default_lineage_is_complete():
    checkpoint = read_checkpoint(shipped_file(DEFAULT_MODEL))
    runs = runs_of(checkpoint["provenance"])
    # one history: 250 epochs on train + val from the ImageNet trunk, the last 10 on full frames,
    # with the adopted exposure normalisation and Lovász loss
    assert len(runs) == 1 and runs[0]["val_history"] and runs[0]["command"]
    run = runs[0]
    assert run["genotype_hash"] == "4dc143e5b35a" and run["epochs_run"] == 250
    recipe = run["recipe"]
    assert recipe["fold"] == "all" and recipe["ema"] and recipe["imagenet_stem"]
    assert not recipe.get("teacher_targets")
    assert recipe["exposure_target"] == 0.45 and recipe["lovasz_weight"] == 1.0
    assert checkpoint["meta"]["exposure_target"] == 0.45  # the Segmenter brightens as trained
    assert checkpoint["genotype"]["name"] == "lite0-s16-lean16-camvid"
    assert "random search" in checkpoint["genotype"]["provenance"]["cells_selection"]


def test_searched_model_lineage_is_complete():
    runs = runs_of(read_checkpoint(resolve_model("lgcnet-camvid-searched"))["provenance"])
    assert len(runs) == 5  # 80 + 60 + 75 CPU epochs, 196 on an H100, 8 on the CPU
    assert all(run["val_history"] and run["genotype_hash"] == "217a4c530fff" for run in runs)
    assert all(run["command"] for run in runs)
    assert [run["epochs_run"] for run in runs] == [80, 60, 75, 196, 8]


def shipped_genotype_provenance(where: str) -> dict:
    """The provenance of a genotype file in genotypes/ or of a shipped model's genotype."""
    if where.startswith("genotypes/"):
        return load_genotype(GENOTYPE_DIR / where.removeprefix("genotypes/")).provenance
    return read_checkpoint(resolve_model(where))["genotype"].get("provenance", {})


@pytest.mark.parametrize("where", [*(f"genotypes/{p.name}" for p in
                                     sorted(GENOTYPE_DIR.glob("*.json"))), *sorted(SHIPPED_MODELS)])
def test_every_shipped_searched_genotype_records_a_decided_search(where):
    provenance = shipped_genotype_provenance(where)
    if not str(provenance.get("source", "")).startswith("search"):
        pytest.skip(f"{where}: not from the gradient search")
    assert provenance["mean_top1_prob"] >= 0.5  # issue 14: the search decided
    assert isinstance(provenance["seed_agreement"], float)  # and says how far seeds agree


def test_ship_checkpoint_renames_the_genotype_and_refuses_other_weights(tmp_path, trained_like_net):
    from experiments.ship import ship_checkpoint
    from lgcnet_deploy.core.classes import CAMVID
    from lgcnet_deploy.core.metadata import ModelMeta
    from lgcnet_deploy.model.checkpoint import save_checkpoint
    from lgcnet_deploy.model.genotype import Genotype

    path = save_checkpoint(tmp_path / "best.pt", trained_like_net, ModelMeta.for_dataset(CAMVID),
                           provenance={"recipe": {"lr": 0.01}}, metrics={"val_miou": 0.5})
    best = read_checkpoint(path)
    named = Genotype.from_dict({**trained_like_net.genotype.to_dict(), "name": "shipped-name",
                                "provenance": {"source": "a test"}})
    out = ship_checkpoint(best, named, best["provenance"], tmp_path / "m.pt", tmp_path / "g.json",
                          summary="one line", assembled="this test")
    shipped = read_checkpoint(out)
    assert shipped["genotype"]["name"] == "shipped-name" and shipped["metrics"]["val_miou"] == 0.5
    assert shipped["provenance"] == {"recipe": {"lr": 0.01}, "summary": "one line",
                                     "assembled": "this test"}
    assert load_genotype(tmp_path / "g.json").provenance == {"source": "a test"}
    other = Genotype.from_dict({**named.to_dict(), "widths": {"stem": [8, 16, 16],
                                                              "cells": [16, 32, 64], "fusion": 32}})
    with pytest.raises(ValueError, match="not the one these weights were trained for"):
        ship_checkpoint(best, other, {}, tmp_path / "x.pt", tmp_path / "x.json", summary="",
                        assembled="")
    assert not (tmp_path / "x.pt").exists()


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SHIPPED_MODELS))
def test_shipped_onnx_is_the_export_of_its_checkpoint(name, tmp_path, camvid_val):
    """`make shipped-onnx` (`lgcnet export NAME.pt -o NAME.onnx`) run now gives the shipped
    ONNX's graph, weights, metadata and masks: a replaced checkpoint fails here until
    re-exported. Weights are compared to float rounding, not by digest: the constants onnxsim
    folds (BN into convs, the input's normalisation) come out a few ulps apart on CPUs with
    other vector instructions (3.8e-6 at most between an AVX-512 and an AVX2 machine)."""
    import onnx
    from onnx import numpy_helper

    from lgcnet_deploy.artifact.integrity import digest_status
    from lgcnet_deploy.cli import main

    shipped, fresh = shipped_file(name, ".onnx"), tmp_path / "fresh.onnx"
    assert main(["export", str(shipped_file(name)), "-o", str(fresh)]) == 0
    assert digest_status(shipped)["ok"], f"{shipped.name} changed after export"
    graphs = [onnx.load(str(p)).graph for p in (shipped, fresh)]
    assert [n.op_type for n in graphs[0].node] == [n.op_type for n in graphs[1].node]
    weights = [{i.name: numpy_helper.to_array(i) for i in g.initializer} for g in graphs]
    assert weights[0].keys() == weights[1].keys()
    for key, value in weights[0].items():
        np.testing.assert_allclose(weights[1][key], value, rtol=1e-4, atol=1e-5, err_msg=(
            f"{shipped.name} is not the export of {shipped_file(name).name}: run make "
            f"shipped-onnx"))
    frame = camvid_val[0][0]
    with Segmenter(shipped) as a, Segmenter(fresh) as b:
        assert a.meta == b.meta and a.meta.genotype == b.meta.genotype
        assert a.meta.input_size == (360, 480) and a.meta.output_kind == "argmax"
        assert (a.predict(frame).mask == b.predict(frame).mask).all()


def test_ship_config_records_the_lineage_commands_and_the_genotype_provenance(
        tmp_path, trained_like_net):
    import json

    from experiments.ship import ShipConfig, main
    from lgcnet_deploy.core.classes import CAMVID
    from lgcnet_deploy.core.metadata import ModelMeta
    from lgcnet_deploy.model.checkpoint import save_checkpoint

    meta = ModelMeta.for_dataset(CAMVID)
    history = [{"epoch": 1, "loss": 1.0}, {"epoch": 2, "loss": 0.9, "val_miou": 0.31234}]
    first = save_checkpoint(tmp_path / "first" / "last.pt", trained_like_net, meta,
                            provenance={"recipe": {"lr": 0.02}}, train_state={"history": history})
    save_checkpoint(tmp_path / "best.pt", trained_like_net, meta, metrics={"val_miou": 0.5},
                    provenance={"recipe": {"lr": 0.01}, "init": {"path": str(first),
                                                                 "provenance": {"recipe": {}}}})
    trained_like_net.genotype.save(tmp_path / "g.json")
    (tmp_path / "agreement.json").write_text(json.dumps({"seed_agreement": {"pairs": 1, "x": 2}}))
    cfg = ShipConfig(genotype=str(tmp_path / "g.json"), name="shipped", summary="one line",
                     weights=str(tmp_path / "m.pt"), genotype_out=str(tmp_path / "out.json"),
                     runs=[{"last": str(first), "command": "first"}, {"command": "second",
                                                                      "git": "abc"}],
                     genotype_provenance={"source": "a test"}, lineage_png=str(tmp_path / "l.png"),
                     genotype_provenance_from={"agreement": [str(tmp_path / "agreement.json"),
                                                             "seed_agreement", ["pairs"]]})
    (tmp_path / "ship.json").write_text(json.dumps(cfg.to_dict()))
    assert main([str(tmp_path / "ship.json"), "--best", str(tmp_path / "best.pt")]) == 0
    shipped = read_checkpoint(tmp_path / "m.pt")
    runs = runs_of(shipped["provenance"])
    assert [r["command"] for r in runs] == ["first", "second"] and runs[1]["git"] == "abc"
    assert runs[0]["epochs_run"] == 2 and runs[0]["val_history"] == [[2, 0.3123]]
    assert shipped["provenance"]["assembled"].startswith("python -m experiments.ship ")
    provenance = load_genotype(tmp_path / "out.json").provenance
    assert provenance["source"] == "a test" and provenance["agreement"] == {"pairs": 1}
    assert (tmp_path / "l.png").stat().st_size > 0
    cfg.runs.pop()
    (tmp_path / "short.json").write_text(json.dumps(cfg.to_dict()))
    with pytest.raises(ValueError, match="2 runs in the checkpoint's lineage, the config lists 1"):
        main([str(tmp_path / "short.json"), "--best", str(tmp_path / "best.pt")])


@pytest.mark.parametrize("name", sorted(SHIPPED_MODELS))
def test_recorded_training_splits_match_the_checkpoint_lineage(name):
    from lgcnet_deploy.measure.lineage import splits_seen, trained_on
    from lgcnet_deploy.model.checkpoint import read_checkpoint
    from lgcnet_deploy.model.shipped import SHIPPED_TRAINED_ON, shipped_file

    pt = shipped_file(name, ".pt")
    assert splits_seen(read_checkpoint(pt)["provenance"]) == set(SHIPPED_TRAINED_ON[name])
    assert trained_on(name) == trained_on(pt) == set(SHIPPED_TRAINED_ON[name])


def test_eval_on_frames_the_lineage_saw_says_so(camvid_val, capsys):
    from lgcnet_deploy.cli import main

    assert main(["eval", "lgcnet-camvid", "--limit", "2"]) == 0
    assert "was trained on frames of CamVid val" in capsys.readouterr().out
    assert main(["eval", "lgcnet-camvid-handwritten", "--limit", "2"]) == 0
    assert "was trained on frames" not in capsys.readouterr().out


def _warm_starts_from_shipped_weights() -> list[tuple[str, str, str]]:
    """(config, the shipped checkpoint its `init` names, its genotype) of every training
    config that continues a shipped model (`init`: same genotype; `init_matching` may differ)."""
    found = []
    configs = [*ROOT.glob("configs/**/*.json"), *ROOT.glob("experiments/configs/**/*.json")]
    for path in sorted(configs):
        cfg = json.loads(path.read_text())
        init = cfg.get("init") if isinstance(cfg, dict) else None
        if isinstance(init, str) and init.startswith("lgcnet_deploy/model/weights/"):
            found.append((str(path.relative_to(ROOT)), init, cfg.get("genotype", "default")))
    return found


@pytest.mark.parametrize("config, checkpoint, genotype", _warm_starts_from_shipped_weights())
def test_a_config_that_continues_a_shipped_model_names_its_genotype(config, checkpoint, genotype):
    """Shipping a new default must carry such configs along (the GPU sprint's warm start)."""
    load_checkpoint(ROOT / checkpoint, genotype=load_genotype(genotype))  # else CheckpointError
