"""The search loop (§III, §IV-A): CE + β·log(LAT), α and weights in the same backward pass
(the α side lives in `architect.Architect`).

    python -m lgcnet_research.search --config configs/search/camvid_cpu.json --out runs/search
    torchrun --nproc_per_node=2 -m lgcnet_research.search --config ...  # DDP (gloo/nccl)
    python -m lgcnet_research.search ... --resume  # continue from OUT/search_state.pt

Writes OUT/genotype.json (argmax of the GGM-updated α, with provenance), OUT/search_log.jsonl
(CE, LAT, temperature, α entropy per cell, mean top-1 op probability, the argmax op index of
every cell edge, val mIoU of the derived architecture),
OUT/search_curves.png, and OUT/search_state.pt every `checkpoint_every` steps.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, Subset
from tqdm import tqdm

from lgcnet_deploy.core.classes import CAMVID
from lgcnet_deploy.core.metadata import file_sha256
from lgcnet_deploy.model.genotype import Genotype
from lgcnet_research.base import distributed as dist
from lgcnet_research.base.plots import plot_genotype, plot_search
from lgcnet_research.latency.lut import LatencyTable
from lgcnet_research.search.architect import Architect, load_latency_table
from lgcnet_research.search.config import SearchConfig, add_arguments
from lgcnet_research.search.relax import temperature
from lgcnet_research.search.supernet import SpaceConfig, Supernet
from lgcnet_research.train.data import CamVidTorch
from lgcnet_research.train.pretrained import imagenet_source, load_imagenet_trunk
from lgcnet_research.train.trainer import git_commit, validate

STATE = "search_state.pt"


def cosine_lr(step: int, total: int, lr_max: float, lr_min: float) -> float:
    return lr_min + 0.5 * (lr_max - lr_min) * (1 + math.cos(math.pi * min(step, total) / total))


def space_of(cfg: SearchConfig) -> SpaceConfig:
    return SpaceConfig(widths=cfg.widths_obj(), reductions=tuple(cfg.reductions),
                       fusion_inputs=tuple(cfg.fusion_inputs), cell_sharing=cfg.cell_sharing,
                       communication=cfg.communication, graph=cfg.graph, gcn_dim=cfg.gcn_dim,
                       gamma=cfg.gamma, stem=cfg.stem, cell_strides=tuple(cfg.cell_strides))


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


class Search:
    """One search in named steps: `__init__` builds the supernet, the weight optimizer, the
    `Architect` and the data (and resumes); `train_step` is one shared forward/backward with
    the weight and α updates; `record` logs; `save` writes state and outputs; `run` loops."""

    def __init__(self, cfg: SearchConfig, resume: bool = False) -> None:
        if resume and cfg.time_limit:
            raise ValueError("a time-limited search cannot be resumed (its schedules ran over "
                             "its time); start a new --out")
        self.cfg, self.out = cfg, Path(cfg.out)
        self.started = time.time()
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        self.info = dist.setup(cfg.device)
        if cfg.time_limit and self.info.enabled:  # ranks' clocks would disagree on the end
            raise ValueError("time_limit is for one process; under torchrun give --steps")
        torch.manual_seed(cfg.seed + self.info.rank)
        self.net = Supernet(space_of(cfg), CAMVID.num_classes)
        self.architect = Architect(self.net, cfg, load_latency_table(cfg))
        self.net.to(self.info.device)
        self.opt_w = torch.optim.SGD(self.net.weight_parameters(), lr=cfg.w_lr_max,
                                     momentum=cfg.w_momentum, weight_decay=cfg.w_wd)
        self.step, self.history = 0, []
        if resume and (self.out / STATE).is_file():
            self._resume()
        elif cfg.branch_from:
            self._branch(Path(cfg.branch_from))
        elif cfg.imagenet_stem:  # a fresh start; a resumed or branched one has its trunk
            load_imagenet_trunk(self.net.frame)
        self.model = DistributedDataParallel(self.net, find_unused_parameters=True) \
            if self.info.enabled else self.net
        self._build_data()

    def _resume(self) -> None:
        state = torch.load(self.out / STATE, map_location=self.info.device, weights_only=True)
        stored = {**_plain(SearchConfig()), **state["config"]}  # older states: new switches
        if stored != _plain(self.cfg):                              # at their defaults
            changed = sorted(k for k, v in _plain(self.cfg).items() if v != stored.get(k))
            raise ValueError(f"{self.out / STATE} was written with other settings "
                             f"({', '.join(changed)}); resume with the same config or use a "
                             f"new --out")
        self._continue(state, self.out / STATE)
        self.architect.optimizer.load_state_dict(state["opt_a"])

    def _branch(self, state_file: Path) -> None:
        """Start where another search's state is (weights, α, step, log); from here on, this
        config's settings. The α optimizer starts fresh: its settings may be the change."""
        if not state_file.is_file():
            raise FileNotFoundError(f"{state_file}: no search state to branch from (a "
                                    f"search writes OUT/{STATE})")
        state = torch.load(state_file, map_location=self.info.device, weights_only=True)
        if state["step"] >= self.cfg.steps:
            raise ValueError(f"{state_file} is at step {state['step']}, not before this "
                             f"search's end ({self.cfg.steps} steps): give more --steps")
        self._continue(state, state_file)

    def _continue(self, state: dict[str, Any], state_file: Path) -> None:
        """The weights, their optimizer, the step and the log of a search state."""
        try:
            self.net.load_state_dict(state["model"])
        except RuntimeError:
            raise ValueError(f"{state_file} holds another search space: start from a search "
                             f"with the same widths and space switches") from None
        self.opt_w.load_state_dict(state["opt_w"])
        self.step, self.history = state["step"], state["history"]

    def _build_data(self) -> None:
        cfg, enabled = self.cfg, self.info.enabled
        train_set = CamVidTorch("train", crop=tuple(cfg.crop), scale_range=tuple(cfg.scale),
                                root=cfg.data, seed=cfg.seed + self.step)
        if cfg.limit:
            train_set = Subset(train_set, range(cfg.limit))
        sampler = DistributedSampler(train_set, shuffle=True, seed=cfg.seed) if enabled \
            else None
        loader = DataLoader(train_set, cfg.batch, shuffle=sampler is None, sampler=sampler,
                            drop_last=True)
        val_set = Subset(CamVidTorch("val", crop=None, train=False, root=cfg.data),
                         range(cfg.val_frames))
        self.val_loader = DataLoader(val_set, 4, sampler=DistributedSampler(
            val_set, shuffle=False) if enabled else None)
        self.batches = _batches(loader, sampler, self.step // max(len(loader), 1))

    def schedule_step(self) -> int:
        """The step the schedules are at: the step itself, or in a time-limited search the
        share of the time spent, in steps, when that is further along."""
        if not self.cfg.time_limit:
            return self.step
        spent = (time.time() - self.started) / self.cfg.time_limit
        return min(self.cfg.steps, max(self.step, int(spent * self.cfg.steps)))

    def train_step(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, Any]:
        """Schedules for this step, one forward/backward of Eq. 10, the weight step, then the
        architecture step."""
        cfg, step = self.cfg, self.schedule_step()
        tau = temperature(step, cfg.steps, cfg.tau_max, cfg.tau_min)
        lr = cosine_lr(step, cfg.steps, cfg.w_lr_max, cfg.w_lr_min)
        for g in self.opt_w.param_groups:
            g["lr"] = lr
        self.net.set_free_op_dropout(cfg.free_op_dropout * (1 - step / cfg.steps))
        logits, lat = self.model(x.to(self.info.device), tau, cfg.hard, cfg.gumbel,
                                 cfg.uniform_paths)
        ce = F.cross_entropy(logits, y.to(self.info.device), ignore_index=CAMVID.ignore_index)
        entropy_weight = self.architect.entropy_ramp(step)
        loss = self.architect.loss(ce, lat, entropy_weight)
        self.opt_w.zero_grad(set_to_none=True)
        self.architect.zero_grad()
        loss.backward()
        self.opt_w.step()
        self.architect.step(step)
        self.step += 1
        return {"ce": ce.detach(), "lat": lat.detach(), "loss": loss.detach(), "tau": tau,
                "lr": lr, "schedule_step": step,
                "entropy_weight": entropy_weight}

    def finished(self) -> bool:
        return self.step >= self.cfg.steps or self.schedule_step() >= self.cfg.steps

    def record(self, stats: dict[str, Any], t0: float, last: bool = False) -> dict[str, Any]:
        """The log line of this step: losses, schedules, α entropy and decision, latency."""
        rec = {"step": self.step, "ce": float(dist.all_reduce_mean(stats["ce"].cpu())),
               "lat_ms": float(stats["lat"]) / 1000.0 if self.architect.table else None,
               "loss": float(stats["loss"]), "tau": stats["tau"], "lr": stats["lr"],
               "seconds": round(time.time() - t0, 1), "schedule_step": stats["schedule_step"],
               "entropy_weight": stats["entropy_weight"],
               "entropy": self.net.entropies(),
               **self.net.decision(),
               "cell_argmax": self.net.cell_logits().detach().argmax(-1).flatten().tolist()}
        if self.architect.table is not None:
            rec["derived_ms"] = self.architect.predict_ms()
        if self.step % self.cfg.val_every == 0 or last:
            rec["val_miou"] = validate_derived(self.net, self.val_loader, self.info.device)
        self.history.append(rec)
        return rec

    def save(self) -> Genotype:
        """State file (atomic) and outputs: genotype with provenance, log, figures."""
        _save_state(self.out, self.net, self.opt_w, self.architect.optimizer, self.step,
                    self.history, self.cfg)
        return _write_outputs(self.out, self.net, self.history, self.cfg, self.architect.table,
                              self.info.world_size)

    def run(self) -> dict[str, Any]:
        """Step until `cfg.steps`; returns {"genotype": Genotype, "history": [...]}."""
        cfg, t0 = self.cfg, time.time()
        self.started = t0
        self.out.mkdir(parents=True, exist_ok=True)
        bar = tqdm(total=cfg.steps, initial=self.step, desc=f"search β={cfg.beta}",
                   disable=not self.info.is_main, mininterval=5)
        while not self.finished():
            stats = self.train_step(*next(self.batches))
            bar.update(1)
            last = self.finished()
            if self.step % cfg.log_every == 0 or last:
                rec = self.record(stats, t0, last)
                bar.set_postfix(ce=f"{rec['ce']:.3f}", top1=f"{rec['mean_top1_prob']:.2f}",
                                lat=f"{rec['lat_ms'] or 0:.1f}ms")
            if self.info.is_main and self.step % cfg.checkpoint_every == 0 and not last:
                self.save()
            dist.barrier()
        bar.close()
        genotype = self.save() if self.info.is_main else self.net.derive()  # final, once
        dist.cleanup()
        return {"genotype": genotype, "history": self.history}


def search(cfg: SearchConfig, resume: bool = False) -> dict:
    """Run (or resume) a search; returns {"genotype": Genotype, "history": [...]}."""
    return Search(cfg, resume).run()


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
                   table: LatencyTable | None, world_size: int) -> Genotype:
    last = history[-1] if history else {}
    provenance = {
        "source": "search (python -m lgcnet_research.search), argmax of the GGM-updated α per edge",
        "config": cfg.to_dict(), "beta": cfg.beta, "steps_done": last.get("step", 0),
        "seed": cfg.seed, "world_size": world_size, "git": git_commit(),
        "data": f"CamVid train crops {cfg.crop[0]}x{cfg.crop[1]} (scale {cfg.scale[0]}-"
                f"{cfg.scale[1]}), val first {cfg.val_frames} frames for monitoring",
        "final_val_miou_supernet": last.get("val_miou"),
        **net.decision(),  # mean_top1_prob, mean_entropy, free_op_share of the cell edges
    }
    if net.space.has_trunk:
        start = f"from ImageNet ({imagenet_source()})" if cfg.imagenet_stem else "from scratch"
        provenance["trunk"] = (f"{cfg.stem}: EfficientNet-Lite0 to stride 16, in the supernet "
                               f"{start} and trained with its weights (not searched)")
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
