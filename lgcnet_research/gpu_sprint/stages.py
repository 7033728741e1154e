"""The sprint's stages (`speed` lives in speed.py) and the table printed at the end.

A stage is a function of a StageContext, run in its own process: it reports results with
`ctx.report(...)` as soon as it has them, writes its big outputs straight into OUT under the
fixed names below, and keeps to `ctx.deadline` where it can (the parent kills it after).
`COLLECT` functions run in the parent after a stage ended, killed or not, to pack what the
stage left in its scratch folder into OUT. With `ctx.dry` every stage runs at tiny sizes.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from statistics import median
from typing import TYPE_CHECKING, Any

import numpy as np

from lgcnet_research.gpu_sprint import speed as speed_stage
from lgcnet_research.gpu_sprint.runner import REPO, StageContext, StageSkipped

if TYPE_CHECKING:
    from lgcnet_research.search.config import SearchConfig

# The only files the sprint writes into OUT (the device returns at most 8, none in subfolders).
TRAIN_BEST, TRAIN_CURVES = "train_best.pt", "train_curves.png"
SEARCH_JSON, SEARCH_CURVES = "search.json", "search_curves.png"
OUT_FILES = ("summary.json", "sprint.log", "lut_<backend>_<H>x<W>.json", TRAIN_BEST,
             TRAIN_CURVES, SEARCH_JSON, SEARCH_CURVES)

DRY_PYTEST = "-m gpu tests/test_gpu_sprint.py"
DRY_SEARCH = {"widths": {"stem": [4, 8, 8], "cells": [8, 8, 16], "fusion": 8}, "steps": 2,
              "batch": 2, "crop": (48, 64), "limit": 4, "val_frames": 2, "val_every": 2,
              "log_every": 1, "checkpoint_every": 1, "threads": 1}
DRY_TRAIN = {"limit": (4, 2), "crop": (64, 64), "batch": 2, "epochs": 2, "threads": 1}
PACKAGES = ("triton", "tensorrt", "torchvision", "onnx", "onnxruntime", "onnxsim", "cv2",
            "numpy", "matplotlib")


# -- env -------------------------------------------------------------------------------------
def _version(module: str) -> str:
    try:
        return str(getattr(__import__(module), "__version__", "imported (no __version__)"))
    except Exception as e:  # tensorrt & co. fail in many ways; the message is the finding
        return f"not importable: {type(e).__name__}: {e}"[:300]


def _nvidia_smi() -> str:
    query = "name,driver_version,memory.total,clocks.max.sm,power.limit,temperature.gpu"
    try:
        return subprocess.run(["nvidia-smi", f"--query-gpu={query}", "--format=csv,noheader"],
                              capture_output=True, text=True, timeout=20).stdout.strip()
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"unavailable: {e}"


def env(ctx: StageContext) -> None:
    """GPU, driver, torch/CUDA/cuDNN, Triton, whether tensorrt imports, the data found."""
    import torch

    from lgcnet_deploy.core.data import CamVid
    from lgcnet_research.train import git_commit

    found = CamVid.available(ctx.data)
    ctx.report(python=platform.python_version(), platform=platform.platform(),
               cpus=os.cpu_count(), git=git_commit(), nvidia_smi=_nvidia_smi(),
               torch={"version": str(torch.__version__), "cuda": torch.version.cuda,
                      "cudnn": torch.backends.cudnn.version(),
                      "cuda_available": torch.cuda.is_available()},
               camvid={"root": str(ctx.data), "train": len(CamVid("train", ctx.data))
                       if found else 0, "val": len(CamVid("val", ctx.data)) if found else 0})
    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        ctx.report(gpu={"name": p.name, "capability": f"{p.major}.{p.minor}",
                        "multiprocessors": p.multi_processor_count,
                        "memory_gib": round(p.total_memory / 2**30, 1),
                        "l2_mib": round(getattr(p, "L2_cache_size", 0) / 2**20, 1)})
    ctx.report(packages={m: _version(m) for m in PACKAGES})


# -- tests -----------------------------------------------------------------------------------
def tests(ctx: StageContext) -> None:
    """`pytest -m gpu` (its output goes to the log); counts and failed tests to the summary."""
    args = shlex.split(DRY_PYTEST if ctx.dry else ctx.cfg.pytest_args)
    cmd = [sys.executable, "-m", "pytest", "-q", "-rfE", "-p", "no:cacheprovider", *args]
    ctx.report(command=shlex.join(["python", *cmd[1:]]))
    try:
        proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True,
                              env={**os.environ, "LGCNET_CAMVID": str(ctx.data)},
                              timeout=max(ctx.seconds_left() - 2, 1))
    except subprocess.TimeoutExpired as e:
        print(e.stdout or "", flush=True)
        raise TimeoutError("pytest ran past the box (see sprint.log)") from None
    print(proc.stdout, proc.stderr, sep="\n", flush=True)
    lines = proc.stdout.strip().splitlines()
    counts = {k.rstrip("s") if k == "errors" else k: int(n) for n, k in re.findall(
        r"(\d+) (passed|failed|skipped|errors?|deselected|xfailed|xpassed)",
        lines[-1] if lines else "")}
    ctx.report(returncode=proc.returncode, counts=counts,
               failures=[ln for ln in lines if ln.startswith(("FAILED", "ERROR"))][:20])


# -- lut -------------------------------------------------------------------------------------
def search_settings(ctx: StageContext, **overrides: Any) -> SearchConfig:
    """The search's settings (paper defaults or --search-config), tiny when dry."""
    from lgcnet_research.search.config import SearchConfig

    cfg = SearchConfig.load(ctx.cfg.search_config) if ctx.cfg.search_config else SearchConfig()
    return replace(cfg, **({**DRY_SEARCH, **overrides} if ctx.dry else overrides))


