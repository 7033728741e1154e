"""Shipped files name nothing of the machines that made them: no absolute path and no working
session in any shipped checkpoint's provenance, metadata or genotype (whichever model ships as
the default), and the tool that rewrites them keeps the weights byte for byte."""

from __future__ import annotations

import json

import pytest
import torch

from experiments.scrub_provenance import (
    ABSOLUTE_PATH,
    path_rewriter,
    provenance_problems,
    scrub_checkpoint,
)
from lgcnet_deploy.model.checkpoint import read_checkpoint
from lgcnet_deploy.model.genotype import GENOTYPE_DIR
from lgcnet_deploy.model.shipped import WEIGHTS_DIR

SHIPPED = sorted(p.name for p in WEIGHTS_DIR.iterdir() if p.suffix in (".pt", ".onnx"))


def shipped_record(path) -> dict:
    """Everything a shipped model file says besides its weights."""
    if path.suffix == ".onnx":
        onnx = pytest.importorskip("onnx")
        model = onnx.load(str(path), load_external_data=False)
        return {p.key: p.value for p in model.metadata_props}
    return {k: v for k, v in read_checkpoint(path).items() if k != "state_dict"}


def test_every_shipped_model_file_is_checked():
    assert {"lgcnet_camvid.pt", "lgcnet_camvid_searched.pt",
            "lgcnet_camvid_handwritten.pt"} <= set(SHIPPED)


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_model_names_no_machine_path_and_no_session(name):
    record = shipped_record(WEIGHTS_DIR / name)
    assert record  # a checkpoint's format and provenance, an ONNX's metadata
    assert provenance_problems(record) == []


@pytest.mark.parametrize("name", sorted(p.name for p in GENOTYPE_DIR.glob("*.json")))
def test_shipped_genotype_names_no_machine_path_and_no_session(name):
    assert provenance_problems(json.loads((GENOTYPE_DIR / name).read_text())) == []


def test_problems_find_paths_and_sessions_but_not_relative_paths_or_urls():
    record = {"out": "/data/x/runs/a", "cmd": "--init /srv/bg/b/last.pt --out runs/c",
              "note": "resumed (2 sessions)", "url": "rtsp://host/live", "ok": "km/h, 1/2",
              "nested": [{"data": "results/luts/t.json"}], "ort": "InferenceSession"}
    assert provenance_problems(record) == ["/out: /data/x/runs/a", "/cmd: /srv/bg/b/last.pt",
                                           "/note: sessions"]


def test_rewriter_makes_paths_relative_to_the_repository_the_data_root_or_a_map(tmp_path):
    root, data = tmp_path / "repo", tmp_path / "camvid"
    fix = path_rewriter({"/srv/bg": "runs", "/scratch/sprint/train": ""}, root, (data,))
    assert fix(f"--out {root}/runs/a --data {data}") == "--out runs/a --data $LGCNET_CAMVID"
    assert fix("/srv/bg/decided/best.pt") == "runs/decided/best.pt"
    assert fix("/scratch/sprint/train/runs/warm") == "runs/warm"
    assert ABSOLUTE_PATH.findall(fix("/elsewhere/x")) == ["/elsewhere/x"]  # left to report


def test_scrub_checkpoint_rewrites_provenance_and_keeps_weights_byte_identical(tmp_path):
    weights = {"w": torch.randn(3, 4), "half": torch.randn(5).half(), "n": torch.tensor(7)}
    path = tmp_path / "m.pt"
    torch.save({"format": "x", "state_dict": weights,
                "provenance": {"out": "/srv/bg/run", "init": {"path": "/srv/bg/a/last.pt"}}}, path)
    assert scrub_checkpoint(path, path_rewriter({"/srv/bg": "runs"}, tmp_path)) == []
    after = torch.load(path, weights_only=True)
    assert after["provenance"] == {"out": "runs/run", "init": {"path": "runs/a/last.pt"}}
    for k, t in weights.items():
        assert after["state_dict"][k].dtype == t.dtype
        assert after["state_dict"][k].numpy().tobytes() == t.numpy().tobytes()


def test_scrub_checkpoint_leaves_a_file_it_cannot_clean_untouched(tmp_path):
    path = tmp_path / "m.pt"
    torch.save({"state_dict": {}, "provenance": {"out": "/srv/bg/run"}}, path)
    before = path.read_bytes()
    assert scrub_checkpoint(path, path_rewriter({}, tmp_path)) == ["/provenance/out: /srv/bg/run"]
    assert path.read_bytes() == before
