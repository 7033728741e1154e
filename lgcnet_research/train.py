"""Train a derived LGCNet on CamVid (paper §IV-A recipe), resumable, DDP-ready.

    python -m lgcnet_research.train --genotype default --out runs/train_default
    torchrun --nproc_per_node=2 -m lgcnet_research.train ...        # DDP (gloo on CPU, nccl on GPU)

SGD + poly LR, OHEM cross-entropy (void ignored), random flip / scale 0.5-2.0 / crop; val
mIoU every `--eval-every` epochs; `last.pt` every epoch and `best.pt` on a new best (both
lgcnet checkpoints); `--ship` copies each new best to the model `make demo` uses.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, Subset
from tqdm import tqdm

from lgcnet_deploy.core.classes import CAMVID
from lgcnet_deploy.core.metadata import ModelMeta
from lgcnet_deploy.core.metrics import ConfusionMatrix
from lgcnet_deploy.measure.plots import plot_curves
from lgcnet_deploy.model.checkpoint import load_checkpoint, save_checkpoint
from lgcnet_deploy.model.genotype import load_genotype
from lgcnet_deploy.model.network import LGCNet
from lgcnet_research import distributed as dist
from lgcnet_research.data import CamVidTorch
from lgcnet_research.losses import OhemCrossEntropy
from lgcnet_research.train_config import add_arguments


def git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def poly_lr(base: float, step: int, total: int, power: float = 0.9) -> float:
    return base * (1 - min(step, total) / total) ** power


@torch.no_grad()
def validate(net: torch.nn.Module, loader: DataLoader, device: torch.device,
             forward: Callable[[torch.Tensor], torch.Tensor] | None = None) -> ConfusionMatrix:
    """Confusion matrix over the whole split (summed across DDP processes); `forward`
    replaces net(x) (the search evaluates its supernet as the derived architecture)."""
    net.eval()
    forward = forward or net
    cm = torch.zeros(CAMVID.num_classes ** 2, dtype=torch.int64)
    for x, y in loader:
        pred = forward(x.to(device)).argmax(1).cpu()
        keep = y != CAMVID.ignore_index
        cm += torch.bincount(y[keep] * CAMVID.num_classes + pred[keep],
                             minlength=CAMVID.num_classes ** 2)
    dist.all_reduce_sum_(cm)
    out = ConfusionMatrix(CAMVID.num_classes, CAMVID.ignore_index)
    out.matrix = cm.view(CAMVID.num_classes, CAMVID.num_classes).numpy()
    net.train()
    return out


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m lgcnet_research.train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    return add_arguments(p).parse_args(argv)


def run(args: argparse.Namespace) -> int:
    """Train with parsed options and print the outcome (the CLI entry point)."""
    result = train(args)
    print(f"done: best val mIoU {result['best_miou']:.4f} after {result['epochs']} epochs")
    return 0


def train(args: argparse.Namespace) -> dict:
    if args.threads:
        torch.set_num_threads(args.threads)
    info = dist.setup(args.device)
    torch.manual_seed(args.seed + info.rank)
    genotype = load_genotype(args.genotype)
    net = LGCNet(genotype, CAMVID.num_classes).to(info.device)
    meta = ModelMeta.for_dataset(CAMVID, input_size=(360, 480))
    opt = torch.optim.SGD(net.parameters(), lr=args.lr, momentum=0.9, weight_decay=args.wd)
    start_epoch, best, history = 0, -1.0, []
    last = args.out / "last.pt"
    if args.resume and last.is_file():
        loaded, _, payload = load_checkpoint(last, genotype=genotype,
                                             num_classes=CAMVID.num_classes)
        net.load_state_dict(loaded.state_dict())
        state = payload["train_state"]
        opt.load_state_dict(state["optimizer"])
        start_epoch, best, history = state["epoch"], state["best_miou"], state["history"]
    model = DistributedDataParallel(net) if info.enabled else net

    train_set = CamVidTorch("train", crop=tuple(args.crop), root=args.data, seed=args.seed)
    val_set = CamVidTorch("val", crop=None, train=False, root=args.data)
    if args.limit:
        train_set = Subset(train_set, range(args.limit[0]))
        val_set = Subset(val_set, range(args.limit[1]))
    sampler = DistributedSampler(train_set, shuffle=True, seed=args.seed) if info.enabled else None
    loader = DataLoader(train_set, args.batch, shuffle=sampler is None, sampler=sampler,
                        num_workers=args.workers, drop_last=True)
    val_sampler = DistributedSampler(val_set, shuffle=False) if info.enabled else None
    val_loader = DataLoader(val_set, 4, sampler=val_sampler, num_workers=args.workers)
    criterion = OhemCrossEntropy(CAMVID.ignore_index, args.ohem_thresh, args.ohem_min_kept)
    total_steps = args.epochs * len(loader)
    end_epoch = args.epochs if args.stop_after is None else min(
        args.epochs, start_epoch + args.stop_after)
    recipe = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()
              if not callable(v)}  # the CLI adds its handler `func`: not weights_only-safe
    provenance = {"recipe": recipe, "genotype_hash": genotype.hash, "git": git_commit(),
                  "world_size": info.world_size, "data": f"CamVid train ({len(train_set)} frames)",
                  "pretraining": "none (no ImageNet weights available)"}
    args.out.mkdir(parents=True, exist_ok=True)

    for epoch in range(start_epoch, end_epoch):
        if sampler is not None:
            sampler.set_epoch(epoch)
        model.train()
        t0, losses = time.time(), []
        bar = tqdm(loader, desc=f"epoch {epoch + 1}/{args.epochs}", disable=not info.is_main,
                   leave=False, mininterval=10)
        for i, (x, y) in enumerate(bar):
            lr = poly_lr(args.lr, epoch * len(loader) + i, total_steps)
            for group in opt.param_groups:
                group["lr"] = lr
            loss = criterion(model(x.to(info.device)), y.to(info.device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(loss.item())
            bar.set_postfix(loss=f"{loss.item():.3f}", lr=f"{lr:.4f}")
        record = {"epoch": epoch + 1, "loss": float(dist.all_reduce_mean(
            torch.tensor(sum(losses) / len(losses)))), "lr": lr, "seconds": time.time() - t0}
        if (epoch + 1) % args.eval_every == 0 or epoch + 1 == end_epoch:
            cm = validate(net, val_loader, info.device)
            record.update(val_miou=cm.miou(), val_iou=[float(v) for v in cm.iou()])
        history.append(record)
        if info.is_main:
            print(json.dumps(record), flush=True)
            improved = record.get("val_miou", -1.0) > best
            best = max(best, record.get("val_miou", -1.0))
            metrics = {"val_miou": best, "epoch": epoch + 1}
            state = {"optimizer": opt.state_dict(), "epoch": epoch + 1, "best_miou": best,
                     "history": history}
            save_checkpoint(last, net, meta, provenance, metrics, state)
            if improved:
                iou = dict(zip(CAMVID.classes, record["val_iou"]))
                save_checkpoint(args.out / "best.pt", net, meta, provenance,
                                {**metrics, "val_per_class_iou": iou})
                if args.ship:  # atomic: readers of the shipped model never see half a file
                    shutil.copyfile(args.out / "best.pt", args.ship.with_suffix(".tmp"))
                    args.ship.with_suffix(".tmp").replace(args.ship)
            plot_curves(history, args.out / "curves.png")
        dist.barrier()
    dist.cleanup()
    return {"best_miou": best, "epochs": end_epoch}


def main(argv: list[str] | None = None) -> int:
    return run(parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