def lut_size(ctx: StageContext) -> tuple[int, int]:
    return (48, 64) if ctx.dry else tuple(speed_stage.PAPER["input_size"])


def lut_file(ctx: StageContext) -> Path:
    h, w = lut_size(ctx)
    return ctx.out / f"lut_torch-{ctx.device}_{h}x{w}.json"


def lut(ctx: StageContext) -> None:
    """A torch-cuda latency table at the paper's input size for the search's widths, then
    Spearman's rho of its predictions against measured random genotypes."""
    from lgcnet_deploy.model.genotype import Genotype, load_genotype
    from lgcnet_research.latency.check import check, random_genotype
    from lgcnet_research.latency.lut import measure_table

    scfg = search_settings(ctx)
    widths, reductions = scfg.widths_obj(), tuple(scfg.reductions)
    ref = Genotype.from_dict({**load_genotype("handwritten").to_dict(),
                              "widths": widths.to_dict()})
    if ref.reductions != reductions:
        raise StageSkipped(f"the search's reductions {reductions} differ from the reference "
                           f"genotype's {ref.reductions}")
    path = lut_file(ctx)
    reps = dict(warmup=1, iters=1, passes=1) if ctx.dry else dict(warmup=5, iters=20, passes=2)
    table = measure_table(widths, reductions, lut_size(ctx), f"torch-{ctx.device}",
                          ctx.scratch, ref, progress=False, **reps)
    table.save(path)
    ctx.report(file=path.name, device=table.device, versions=table.versions,
               widths=widths.to_dict(), entries=len(table.entries),
               frame_ms=round(table.frame_us / 1000, 3), seconds=table.extra["seconds"])
    rng = np.random.default_rng(0)
    n = 2 if ctx.dry else ctx.cfg.lut_genotypes
    genotypes = [ref, *(random_genotype(rng, table, f"random-{i}") for i in range(n))]
    result = check(table, genotypes, iters=1 if ctx.dry else 8, rounds=1 if ctx.dry else 5)
    ctx.report(spearman_rho=result["spearman_rho"], check_rows=result["rows"],
               check="fp32 eager deployed networks (latency.check), best round's median")


# -- train -----------------------------------------------------------------------------------
def train(ctx: StageContext) -> None:
    """The GPU recipe of --train-config for as long as the box allows; the best checkpoint
    (full provenance) and the curves into OUT, the val mIoU into the summary every minute."""
    from lgcnet_research.train import Trainer, validate
    from lgcnet_research.train_config import TrainConfig

    reserve = 1.0 if ctx.dry else 12.0  # the last validation, checkpoint and plot
    overrides = {"out": str(ctx.scratch), "ship": str(ctx.out / TRAIN_BEST),
                 "data": str(ctx.data), "device": ctx.device,
                 "time_limit": round(max(ctx.seconds_left() - reserve, 1.0), 1),
                 **(DRY_TRAIN if ctx.dry else {})}
    trainer = Trainer(TrainConfig.load(ctx.cfg.train_config, **overrides))
    # the device's copy of the tree has no .git: the sprint's note names the commit
    trainer.provenance.update(source="gpu_sprint stage train", sprint_note=ctx.cfg.note)
    init_miou = (validate(trainer.net, trainer.val_loader, trainer.info.device).miou()
                 if trainer.cfg.init else None)
    ctx.report(recipe=trainer.cfg.to_dict(), hardware=trainer.provenance["hardware"],
               train_frames=len(trainer.train_set), init_val_miou=init_miou)
    history: list[dict[str, Any]] = []

    def on_epoch(record: dict[str, Any]) -> None:
        history.append({k: v for k, v in record.items() if k != "val_iou"})
        if "val_miou" in record:
            shutil.copyfile(ctx.scratch / "curves.png", ctx.out / TRAIN_CURVES)
            ctx.report(epochs=record["epoch"], best_val_miou=trainer.best, history=history)

    result = trainer.fit(on_epoch)
    ctx.report(epochs=result["epochs"], best_val_miou=result["best_miou"], history=history,
               median_epoch_s=round(median(h["seconds"] for h in history), 2),
               checkpoint=TRAIN_BEST if (ctx.out / TRAIN_BEST).is_file() else None)


