import json
import os
import subprocess
import sys
from itertools import pairwise
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from lgcnet_deploy.cli import main as cli_main
from lgcnet_deploy.model.checkpoint import CheckpointError, load_checkpoint, read_checkpoint
from lgcnet_deploy.model.genotype import Genotype, load_genotype
from lgcnet_deploy.model.network import LGCNet
from lgcnet_research.train.config import TrainConfig
from lgcnet_research.train.data import DeviceBatches, augment_batch, normalize, resize_label
from lgcnet_research.train.losses import OhemCrossEntropy
from lgcnet_research.train.trainer import (
    Trainer,
    at_input_size,
    main,
    parameter_groups,
    poly_lr,
    train,
    warmup_factor,
)

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "lgcnet_deploy" / "model" / "weights" / "lgcnet_camvid.pt"
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
    assert main([*common, "--stop-after", "2", "--lr", "0.01"]) == 0
    ckpt = read_checkpoint(out / "last.pt")
    history = ckpt["train_state"]["history"]
    assert [h["epoch"] for h in history] == [1, 2]
    assert 0.0 <= ckpt["metrics"]["val_miou"] <= 1.0
    assert (out / "best.pt").is_file() and (out / "curves.png").is_file()
    assert main([*common, "--resume"]) == 0  # continues at epoch 3, not 1
    last = read_checkpoint(out / "last.pt")
    history = last["train_state"]["history"]
    assert [h["epoch"] for h in history] == [1, 2, 3, 4]
    losses = [h["loss"] for h in history]  # 4 steps an epoch: noisy, but far below the start
    assert sum(losses[1:]) / 3 < losses[0]
    assert last["provenance"]["epochs_run"] == 4  # a lineage reads the run from its provenance
    assert last["provenance"]["val_history"] == [[h["epoch"], round(h["val_miou"], 4)]
                                                 for h in history if "val_miou" in h]
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
           "--standalone", "-m", "lgcnet_research.train", "--out", str(out), "--epochs", "1",
           "--device", "cpu", *TINY]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    ckpt = read_checkpoint(out / "last.pt")
    assert ckpt["provenance"]["world_size"] == 2
    assert ckpt["train_state"]["epoch"] == 1


# -- the GPU recipe's code paths (device-resident data, augmentation on the device, bf16,
# channels_last, time box), run here on the CPU ----------------------------------------------
class _Frames:
    """A DeviceCamVid stand-in: random uint8 frames and labels."""

    def __init__(self, n: int, h: int = 12, w: int = 16) -> None:
        g = torch.Generator().manual_seed(0)
        self.images = torch.randint(0, 256, (n, h, w, 3), dtype=torch.uint8, generator=g)
        self.labels = torch.randint(0, 11, (n, h, w), dtype=torch.uint8, generator=g)
        self.ignore = 11

    def __len__(self) -> int:
        return len(self.labels)


def test_device_augmentation_at_scale_one_is_the_frame_or_its_mirror():
    frames = _Frames(8)
    x, y = augment_batch(frames.images, frames.labels, (12, 16), (1.0, 1.0), 11,
                         torch.Generator().manual_seed(1))
    ref = torch.stack([normalize(img.numpy()) for img in frames.images])
    flipped = 0
    for i in range(8):
        if torch.allclose(x[i], ref[i], atol=1e-5):
            assert torch.equal(y[i], frames.labels[i].long())
        else:
            flipped += 1
            assert torch.allclose(x[i], ref[i].flip(-1), atol=1e-5)
            assert torch.equal(y[i], frames.labels[i].long().flip(-1))
    assert 0 < flipped < 8  # p = 0.5 each: both cases occur for this seed


def test_device_augmentation_downscale_pads_with_black_and_void(camvid_val):
    img, label = camvid_val[0]
    images, labels = torch.from_numpy(img)[None], torch.from_numpy(label)[None]
    for seed in range(4):  # scale 0.5 into a full-size crop: the frame sits top-left
        x, y = augment_batch(images, labels, (360, 480), (0.5, 0.5), 11,
                             torch.Generator().manual_seed(seed))
        mirrored = bool((y[0, :, :240] == 11).all())
        assert (y[0, 180:] == 11).all()  # below the half-size frame: void
        assert (y[0, :, 240:] == 11).all() or mirrored
        if not mirrored:  # compare with the CPU recipe's cv2 resize and black padding
            assert (y[0, :180, :240].numpy() == resize_label(label, (180, 240))).all()
            black = normalize(np.zeros((1, 1, 3), np.uint8))[:, 0, 0]
            assert torch.allclose(x[0, :, 300, 400], black, atol=1e-5)
            return
    pytest.fail("no unmirrored sample in 4 seeds")


