"""The search loop (§III, §IV-A): CE + β·log(LAT), α and weights in the same backward pass.

    python -m lgcnet_research.search --config configs/search/camvid_cpu.json --out runs/search
    torchrun --nproc_per_node=2 -m lgcnet_research.search --config ...  # DDP (gloo/nccl)
    python -m lgcnet_research.search ... --resume  # continue from OUT/search_state.pt

Writes OUT/genotype.json (argmax of the GGM-updated α, with provenance), OUT/search_log.jsonl
(CE, LAT, temperature, α entropy per cell, val mIoU of the derived architecture),
OUT/search_curves.png, and OUT/search_state.pt every `checkpoint_every` steps.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Iterator
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, Subset
from tqdm import tqdm

from lgcnet_deploy.core.classes import CAMVID
from lgcnet_deploy.core.metadata import file_sha256
from lgcnet_research import distributed as dist
from lgcnet_research.data import CamVidTorch
from lgcnet_research.latency.lut import LatencyTable
from lgcnet_research.plots import plot_genotype, plot_search
from lgcnet_research.search.config import SearchConfig, add_arguments
from lgcnet_research.search.relax import temperature
from lgcnet_research.search.supernet import SpaceConfig, Supernet
from lgcnet_research.train import git_commit, validate

STATE = "search_state.pt"


def cosine_lr(step: int, total: int, lr_max: float, lr_min: float) -> float:
    return lr_min + 0.5 * (lr_max - lr_min) * (1 + math.cos(math.pi * min(step, total) / total))


def space_of(cfg: SearchConfig) -> SpaceConfig:
    return SpaceConfig(widths=cfg.widths_obj(), reductions=tuple(cfg.reductions),
                       fusion_inputs=tuple(cfg.fusion_inputs), cell_sharing=cfg.cell_sharing,
                       communication=cfg.communication, graph=cfg.graph, gcn_dim=cfg.gcn_dim,
                       gamma=cfg.gamma)


def _batches(loader: DataLoader, sampler: DistributedSampler | None, epoch: int
             ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    while True:
        if sampler is not None:
            sampler.set_epoch(epoch)
        yield from loader
        epoch += 1


def validate_derived(net: Supernet, loader: DataLoader, device: torch.device) -> float:
    """mIoU of the currently derived architecture (argmax α, no noise) on the val frames."""
    z_cells, z_fusion = net.argmax_weights()
    return validate(net, loader, device,
                    lambda x: net.frame(x, list(z_cells), z_fusion)).miou()


def search(cfg: SearchConfig, resume: bool = False) -> dict:
    """Run (or resume) a search; returns {"genotype": Genotype, "history": [...]}."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    info = dist.setup(cfg.device)
    torch.manual_seed(cfg.seed + info.rank)
    out = Path(cfg.out)
    net = Supernet(space_of(cfg), CAMVID.num_classes)
    table = None
    if cfg.beta > 0:
        if not cfg.lut:
            raise ValueError("β > 0 needs a latency table: pass --lut (measure one with "
                             "`lgcnet lut`) or set --beta 0")
        table = LatencyTable.load(cfg.lut)
        net.set_latency_table(table)
    net.to(info.device)
    opt_w = torch.optim.SGD(net.weight_parameters(), lr=cfg.w_lr_max, momentum=cfg.w_momentum,
                            weight_decay=cfg.w_wd)
    opt_a = torch.optim.Adam(net.arch_parameters(), lr=cfg.a_lr, betas=tuple(cfg.a_betas),
                             weight_decay=cfg.a_wd)
    step, history = 0, []
    if resume and (out / STATE).is_file():
        state = torch.load(out / STATE, map_location=info.device, weights_only=True)
        if state["config"] != _plain(cfg):
            changed = sorted(k for k, v in _plain(cfg).items() if v != state["config"].get(k))
            raise ValueError(f"{out / STATE} was written with other settings ({', '.join(changed)}"
                             f"); resume with the same config or use a new --out")
        net.load_state_dict(state["model"])
        opt_w.load_state_dict(state["opt_w"])
        opt_a.load_state_dict(state["opt_a"])
        step, history = state["step"], state["history"]
    model = DistributedDataParallel(net, find_unused_parameters=True) if info.enabled else net

    train_set = CamVidTorch("train", crop=tuple(cfg.crop), scale_range=tuple(cfg.scale),
                            root=cfg.data, seed=cfg.seed + step)
    if cfg.limit:
        train_set = Subset(train_set, range(cfg.limit))
    sampler = DistributedSampler(train_set, shuffle=True, seed=cfg.seed) if info.enabled \
        else None
    loader = DataLoader(train_set, cfg.batch, shuffle=sampler is None, sampler=sampler,
                        drop_last=True)
    val_set = Subset(CamVidTorch("val", crop=None, train=False, root=cfg.data),
                     range(cfg.val_frames))
    val_loader = DataLoader(val_set, 4, sampler=DistributedSampler(val_set, shuffle=False)
                            if info.enabled else None)
    batches = _batches(loader, sampler, step // max(len(loader), 1))
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    bar = tqdm(total=cfg.steps, initial=step, desc=f"search β={cfg.beta}",
               disable=not info.is_main, mininterval=5)
    while step < cfg.steps:
        x, y = next(batches)
        tau = temperature(step, cfg.steps, cfg.tau_max, cfg.tau_min)
        lr = cosine_lr(step, cfg.steps, cfg.w_lr_max, cfg.w_lr_min)
        for g in opt_w.param_groups:
            g["lr"] = lr
        logits, lat = model(x.to(info.device), tau, cfg.hard)
        ce = F.cross_entropy(logits, y.to(info.device), ignore_index=CAMVID.ignore_index)
        loss = ce + cfg.beta * torch.log(lat) if table is not None else ce  # Eq. 10, LAT in µs
        opt_w.zero_grad(set_to_none=True)
        opt_a.zero_grad(set_to_none=True)
        loss.backward()
        opt_w.step()
        if step >= cfg.arch_warmup:
            opt_a.step()
        step += 1
        bar.update(1)
        if step % cfg.log_every == 0 or step == cfg.steps:
            rec = {"step": step, "ce": float(dist.all_reduce_mean(ce.detach().cpu())),
                   "lat_ms": float(lat.detach()) / 1000.0 if table is not None else None,
                   "loss": float(loss.detach()), "tau": tau, "lr": lr,
                   "seconds": round(time.time() - t0, 1), "entropy": net.entropies()}
            if table is not None:
                rec["derived_ms"] = table.predict_ms(net.derive())
            if step % cfg.val_every == 0 or step == cfg.steps:
                rec["val_miou"] = validate_derived(net, val_loader, info.device)
            history.append(rec)
            bar.set_postfix(ce=f"{rec['ce']:.3f}", tau=f"{tau:.3f}",
                            lat=f"{rec['lat_ms'] or 0:.1f}ms")
        if info.is_main and step % cfg.checkpoint_every == 0 and step < cfg.steps:
            _save_state(out, net, opt_w, opt_a, step, history, cfg)
            _write_outputs(out, net, history, cfg, table, info.world_size)
        dist.barrier()
    bar.close()
    genotype = net.derive()
    if info.is_main:  # the final state and outputs, written once
        _save_state(out, net, opt_w, opt_a, step, history, cfg)
        genotype = _write_outputs(out, net, history, cfg, table, info.world_size)
    dist.cleanup()
    return {"genotype": genotype, "history": history}


def _plain(cfg: SearchConfig) -> dict:
    """The config as JSON would read it back (tuples as lists): what a state file stores."""
    return json.loads(json.dumps(cfg.to_dict()))


def _save_state(out: Path, net: Supernet, opt_w, opt_a, step: int, history: list,
                cfg: SearchConfig) -> None:
    tmp = out / (STATE + ".tmp")
    torch.save({"model": net.state_dict(), "opt_w": opt_w.state_dict(),
                "opt_a": opt_a.state_dict(), "step": step, "history": history,
                "config": _plain(cfg)}, tmp)
    tmp.replace(out / STATE)


def _write_outputs(out: Path, net: Supernet, history: list, cfg: SearchConfig,
                   table: LatencyTable | None, world_size: int):
    last = history[-1] if history else {}
    provenance = {
        "source": "search (python -m lgcnet_research.search), argmax of the GGM-updated α per edge",
        "config": cfg.to_dict(), "beta": cfg.beta, "steps_done": last.get("step", 0),
        "seed": cfg.seed, "world_size": world_size, "git": git_commit(),
        "data": f"CamVid train crops {cfg.crop[0]}x{cfg.crop[1]} (scale {cfg.scale[0]}-"
                f"{cfg.scale[1]}), val first {cfg.val_frames} frames for monitoring",
        "final_val_miou_supernet": last.get("val_miou"),
    }
    if table is not None:
        provenance["lut"] = {"file": str(cfg.lut), "sha256": file_sha256(cfg.lut),
                             "backend": table.backend, "device": table.device,
                             "input_size": list(table.input_size)}
    genotype = net.derive(name=f"searched-beta{cfg.beta:g}", provenance=provenance)
    if table is not None:
        genotype.provenance["predicted_ms"] = round(table.predict_ms(genotype), 2)
    genotype.save(out / "genotype.json")
    (out / "search_log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in history))
    if history:
        plot_search(history, out / "search_curves.png")
    with torch.no_grad():
        plot_genotype(genotype, out / "genotype.png", torch.softmax(net.cell_logits(), -1))
    return genotype


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m lgcnet_research.search", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    return run(add_arguments(p).parse_args(argv))


def run(args: argparse.Namespace) -> int:
    cfg = SearchConfig.from_args(args)
    g = search(cfg, resume=args.resume)["genotype"]
    print(f"genotype {g.hash} ({g.name}) -> {Path(cfg.out) / 'genotype.json'}"
          + (f"; predicted latency {g.provenance['predicted_ms']:.1f} ms"
             if "predicted_ms" in g.provenance else ""))
    return 0