# -- search ----------------------------------------------------------------------------------
def search(ctx: StageContext) -> None:
    """The paper's soft-relaxation search (or --search-config) with this call's GPU table;
    cut by the box unless its steps fit (COLLECT packs what it wrote)."""
    from lgcnet_research.search.run import search as run_search

    table = lut_file(ctx)
    if not table.is_file():
        raise StageSkipped(f"needs {table.name} from stage lut of this call")
    cfg = search_settings(ctx, out=str(ctx.scratch), lut=str(table), data=str(ctx.data),
                          device=ctx.device)
    ctx.report(config=cfg.to_dict())
    run_search(cfg)


def collect_search(ctx: StageContext) -> dict[str, Any]:
    """Pack the search's genotype and log into OUT/search.json, its curves beside it."""
    log_path, genotype_path = ctx.scratch / "search_log.jsonl", ctx.scratch / "genotype.json"
    if not log_path.is_file():
        return {}
    history = [json.loads(line) for line in log_path.read_text().splitlines() if line]
    genotype = json.loads(genotype_path.read_text()) if genotype_path.is_file() else None
    (ctx.out / SEARCH_JSON).write_text(json.dumps({"genotype": genotype, "log": history}) + "\n")
    if (ctx.scratch / "search_curves.png").is_file():
        shutil.copyfile(ctx.scratch / "search_curves.png", ctx.out / SEARCH_CURVES)
    last = history[-1] if history else {}
    evals = [h["val_miou"] for h in history if h.get("val_miou") is not None]
    return {"steps_done": last.get("step", 0), "search_seconds": last.get("seconds"),
            "seconds_per_step": round(last["seconds"] / last["step"], 3) if last else None,
            "last_val_miou": evals[-1] if evals else None, "file": SEARCH_JSON}


ORDER = ("env", "tests", "speed", "lut", "train", "search")
RUN = {"env": env, "tests": tests, "speed": speed_stage.speed, "lut": lut, "train": train,
       "search": search}
COLLECT = {"search": collect_search}


# -- the closing table -----------------------------------------------------------------------
def _pct(fraction: float | None) -> str:
    return "-" if fraction is None else f"{100 * fraction:.2f} %"


def _headline(name: str, r: dict[str, Any]) -> str:
    """One line of what a stage found ('' when it reported nothing to summarise)."""
    if name == "env" and "torch" in r:
        gpu = r.get("gpu", {}).get("name") or r.get("nvidia_smi", "")
        return f"{gpu}; torch {r['torch']['version']} CUDA {r['torch']['cuda']}; " \
               f"tensorrt: {r.get('packages', {}).get('tensorrt', '?')[:40]}"
    if name == "tests" and "counts" in r:
        return f"{r['counts']} {'; '.join(r['failures'])[:200]}"
    if name == "lut" and "entries" in r:
        rho = r.get("spearman_rho")
        return f"{r['entries']} entries, frame {r['frame_ms']} ms, Spearman rho " + (
            "-" if rho is None else f"{rho:.3f}")
    if name == "train" and "recipe" in r:
        return f"{r.get('epochs', 0)} epochs, best val mIoU {_pct(r.get('best_val_miou'))} " \
               f"(init {_pct(r.get('init_val_miou'))})"
    if name == "search" and "steps_done" in r:
        return f"{r['steps_done']} steps, {r['seconds_per_step']} s/step"
    if name == "speed":
        return speed_stage.headline(r)
    return ""


def final_report(summary: dict[str, Any]) -> str:
    """Markdown: one row per stage, then the paper-setting speed table and the parity."""
    rows = ["| stage | status | s | result |", "|---|---|---:|---|"]
    for name, r in summary["stages"].items():
        rows.append(f"| {name} | {r.get('status')} | {r.get('seconds', '')} | "
                    f"{_headline(name, r)} |")
    speed = summary["stages"].get("speed", {})
    return "\n".join([*rows, "", *speed_stage.tables(speed)])