@pytest.mark.parametrize("scale", [0.5, 0.75, 1.13, 1.4, 2.0])
def test_labels_stay_on_their_pixels_at_every_scale_on_cpu_and_device(scale):
    rng = np.random.default_rng(0)
    label = rng.integers(0, 11, (36, 48)).astype(np.uint8)  # every pixel its own draw
    h, w = max(1, round(36 * scale)), max(1, round(48 * scale))
    cpu = resize_label(label, (h, w))
    # centre-aligned: output pixel y holds the source pixel under its centre, (y + 0.5)/scale
    rows = np.floor((np.arange(h) + 0.5) * 36 / h).astype(int)
    cols = np.floor((np.arange(w) + 0.5) * 48 / w).astype(int)
    assert (cpu == label[rows][:, cols]).all()
    # the image is resized by cv2 INTER_LINEAR about the same centres: a step edge in the image
    # and in the label stay on the same column
    edge = np.zeros((36, 48), np.uint8)
    edge[:, 20:] = 1
    img = cv2.resize(edge * 200, (w, h), interpolation=cv2.INTER_LINEAR)
    assert ((img >= 100) == (resize_label(edge, (h, w)) == 1)).mean() > 0.99
    images = torch.zeros(1, 36, 48, 3, dtype=torch.uint8)
    for seed in range(4):  # the device path picks the very same pixels (or their mirror)
        _, y = augment_batch(images, torch.from_numpy(label)[None], (h, w), (scale, scale), 11,
                             torch.Generator().manual_seed(seed))
        assert (y[0].numpy() == cpu).all() or (y[0].numpy()[:, ::-1] == cpu).all()


def test_weight_decay_spares_batchnorm_and_biases():
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, bias=True), torch.nn.BatchNorm2d(4))
    decayed, spared = parameter_groups(net, 5e-4)
    assert decayed["weight_decay"] == 5e-4 and spared["weight_decay"] == 0.0
    assert [p.shape for p in decayed["params"]] == [net[0].weight.shape]
    assert {id(p) for p in spared["params"]} == {id(net[0].bias), id(net[1].weight),
                                                  id(net[1].bias)}


