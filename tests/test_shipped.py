"""The shipped default: measured on the 101 CamVid val frames, and its lineage."""

from __future__ import annotations

from lgcnet_deploy.measure.evaluate import evaluate
from lgcnet_deploy.model.checkpoint import read_checkpoint
from lgcnet_deploy.model.shipped import default_model_path, resolve_model
from lgcnet_deploy.runtime.segmenter import Segmenter
from lgcnet_research.plots import lineage, plot_lineage


def test_shipped_default_measures_what_it_records_and_reaches_65_percent(camvid_val):
    report = evaluate(Segmenter(default_model_path()), "val", progress=False)
    recorded = read_checkpoint(default_model_path())["metrics"]
    assert report.frames == 101
    assert abs(report.miou - recorded["val_miou"]) < 1e-3
    assert report.miou >= 0.65  # issue 14's bar, one confusion matrix over val, void ignored
    for name, iou in recorded["val_per_class_iou"].items():
        assert abs(report.per_class_iou[name] - iou) < 1e-3


def test_lineage_walks_warm_starts_oldest_first(tmp_path):
    scratch = {"hardware": "cpu", "recipe": {"lr": 0.02}, "val_history": [[5, 0.2], [10, 0.3]]}
    tuned = {"hardware": "gpu", "recipe": {"lr": 0.01}, "val_history": [[4, 0.5]],
             "init": {"path": "a.pt", "metrics": {"val_miou": 0.3}, "provenance": scratch}}
    assert lineage(tuned) == [scratch, tuned]
    assert lineage({}) == []
    assert plot_lineage(tuned, tmp_path / "l.png").stat().st_size > 0


def test_shipped_default_lineage_is_complete():
    checkpoint = read_checkpoint(default_model_path())
    runs = lineage(checkpoint["provenance"])
    assert len(runs) == 3  # 80 + 60 + 250 CPU epochs, each warm-started from the last
    assert all(run["val_history"] and run["genotype_hash"] == "738e90861bbb" for run in runs)
    assert [run["epochs_run"] for run in runs] == [80, 60, 250]
    assert "random search" in checkpoint["genotype"]["provenance"]["source"]


def test_searched_model_lineage_is_complete():
    runs = lineage(read_checkpoint(resolve_model("lgcnet-camvid-searched"))["provenance"])
    assert len(runs) == 5  # 80 + 100 CPU epochs, then three H100 runs
    assert all(run["val_history"] and run["genotype_hash"] == "0ae83e9cc699" for run in runs)
    assert [run["epochs_run"] for run in runs] == [80, 100, 248, 269, 31]
