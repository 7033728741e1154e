import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lgcnet_deploy.cli import main as cli_main
from lgcnet_deploy.model.checkpoint import CheckpointError, load_checkpoint, read_checkpoint
from lgcnet_deploy.model.genotype import Genotype
from lgcnet_research.losses import OhemCrossEntropy
from lgcnet_research.train import main, poly_lr

ROOT = Path(__file__).resolve().parent.parent
TINY = ["--crop", "64", "64", "--batch", "2", "--threads", "1", "--eval-every", "1",
        "--limit", "8", "2"]


def test_ohem_keeps_hard_pixels_and_ignores_void():
    logits = torch.zeros(1, 3, 1, 4)
    logits[0, 0] = torch.tensor([10.0, 10.0, -10.0, 10.0])  # class 0 confident everywhere
    target = torch.tensor([[[0, 0, 1, 2]]])  # pixel 3 is void (ignore_index=2)
    loss = OhemCrossEntropy(ignore_index=2, thresh=0.7, min_kept=1)(logits, target)
    # only pixel 2 is hard (true class 1, p ~ 0.5 after logits -10/0/0) and counts
    expected = torch.nn.functional.cross_entropy(logits[..., 2:3], target[..., 2:3])
    assert loss.item() == pytest.approx(expected.item())
    # min_kept forces the hardest pixels in even when they are easy
    easy = OhemCrossEntropy(ignore_index=2, thresh=0.01, min_kept=3)(logits, target)
    valid = torch.nn.functional.cross_entropy(logits, target, ignore_index=2, reduction="none")
    assert easy.item() == pytest.approx(valid.flatten()[:3].mean().item())
    all_void = torch.full((1, 1, 4), 2)
    assert OhemCrossEntropy(2)(logits, all_void).item() == 0.0


def test_poly_lr():
    assert poly_lr(0.01, 0, 100) == 0.01 and poly_lr(0.01, 100, 100) == 0.0
    assert 0 < poly_lr(0.01, 50, 100) < 0.01


def test_training_lowers_loss_then_resumes(tmp_path, camvid_val):
    out = tmp_path / "run"
    common = ["--out", str(out), "--epochs", "4", *TINY]
    assert main([*common, "--stop-after", "2", "--lr", "0.05"]) == 0
    ckpt = read_checkpoint(out / "last.pt")
    history = ckpt["train_state"]["history"]
    assert [h["epoch"] for h in history] == [1, 2]
    assert history[1]["loss"] < history[0]["loss"]
    assert 0.0 <= ckpt["metrics"]["val_miou"] <= 1.0
    assert (out / "best.pt").is_file() and (out / "curves.png").is_file()
    assert main([*common, "--resume"]) == 0  # continues at epoch 3, not 1
    history = read_checkpoint(out / "last.pt")["train_state"]["history"]
    assert [h["epoch"] for h in history] == [1, 2, 3, 4]
    best = read_checkpoint(out / "best.pt")
    assert set(best["metrics"]["val_per_class_iou"]) >= {"road", "car"}
    assert best["provenance"]["genotype_hash"] == best["meta"]["genotype_hash"]


def test_checkpoint_for_another_genotype_or_class_count_fails(tmp_path, genotype, camvid_val):
    out = tmp_path / "run"
    assert cli_main(["train", "--out", str(out), "--epochs", "1", *TINY]) == 0  # `lgcnet train`
    d = genotype.to_dict()
    d["cells"][2]["ops"][0] = "conv_3x3" if d["cells"][2]["ops"][0] != "conv_3x3" else "none"
    with pytest.raises(CheckpointError, match="checkpoint is for genotype"):
        load_checkpoint(out / "last.pt", genotype=Genotype.from_dict(d))
    with pytest.raises(CheckpointError, match="11 classes, expected 19"):
        load_checkpoint(out / "last.pt", num_classes=19)


@pytest.mark.slow
def test_ddp_two_cpu_processes(tmp_path, camvid_val):
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
           "--master_port=29517", "-m", "lgcnet_research.train", "--out", str(out), "--epochs", "1",
           "--device", "cpu", *TINY]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    ckpt = read_checkpoint(out / "last.pt")
    assert ckpt["provenance"]["world_size"] == 2
    assert ckpt["train_state"]["epoch"] == 1