def test_warmup_ramps_the_lr_then_hands_over_to_poly(tmp_path, camvid_val):
    assert [warmup_factor(s, 4) for s in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    assert warmup_factor(0, 0) == 1.0
    cfg = TrainConfig(out=str(tmp_path), batch=2, crop=(64, 64), threads=1, limit=(8, 2),
                      epochs=4, warmup_epochs=1.0)
    trainer = Trainer(cfg)
    assert trainer.warmup_steps == len(trainer.loader) == 4
    lrs = [trainer._lr(s) for s in range(16)]
    assert lrs[0] == pytest.approx(cfg.lr * 0.25 * (1 - 0 / 16) ** 0.9)
    assert lrs[:4] == sorted(lrs[:4]) and lrs[4:] == sorted(lrs[4:], reverse=True)
    assert lrs[4] == pytest.approx(poly_lr(cfg.lr, 4, 16))


def test_finishing_epochs_train_on_full_frames(tmp_path, camvid_val):
    cfg = TrainConfig(out=str(tmp_path), batch=1, crop=(64, 64), threads=1, limit=(2, 1),
                      epochs=3, finish_epochs=1, finish_crop=(360, 480),
                      finish_scale_range=(1.0, 1.0), eval_every=3)
    trainer = Trainer(cfg)
    seen = []
    trainer.fit(on_epoch=lambda record: seen.append(tuple(trainer.dataset.crop)))
    assert seen == [(64, 64), (64, 64), (360, 480)]
    x, y = trainer.dataset[0]  # a finishing sample: the whole frame at scale 1
    assert x.shape[-2:] == y.shape == (360, 480)
    with pytest.raises(ValueError, match="finish_epochs"):
        Trainer(TrainConfig(out=str(tmp_path), epochs=2, finish_epochs=3, limit=(2, 1)))


def test_device_batches_shard_like_a_distributed_sampler():
    frames = _Frames(10, 4, 4)
    ranks = [DeviceBatches(frames, 2, (4, 4), shuffle=True, drop_last=True, rank=r,
                           world_size=2) for r in (0, 1)]
    assert [len(b) for b in ranks] == [2, 2]  # 5 frames a rank, 2 full batches
    for b in ranks:
        b.set_epoch(3)
    seen = torch.cat([i for b in ranks for i in [b._indices()]])
    assert len(set(seen.tolist())) == 10  # disjoint shards of one shuffled order
    val = DeviceBatches(frames, 4)
    assert [len(y) for _, y in val] == [4, 4, 2]  # every frame once, in order


def test_time_boxed_gpu_recipe_on_cpu_warm_starts_and_stops_in_time(tmp_path, camvid_val,
                                                                     fake_clock):
    import lgcnet_research.train.trainer as train_module

    fake_clock(train_module, 0.1)  # every reading of the trainer's clock: 0.1 s later
    out, ship = tmp_path / "run", tmp_path / "shipped.pt"
    genotype = Genotype.from_dict(read_checkpoint(SHIPPED)["genotype"]).save(tmp_path / "g.json")
    cfg = TrainConfig(out=str(out), genotype=str(genotype), init=str(SHIPPED), epochs=1000,
                      batch=2, crop=(64, 64), threads=1, limit=(4, 2), amp="bf16",
                      channels_last=True, device_data=True, eval_every_s=60.0, time_limit=4.0,
                      ship=str(ship))
    trainer = Trainer(cfg)
    result = trainer.fit()
    history = read_checkpoint(out / "last.pt")["train_state"]["history"]
    assert result["epochs"] == len(history) < 1000  # stopped by the clock, not the epochs
    assert "val_miou" in history[-1]  # the last epoch is always validated
    lrs = [h["lr"] for h in history]
    assert lrs[-1] < cfg.lr and all(a > b for a, b in pairwise(lrs))  # poly over time
    shipped = read_checkpoint(ship)
    init = shipped["provenance"]["init"]  # the warm start's history travels along
    assert init["path"] == str(SHIPPED.relative_to(ROOT))  # no machine's layout recorded
    assert init["provenance"] == read_checkpoint(SHIPPED)["provenance"]
    assert init["metrics"]["val_miou"] == read_checkpoint(SHIPPED)["metrics"]["val_miou"]
    assert shipped["provenance"]["recipe"]["device_data"] is True
    assert shipped["provenance"]["hardware"] and shipped["metrics"]["train_seconds"] > 0
    with pytest.raises(ValueError, match="cannot be resumed"):
        train(cfg, resume=True)


def test_validation_every_n_seconds(tmp_path, camvid_val, fake_clock):
    import lgcnet_research.train.trainer as train_module

    clock = fake_clock(train_module)
    cfg = TrainConfig(out=str(tmp_path), batch=2, crop=(64, 64), threads=1, limit=(2, 1),
                      device_data=True, eval_every_s=30.0, epochs=5)
    trainer = Trainer(cfg)
    record = {"epoch": 1, "loss": 1.0, "lr": 0.01, "seconds": 0.1}
    trainer.record_epoch(dict(record))  # started a moment ago: not due
    clock.now += 31  # half a minute later: due, and last.pt comes with it
    trainer.record_epoch({**record, "epoch": 2})
    assert ["val_miou" in h for h in trainer.history] == [False, True]
    assert read_checkpoint(tmp_path / "last.pt")["metrics"]["epoch"] == 2


@pytest.mark.torchvision
def test_peer_trains_with_the_same_recipe_and_warm_starts_from_its_checkpoint(tmp_path,
                                                                               camvid_val):
    from lgcnet_research.train.peer import PeerCheckpointError, load_peer, read_peer_checkpoint

    out = tmp_path / "peer"
    assert main(["--model", "lraspp_mbv3_large", "--out", str(out), "--epochs", "1",
                 "--device-data", "--amp", "bf16", "--channels-last", *TINY]) == 0
    best = read_peer_checkpoint(out / "best.pt")
    assert best["model"] == "lraspp_mbv3_large" and len(best["meta"]["classes"]) == 11
    assert best["provenance"]["model"] == "lraspp_mbv3_large"
    assert best["provenance"]["genotype_hash"] is None
    assert set(best["metrics"]["val_per_class_iou"]) >= {"road", "pole"}
    net, payload = load_peer(out / "best.pt")
    assert sum(p.numel() for p in net.parameters()) == 3_219_838  # torchvision's, 11 classes
    x = torch.zeros(1, 3, 64, 96)
    assert net(x).shape == (1, 11, 64, 96)
    with pytest.raises(CheckpointError, match="not an LGCNet checkpoint"):
        read_checkpoint(out / "best.pt")  # the SDK refuses it with a clear message
    cfg = TrainConfig(model="lraspp_mbv3_large", out=str(tmp_path / "warm"),
                      init=str(out / "best.pt"), epochs=1, batch=2, crop=(64, 64), threads=1,
                      limit=(2, 1))
    trainer = Trainer(cfg)
    first = next(iter(trainer.net.state_dict().values()))
    assert torch.equal(first.cpu(), next(iter(payload["state_dict"].values())))
    assert trainer.provenance["init"]["metrics"] == best["metrics"]
    with pytest.raises(PeerCheckpointError, match="not an LR-ASPP peer checkpoint"):
        Trainer(TrainConfig(model="lraspp_mbv3_large", out=str(tmp_path / "x"), init=str(SHIPPED),
                            limit=(2, 1), threads=1))


def test_peer_scratch_and_sanity_gpu_configs_are_one_recipe():
    import json

    from experiments.sanity import SanityConfig

    peer = TrainConfig.load(ROOT / "configs" / "train" / "peer_gpu.json").to_dict()
    sanity = SanityConfig.load(ROOT / "experiments" / "configs" / "sanity" / "camvid_gpu.json")
    recipe = json.loads(json.dumps(TrainConfig.from_dict(sanity.recipe).to_dict()))
    assert peer["init"] is None and recipe["init"] is None  # from scratch, both
    assert {k for k in peer if json.loads(json.dumps(peer))[k] != recipe[k]} == {"model", "out"}
    decided = json.loads(json.dumps(TrainConfig.load(ROOT / "configs" / "train"
                                                     / "decided_gpu.json").to_dict()))
    assert {k for k in decided if decided[k] != recipe[k]} == {"genotype", "out"}
    # the GPU check compares the genotype the committed CPU check did (same draw, same band)
    cpu = SanityConfig.load(ROOT / "experiments" / "configs" / "sanity" / "camvid_cpu.json")
    assert (ROOT / sanity.genotype).resolve() == (ROOT / cpu.genotype).resolve()
    assert load_genotype(ROOT / sanity.genotype).hash == "0ae83e9cc699"


def _one_hot_targets(label: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
    """Stand-in teacher logits: the label map as one-hot scores at a reduced resolution."""
    small = torch.from_numpy(resize_label(label, size).astype(np.int64))
    return (torch.nn.functional.one_hot(small.clamp(max=10), 11).permute(2, 0, 1) * 10.0).half()


def test_cached_targets_are_warped_with_the_crop_on_cpu_and_device(camvid_val):
    """A target that says what the label says must agree with the augmented label in every
    view: scale, crop, padding and flip are applied to both alike."""
    from lgcnet_research.train.data import CamVidTorch
    from lgcnet_research.train.folds import Frames

    frames = Frames("two", tuple((camvid_val, i) for i in range(2)))
    targets = [_one_hot_targets(frames[i][1], (180, 240)) for i in range(2)]
    data = CamVidTorch(frames, (256, 320), (0.5, 1.5), seed=3, targets=targets)
    for epoch in range(3):
        data.set_epoch(epoch)
        for i in range(2):
            _, y, soft = data[i]
            assert soft.shape == (11, 256, 320)
            labelled = (y != 11) & (y < 11)
            assert (soft.argmax(0)[labelled] == y[labelled]).float().mean() > 0.95
    images = torch.stack([torch.from_numpy(frames[i][0]) for i in range(2)])
    labels = torch.stack([torch.from_numpy(frames[i][1]) for i in range(2)])
    for seed in range(3):
        _, y, soft = augment_batch(images, labels, (256, 320), (0.5, 1.5), 11,
                                   torch.Generator().manual_seed(seed),
                                   targets=torch.stack(targets))
        labelled = y != 11
        assert (soft.argmax(1)[labelled] == y[labelled]).float().mean() > 0.95


def _tiny_teacher(path: Path, provenance: dict | None = None, metrics: dict | None = None,
                  name: str = "effnet_lite0_seg", exposure_target: float | None = None) -> Path:
    """An untrained teacher checkpoint (no ImageNet download), seeded: the same every time."""
    from dataclasses import replace

    from lgcnet_research.train.peer import peer_meta, research_net, save_peer_checkpoint

    torch.manual_seed(0)
    meta = replace(peer_meta(name=name), exposure_target=exposure_target)
    return save_peer_checkpoint(path, research_net(name, 11, from_imagenet=False), meta,
                                provenance=provenance or {}, metrics=metrics or {})


def test_teacher_targets_are_cached_once_and_distilled_from(tmp_path, camvid_val):
    from lgcnet_deploy.core.data import CamVid
    from lgcnet_research.train.folds import Frames
    from lgcnet_research.train.targets import TargetsError, cache_targets, load_targets

    teacher = _tiny_teacher(tmp_path / "teacher.pt")
    frames = Frames("two", tuple((camvid_val, i) for i in range(2)))
    out = cache_targets(teacher, frames, tmp_path / "targets", size=(45, 60), scales=(1.0,),
                        progress=False)
    targets, manifest = load_targets(out, frames.images)
    assert [t.shape for t in targets] == [(11, 45, 60)] * 2 and targets[0].dtype == torch.float16
    assert manifest["scales"] == [1.0] and manifest["flip"] is True
    assert manifest["exposure_target"] is None
    with pytest.raises(TargetsError, match="another teacher or views"):
        cache_targets(teacher, frames, out, size=(45, 60), scales=(0.5,), progress=False)
    more = Frames("three", tuple((camvid_val, i) for i in range(3)))
    with pytest.raises(TargetsError, match="lacks the teacher's targets of 1 of 3"):
        load_targets(out, more.images)
    # a run distils from the cache of its training frames (here CamVid train's first two)
    train = CamVid("train")
    cache_targets(teacher, Frames("train2", ((train, 0), (train, 1))), out, size=(45, 60),
                  scales=(1.0,), progress=False)
    cfg = TrainConfig(out=str(tmp_path / "run"), batch=2, crop=(64, 64), threads=1,
                      limit=(2, 1), epochs=1, teacher_targets=str(out))
    trainer = Trainer(cfg)
    assert trainer.teacher is None and trainer.provenance["teacher"]["teacher_digest"]
    assert torch.isfinite(torch.tensor(trainer.train_epoch(0)["loss"]))


def test_a_students_lineage_reaches_the_teacher_behind_its_cached_targets(tmp_path, camvid_val):
    """The targets' manifest holds the teacher's model and provenance (here a Lite2 teacher's),
    so a fold A student distilled from a teacher that saw every drive is refused by fold
    evaluation and its lineage names that teacher; a folder cached before manifests held them
    still resumes (only the teacher and views must match)."""
    from lgcnet_deploy.cli.commands.info import _lineage
    from lgcnet_research.train.fold_eval import check_unseen
    from lgcnet_research.train.folds import FoldError, Frames, fold_frames
    from lgcnet_research.train.targets import MANIFEST, cache_targets

    record = {"recipe": {"fold": "all"}, "data": "CamVid all (468 frames)"}
    teacher = _tiny_teacher(tmp_path / "teacher.pt", record, {"val_miou": 0.5},
                            name="effnet_lite2_seg")
    train, _ = fold_frames("A")
    frames, out = Frames(train.name, train.refs[:2]), tmp_path / "targets"
    cache_targets(teacher, Frames(train.name, train.refs[:1]), out, size=(45, 60),
                  scales=(1.0,), flip=False, progress=False)
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["provenance"] == record and manifest["metrics"] == {"val_miou": 0.5}
    assert manifest["model"] == "effnet_lite2_seg"
    older = {k: v for k, v in manifest.items() if k not in ("model", "provenance", "metrics")}
    (out / MANIFEST).write_text(json.dumps(older))
    cache_targets(teacher, frames, out, size=(45, 60), scales=(1.0,), flip=False,
                  progress=False)
    assert json.loads((out / MANIFEST).read_text()) == manifest
    cfg = TrainConfig(out=str(tmp_path / "run"), fold="A", batch=2, crop=(64, 64), threads=1,
                      limit=(2, 1), epochs=1, teacher_targets=str(out))
    provenance = Trainer(cfg).provenance
    assert provenance["data"] == "CamVid fold A train (2 frames)"
    assert provenance["teacher"]["provenance"] == record
    assert "distilled pixel-wise from the cached logits of effnet_lite2_seg" in _lineage(provenance)
    with pytest.raises(FoldError, match="or teacher it learnt from"):
        check_unseen("A", provenance, tmp_path / "run" / "last.pt")


def test_a_student_brightens_its_frames_as_its_teachers_targets_did(tmp_path, camvid_val):
    """Targets of a teacher that saw frames brightened to 0.45 teach only a student that
    brightens them so too; a manifest from before it said so is refused until re-cached, which
    keeps the frames and rewrites the manifest."""
    from lgcnet_research.train.folds import Frames
    from lgcnet_research.train.targets import MANIFEST, TargetsError, cache_targets, load_targets

    teacher = _tiny_teacher(tmp_path / "teacher.pt", exposure_target=0.45)
    frames = Frames("one", ((camvid_val, 0),))
    out = cache_targets(teacher, frames, tmp_path / "targets", size=(45, 60), scales=(1.0,),
                        flip=False, progress=False)
    assert load_targets(out, frames.images, 0.45)[1]["exposure_target"] == 0.45
    for student in (None, 0.4):
        with pytest.raises(TargetsError, match=f"exposure target 0.45; this run uses {student}"):
            load_targets(out, frames.images, student)
    manifest = json.loads((out / MANIFEST).read_text())
    (out / MANIFEST).write_text(json.dumps({k: v for k, v in manifest.items()
                                            if k != "exposure_target"}))
    with pytest.raises(TargetsError, match="does not say how the teacher's frames were"):
        load_targets(out, frames.images, 0.45)
    frame_file = out / f"{Path(frames.images[0]).stem}.npy"
    cached = frame_file.stat().st_mtime_ns
    cache_targets(teacher, frames, out, size=(45, 60), scales=(1.0,), flip=False,
                  progress=False)
    assert json.loads((out / MANIFEST).read_text()) == manifest
    assert frame_file.stat().st_mtime_ns == cached


def test_channel_wise_kl_compares_where_each_class_lies():
    """Shu et al.'s KL: per class channel a softmax over the positions, so a constant added to
    a channel changes nothing, and the student's gradient sums to zero over each map."""
    from lgcnet_research.train.losses import channel_kl

    torch.manual_seed(0)
    student, teacher = torch.randn(2, 3, 4, 5), torch.randn(2, 3, 4, 5)
    every = torch.ones(2, 4, 5, dtype=torch.bool)
    assert channel_kl(student, student.clone(), every, 2.0).item() == pytest.approx(0, abs=1e-6)
    kl = channel_kl(student, teacher, every, 2.0).item()
    assert kl > 0
    shift = torch.randn(2, 3, 1, 1) * 5  # per sample and channel
    assert channel_kl(student + shift, teacher, every, 2.0).item() == pytest.approx(kl, rel=1e-5)
    assert channel_kl(student, teacher - shift, every, 2.0).item() == pytest.approx(kl, rel=1e-5)
    # what lies outside the labelled positions (a crop's padding) does not count at all
    padded = every.clone()
    padded[:, :, -2:] = False
    cut = channel_kl(student[..., :-2], teacher[..., :-2], every[..., :-2], 2.0).item()
    far = teacher.clone()
    far[..., -2:] = 50.0
    assert channel_kl(student, far, padded, 2.0).item() == pytest.approx(cut, rel=1e-5)
    # by hand: channel 0 uniform over two positions against the teacher's (3/4, 1/4) at T = 2,
    # channel 1 alike in both: the mean over the 2 channels is half of channel 0's KL
    one = torch.tensor([[[[0.0, 0.0]], [[1.0, 5.0]]]])
    other = torch.tensor([[[[2 * np.log(3.0), 0.0]], [[1.0, 5.0]]]])
    by_hand = (0.75 * np.log(1.5) + 0.25 * np.log(0.5)) / 2
    both = torch.ones(1, 1, 2, dtype=torch.bool)
    assert channel_kl(one, other, both, 2.0).item() == pytest.approx(by_hand, rel=1e-5)


def test_channel_distillation_loss_weighs_and_teaches_the_student_only():
    from lgcnet_research.train.losses import DistillationLoss

    hard = OhemCrossEntropy(11, 0.7, 1)
    target = torch.tensor([[[0, 1], [11, 1]]])  # one void pixel: left out of the softmax
    one = torch.stack([torch.zeros(2, 2), torch.ones(2, 2)])[None]  # uniform over space
    other = torch.tensor([[2 * np.log(3.0), 0.0], [0.0, 0.0]]).expand(1, 2, 2, 2)
    p = torch.tensor([0.6, 0.2, 0.2])  # the teacher's softmax over the 3 labelled, T = 2
    by_hand = float((p * torch.log(p / (1 / 3))).sum())  # each channel's KL against uniform
    loss = DistillationLoss(hard, 11, alpha=1.0, temperature=2.0, kind="channel")
    assert loss(one, target, other).item() == pytest.approx(4 * by_hand, rel=1e-5)  # × T²
    student = torch.randn(2, 11, 6, 8, requires_grad=True)
    teacher = torch.randn(2, 11, 6, 8, requires_grad=True)
    target = torch.randint(0, 12, (2, 6, 8))
    DistillationLoss(hard, 11, 0.5, 4.0, "channel")(student, target, teacher).backward()
    assert teacher.grad is None and student.grad.abs().sum() > 0
    soft = torch.randn(2, 11, 6, 8, requires_grad=True)
    DistillationLoss(hard, 11, 1.0, 4.0, "channel")(soft, target, teacher).backward()
    assert soft.grad.sum((2, 3)).abs().max() < 1e-6  # a softmax over space: sums to zero
    assert (soft.grad.permute(1, 0, 2, 3)[:, target == 11] == 0).all()  # void: no pull


def test_a_bad_distillation_kind_or_shape_is_refused():
    from lgcnet_research.train.losses import DistillationLoss

    with pytest.raises(ValueError, match="distill_kind='spatial': choose one of pixel, channel"):
        TrainConfig.from_dict({"distill_kind": "spatial"})
    with pytest.raises(ValueError, match="choose one of pixel, channel"):
        TrainConfig.load(ROOT / "configs/train/fold_a_trunk.json", distill_kind="pixels")
    with pytest.raises(ValueError, match="distillation kind 'cwd': choose one of pixel, channel"):
        DistillationLoss(OhemCrossEntropy(11), 11, kind="cwd")
    with pytest.raises(ValueError, match=r"teacher logits \(1, 11, 4, 4\) and student"):
        DistillationLoss(OhemCrossEntropy(11), 11, kind="channel")(
            torch.zeros(1, 11, 8, 8), torch.zeros(1, 8, 8, dtype=torch.long),
            torch.zeros(1, 11, 4, 4))
    assert TrainConfig().distill_kind == "pixel"  # what every earlier recipe distilled with


def test_a_run_distils_channel_wise_from_cached_targets_and_records_it(tmp_path, camvid_val):
    from lgcnet_deploy.core.data import CamVid
    from lgcnet_research.train.folds import Frames
    from lgcnet_research.train.targets import cache_targets

    train = CamVid("train")
    out = cache_targets(_tiny_teacher(tmp_path / "teacher.pt"),
                        Frames("train2", ((train, 0), (train, 1))), tmp_path / "targets",
                        size=(45, 60), scales=(1.0,), flip=False, progress=False)
    cfg = TrainConfig(out=str(tmp_path / "run"), batch=2, crop=(64, 64), threads=1,
                      limit=(2, 1), epochs=1, eval_every=1, teacher_targets=str(out),
                      distill=0.75, distill_temperature=4.0, distill_kind="channel")
    trainer = Trainer(cfg)
    assert trainer.criterion.kind == "channel" and trainer.criterion.temperature == 4.0
    trainer.fit()
    saved = read_checkpoint(tmp_path / "run" / "last.pt")
    assert np.isfinite(saved["train_state"]["history"][-1]["loss"])
    recipe = saved["provenance"]["recipe"]
    assert (recipe["distill_kind"], recipe["distill"], recipe["distill_temperature"]) == (
        "channel", 0.75, 4.0)


@pytest.mark.parametrize("device_data", [False, True])
def test_provenance_names_the_fold_the_run_trained_on(tmp_path, camvid_val, device_data):
    cfg = TrainConfig(out=str(tmp_path / "run"), fold="all", batch=2, crop=(64, 64), threads=1,
                      limit=(2, 1), device_data=device_data)
    assert Trainer(cfg).provenance["data"] == "CamVid all (2 frames)"


def test_auxiliary_heads_train_beside_the_net_and_never_ship(tmp_path, camvid_val):
    from lgcnet_research.train.losses import DeeplySupervised

    net = LGCNet(load_genotype("lite0_s16_lean"), 11)
    out = DeeplySupervised(net, 11)(torch.randn(1, 3, 64, 96))
    assert out.logits.shape == (1, 11, 64, 96) and out.detail is None
    assert [a.shape[-2:] for a in out.aux] == [(8, 12), (4, 6)]  # strides 8 and 16
    detailed = DeeplySupervised(net, 11, aux=False, detail=True)(torch.randn(1, 3, 64, 96))
    assert detailed.aux == [] and detailed.detail.shape == (1, 1, 16, 24)  # stride 4
    run = tmp_path / "run"
    cfg = TrainConfig(out=str(run), batch=2, crop=(64, 64), threads=1, limit=(2, 1), epochs=2,
                      stop_after=1, aux_weight=0.4, detail_weight=1.0, eval_every=1)
    Trainer(cfg).fit()
    saved = read_checkpoint(run / "last.pt")
    assert not any(k.startswith(("heads.", "detail.")) for k in saved["state_dict"])
    resumed = Trainer(cfg, resume=True)
    for kept, head in (("aux_heads", resumed.trained.heads),
                       ("detail_head", resumed.trained.detail)):
        stored = saved["train_state"][kept]
        assert stored and all(torch.equal(head.state_dict()[k], v) for k, v in stored.items())
    with pytest.raises(ValueError, match="no fusion cell"):
        DeeplySupervised(torch.nn.Conv2d(3, 3, 1), 11)


def test_detail_target_marks_both_sides_of_a_boundary_and_leaves_void_out():
    from lgcnet_research.train.losses import DetailLoss, detail_target

    labels = torch.zeros(1, 6, 8, dtype=torch.long)
    labels[:, :, 4:] = 3  # a vertical boundary between columns 3 and 4
    labels[:, 0, 0] = 255  # one void pixel in a corner
    target, valid = detail_target(labels, 255)
    assert target[0, 0, 2:].sum(0).tolist() == [0, 0, 0, 4, 4, 0, 0, 0]  # columns 3 and 4
    assert valid[0, 0, :2, :2].sum() == 0 and valid.sum() == 6 * 8 - 4  # void's 3x3 left out
    loss = DetailLoss(255)
    right, wrong = (20 * (2 * t - 1) for t in (target, 1 - target))
    assert loss(right, labels) < 0.01 < 1.0 < loss(wrong, labels)
    assert torch.isfinite(loss(right, torch.full_like(labels, 255)))  # all void: no NaN


def _lovasz_by_the_paper(logits, target, ignore_index):
    """Berman et al.'s reference form: per present class, void pixels removed, one sort each."""
    probs = logits.softmax(1).movedim(1, -1).reshape(-1, logits.shape[1])
    labels = target.reshape(-1)
    probs, labels = probs[labels != ignore_index], labels[labels != ignore_index]
    losses = []
    for c in labels.unique().tolist():
        fg = (labels == c).float()
        errors, order = (fg - probs[:, c]).abs().sort(descending=True)
        gt = fg[order]
        jaccard = 1 - (gt.sum() - gt.cumsum(0)) / (gt.sum() + (1 - gt).cumsum(0))
        jaccard[1:] = jaccard[1:] - jaccard[:-1].clone()
        losses.append(errors @ jaccard)
    return torch.stack(losses).mean()


def test_lovasz_softmax_matches_the_paper_and_leaves_void_out():
    from lgcnet_research.train.losses import lovasz_softmax

    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 5, 6, 7, generator=gen, requires_grad=True)
    target = torch.randint(0, 4, (2, 6, 7), generator=gen)  # class 4 absent: not averaged
    target[0, :2] = 255
    loss = lovasz_softmax(logits, target, 255, stride=1)
    assert torch.allclose(loss, _lovasz_by_the_paper(logits, target, 255), atol=1e-6)
    on_grid = lovasz_softmax(logits, target, 255, stride=2)
    assert torch.allclose(on_grid, _lovasz_by_the_paper(logits[..., ::2, ::2],
                                                        target[..., ::2, ::2], 255), atol=1e-6)
    loss.backward()
    assert torch.isfinite(logits.grad).all() and logits.grad[0, :, :2].abs().sum() == 0
    right = 30 * torch.nn.functional.one_hot(target.clamp(max=4), 5).movedim(-1, 1).float()
    assert lovasz_softmax(right, target, 255, stride=1) < 1e-6 < 0.5 < lovasz_softmax(
        -right, target, 255, stride=1)
    assert lovasz_softmax(right, torch.full_like(target, 255), 255) == 0  # all void: no NaN


def test_at_input_size_runs_the_net_at_the_models_size_and_scores_at_the_frames():
    seen = []
    net = torch.nn.Conv2d(3, 11, 1)
    net.register_forward_pre_hook(lambda module, args: seen.append(tuple(args[0].shape[-2:])))
    x = torch.rand(2, 3, 24, 32)
    assert torch.equal(at_input_size(net, (24, 32))(x), net(x))  # the same size: net itself
    assert at_input_size(net, (48, 64))(x).shape == (2, 11, 24, 32)
    assert seen == [(24, 32), (24, 32), (48, 64)]


def test_lovasz_weight_joins_the_loss_and_the_recipe(tmp_path, camvid_val):
    cfg = TrainConfig(out=str(tmp_path / "run"), batch=2, crop=(64, 64), threads=1,
                      limit=(2, 1), epochs=1, lovasz_weight=0.5, eval_every=1)
    trainer = Trainer(cfg)
    trainer.fit()
    saved = read_checkpoint(tmp_path / "run" / "last.pt")
    assert np.isfinite(saved["train_state"]["history"][-1]["loss"])
    assert saved["provenance"]["recipe"]["lovasz_weight"] == 0.5


_FAULTS = """
import resource, sys, torch
from lgcnet_research.base.machine import keep_freed_memory
applied = keep_freed_memory() if sys.argv[1] == "keep" else None
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(32):  # a training step's pattern: the same large tensor made, used, freed
    x = torch.ones(16 * 2**20)  # 64 MB, every page touched
    del x
print(applied, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc is Linux's")
def test_freed_tensors_stay_in_the_heap_instead_of_faulting_in_again():
    """Page faults, not time: with the heap kept, 32 rounds of a 64 MB tensor fault its pages
    in a few times at most (2 to 6 here); without, every round maps and faults them in afresh."""
    def faults(mode: str) -> tuple[str, int]:
        out = subprocess.run([sys.executable, "-c", _FAULTS, mode], capture_output=True,
                             text=True, check=True).stdout.split()
        return out[0], int(out[1])

    (applied, kept), (_, fresh) = faults("keep"), faults("fresh")
    assert applied == "True" and fresh > 30 * 16384 and kept < fresh / 3


def _pole_by_the_road() -> np.ndarray:
    """A 360x480 label: road, a 6x6 pole, a void band along the top."""
    label = np.full((360, 480), 3, np.uint8)
    label[100:106, 300:306] = 2
    label[:10] = 11
    return label


def test_rare_crops_hold_the_rare_class_on_cpu_and_device(camvid_val):
    from lgcnet_research.train.data import CamVidTorch, RareCrop
    from lgcnet_research.train.folds import Frames, class_frequencies

    label = _pole_by_the_road()
    rare = RareCrop(1.0, class_frequencies([label], 11, 11))
    data = CamVidTorch(Frames("one", ((camvid_val, 0),)), (64, 64), (1.0, 1.0))

    def cpu_hits(rare_crop: RareCrop | None) -> list[int]:
        data.rare_crop, rows = rare_crop, []
        for seed in range(40):
            y, x = data._crop_corner(label, np.random.default_rng(seed))
            if (label[y:y + 64, x:x + 64] == 2).any():
                rows.append(100 - y)
        return rows

    placed = cpu_hits(rare)
    assert len(placed) >= 38 and len(set(placed)) > 10  # the pole, anywhere in the crop
    assert len(cpu_hits(None)) <= 8  # uniform crops find it ~3 % of the time
    images = torch.zeros(40, 360, 480, 3, dtype=torch.uint8)
    labels = torch.from_numpy(label)[None].repeat(40, 1, 1)
    for chance, low, high in ((1.0, 38, 40), (0.5, 12, 30)):
        _, y = augment_batch(images, labels, (64, 64), (1.0, 1.0), 11,
                             torch.Generator().manual_seed(0),
                             rare_crop=RareCrop(chance, rare.share))
        assert low <= int((y == 2).flatten(1).any(1).sum()) <= high


def test_crops_without_rare_crop_draw_as_before_and_bad_chances_are_refused(camvid_val):
    from lgcnet_research.train.data import CamVidTorch, RareCrop, rare_pixel
    from lgcnet_research.train.folds import Frames

    data = CamVidTorch(Frames("one", ((camvid_val, 0),)), (64, 96), (1.0, 1.0))
    label = _pole_by_the_road()
    for seed in range(5):  # a run without rare crops keeps the crops (and draws) it had
        a, b = np.random.default_rng(seed), np.random.default_rng(seed)
        assert data._crop_corner(label, a) == (b.integers(0, 297), b.integers(0, 385))
        assert a.random() == b.random()
    share = np.full(11, 1 / 11)
    assert rare_pixel(np.full((4, 4), 11, np.uint8), share, 11, np.random.default_rng()) is None
    assert rare_pixel(label, share, 11, np.random.default_rng(0))[0] >= 10  # never the void
    with pytest.raises(ValueError, match=r"rare_crop is a chance in 0\.\.1"):
        RareCrop(1.5, share)


@pytest.mark.parametrize("device_data", [False, True])
def test_rare_crop_trains_and_joins_the_recipe(tmp_path, camvid_val, device_data):
    cfg = TrainConfig(out=str(tmp_path / "run"), batch=2, crop=(64, 64), threads=1,
                      limit=(2, 1), epochs=1, rare_crop=0.5, eval_every=1,
                      device_data=device_data)
    trainer = Trainer(cfg)
    assert trainer._augmenter().rare_crop.chance == 0.5
    assert trainer.pixel_share.sum() == pytest.approx(1.0)
    trainer.fit()
    saved = read_checkpoint(tmp_path / "run" / "last.pt")
    assert np.isfinite(saved["train_state"]["history"][-1]["loss"])
    assert saved["provenance"]["recipe"]["rare_crop"] == 0.5
