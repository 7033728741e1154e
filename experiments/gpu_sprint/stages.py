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
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from experiments.gpu_sprint import jobs, trainings
from experiments.gpu_sprint import speed as speed_stage
from experiments.gpu_sprint.carry import MANIFEST
from experiments.gpu_sprint.context import REPO, StageContext, StageSkipped

if TYPE_CHECKING:
    from lgcnet_deploy.model.genotype import Genotype
    from lgcnet_research.latency.lut import LatencyTable
    from lgcnet_research.search.config import SearchConfig

# The only files the sprint writes into OUT (a GPU run returns at most 8, none in subfolders).
TRAIN_CURVES = "train_curves.png"
SEARCH_JSON, SEARCH_CURVES = "search.json", "search_curves.png"
OUT_FILES = ("summary.json", "sprint.log", "lut_<backend>_<H>x<W>.json",
             *(f"train_runs_{i + 1}.tar" for i in range(trainings.MAX_TARS)), TRAIN_CURVES,
             trainings.FOLD_TAR, SEARCH_JSON, SEARCH_CURVES)
SEARCH_RUN = "seed{}"  # a seed's folder in the search stage's scratch

DRY_PYTEST = "-m gpu tests/test_gpu_sprint.py"
DRY_SEARCH = {"widths": {"stem": [4, 8, 8], "cells": [8, 8, 16], "fusion": 8}, "steps": 2,
              "batch": 2, "crop": (48, 64), "limit": 4, "val_frames": 2, "val_every": 2,
              "log_every": 1, "checkpoint_every": 1, "threads": 1}
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


def _carry_manifest(root: Path) -> dict | None:
    """How `make gpu-carry` packed this CamVid (its JPEG quality), if it did."""
    manifest = root / MANIFEST
    return json.loads(manifest.read_text()) if manifest.is_file() else None


def env(ctx: StageContext) -> None:
    """GPU, driver, torch/CUDA/cuDNN, Triton, whether tensorrt imports, the data found."""
    import torch

    from lgcnet_deploy.core.data import CamVid
    from lgcnet_research.train.trainer import git_commit

    found = CamVid.available(ctx.data)
    ctx.report(python=platform.python_version(), platform=platform.platform(),
               cpus=os.cpu_count(), git=git_commit(), nvidia_smi=_nvidia_smi(),
               torch={"version": str(torch.__version__), "cuda": torch.version.cuda,
                      "cudnn": torch.backends.cudnn.version(),
                      "cuda_available": torch.cuda.is_available()},
               camvid={"root": str(ctx.data), "train": len(CamVid("train", ctx.data))
                       if found else 0, "val": len(CamVid("val", ctx.data)) if found else 0,
                       "carried": _carry_manifest(ctx.data)})
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
    from lgcnet_research.latency.check import check, random_genotype

    table, ref = measure_lut(ctx)
    rng = np.random.default_rng(0)
    n = 2 if ctx.dry else ctx.cfg.lut_genotypes
    genotypes = [ref, *(random_genotype(rng, table, f"random-{i}") for i in range(n))]
    result = check(table, genotypes, iters=1 if ctx.dry else 8, rounds=1 if ctx.dry else 5)
    ctx.report(spearman_rho=result["spearman_rho"], check_rows=result["rows"],
               check="fp32 eager deployed networks (latency.check), best round's median")


def measure_lut(ctx: StageContext) -> tuple[LatencyTable, Genotype]:
    """Measure and save this device's table (`lut_file`) for the search's widths; the table
    and its reference genotype (the hand-written one at those widths)."""
    from lgcnet_deploy.model.genotype import Genotype, load_genotype
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
    return table, ref


# -- train -----------------------------------------------------------------------------------
def side_by_side_jobs(ctx: StageContext, own: int) -> int:
    """Processes on this machine while this stage runs: its own and, when train and search
    run together, the other one's (for each job's share of the cores)."""
    cfg = ctx.cfg
    together = [s for s in cfg.selected() if s in cfg.together]
    if ctx.name not in together or len(together) < 2:
        return own
    other = {"train": lambda: trainings.planned_runs(cfg), "search": lambda: len(
        cfg.search_seeds)}
    return own + sum(other[s]() for s in together if s != ctx.name and s in other)


def train(ctx: StageContext) -> None:
    """Every run of the plan at once (trainings.py), each its own process until the box ends;
    the runs' reports go into the summary every POLL_S seconds (collect_train packs them)."""
    todo = trainings.plan(ctx)
    (ctx.scratch / trainings.PLAN).write_text(json.dumps({"runs": list(todo.runs),
                                                          "sanity": todo.sanity}) + "\n")
    threads = jobs.threads_per_job(side_by_side_jobs(ctx, len(todo.runs)))
    ctx.report(schedule=ctx.cfg.train_schedule, threads_per_run=threads,
               plan={n: {"model": f["model"], "init": f["init"], **(
                   {"genotype": f["genotype"]} if f["model"] == "lgcnet" else {}), **(
                   {"arm": todo.steps[n].arm, "fold": f["fold"], "seed": f["seed"],
                    "epochs": f["epochs"]} if n in todo.steps else {})}
                   for n, f in todo.runs.items()},
               sanity_sampling=todo.sanity and todo.sanity["sampling"])
    started = trainings.launch(ctx, todo, threads)

    def poll() -> None:
        ctx.report(runs=_run_rows(trainings.read_reports(ctx.scratch)))

    codes = jobs.wait(started, ctx, poll)
    ctx.report(exit_codes=codes)
    failed = [n for n, c in codes.items() if c is not None and c > 0]  # < 0: stopped at the box
    if failed:
        raise RuntimeError(f"runs failed: {', '.join(failed)} (their log.txt is in the tar)")


def _run_rows(reports: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The reports without their histories (the poll's short form)."""
    return {n: {k: v for k, v in r.items() if k != "history"} for n, r in reports.items()}


def collect_train(ctx: StageContext) -> dict[str, Any]:
    """Pack the runs (trainings.pack), plot their val mIoU, and score the sanity check."""
    from experiments.sanity import markdown, summarize

    reports = trainings.read_reports(ctx.scratch)
    if not reports:
        return {}
    placed = trainings.pack(ctx.scratch, ctx.out, list(reports), tars_left(ctx))
    for name, report in reports.items():
        report["returned_in"] = placed[name]
    trainings.plot_runs(reports, ctx.out / TRAIN_CURVES)
    result: dict[str, Any] = {"runs": reports, "curves": TRAIN_CURVES}
    fold_table = trainings.collect_records(ctx.scratch, ctx.out, list(reports))
    if fold_table:
        result["fold_table"] = fold_table
    sanity = json.loads((ctx.scratch / trainings.PLAN).read_text())["sanity"]
    if sanity:
        rows = [{**row, **_finished(reports.get(row["name"]))} for row in sanity["rows"]]
        summary = summarize(rows)
        result["sanity"] = {**sanity, "rows": rows, "summary": summary,
                            "markdown": markdown(rows, summary)}
    return result


def tars_left(ctx: StageContext) -> int:
    """Tar files stage train may return: 8 less the other files this call's stages write."""
    selected = ctx.cfg.selected()
    others = 3 + bool(ctx.cfg.train_plan) + 2 * ("search" in selected) + (
        "lut" in selected)  # summary, log, curves; the fold records
    return max(1, min(trainings.MAX_TARS, 8 - others))


def _finished(report: dict[str, Any] | None) -> dict[str, Any]:
    """A sanity row's scores from a run that finished its schedule (none otherwise), in the
    CPU check's row form (final per-class IoU, val history)."""
    from experiments.sanity import history_scores

    if not report or report.get("status") != "done" or "final_val_miou" not in report:
        return {}
    return {**{k: report[k] for k in ("best_val_miou", "epochs", "params")},
            **history_scores(report["history"])}


# -- search ----------------------------------------------------------------------------------
SEARCH_RESERVE_S = 60.0  # process start, data, supernet, then the final validation and outputs


def search(ctx: StageContext) -> None:
    """`--search-seeds` searches of `--search-config` at once, each its own process, with this
    call's GPU table if stage lut made one (else the config's `lut`); time-limited to the box
    (`SearchConfig.time_limit`), so λ anneals and α decides within it whatever the GPU's
    speed, and each seed writes its final genotype."""
    table = lut_file(ctx)
    if ctx.dry and not table.is_file():  # no committed table has a dry run's tiny widths
        measure_lut(ctx)
    overrides = {"data": str(ctx.data), "device": ctx.device,
                 **({"lut": str(table)} if table.is_file() else {})}
    if not ctx.dry:  # the schedules fit the box, however fast this GPU steps
        overrides["time_limit"] = max(ctx.seconds_left() - SEARCH_RESERVE_S, 30.0)
    cfg = search_settings(ctx, **overrides)
    if not cfg.lut or not Path(cfg.lut).is_file():
        raise StageSkipped(f"no latency table: stage lut made no {table.name} and the search "
                           f"config's lut is {cfg.lut!r}")
    seeds = ctx.cfg.search_seeds
    threads = 1 if ctx.dry else jobs.threads_per_job(side_by_side_jobs(ctx, len(seeds)))
    ctx.report(config=cfg.to_dict(), seeds=list(seeds), threads_per_seed=threads)
    started = {}
    for seed in seeds:
        folder = ctx.scratch / SEARCH_RUN.format(seed)
        folder.mkdir(parents=True, exist_ok=True)
        seed_cfg = replace(cfg, seed=seed, out=str(folder), threads=threads)
        (folder / "config.json").write_text(json.dumps(seed_cfg.to_dict()) + "\n")
        started[seed] = jobs.start("lgcnet_research.search",
                                   ["--config", str(folder / "config.json")], folder, threads)
    codes = jobs.wait(started, ctx)
    ctx.report(exit_codes=codes)
    failed = [str(s) for s, c in codes.items() if c is not None and c > 0]
    if failed:
        raise RuntimeError(f"search seeds {', '.join(failed)} failed (see search.json's logs)")


def collect_search(ctx: StageContext) -> dict[str, Any]:
    """Each seed's genotype, log and output tail into OUT/search.json; the seeds' agreement
    (experiments.agreement: the argmax's, and their final α′'s correlation where the states are
    there) when two have a genotype; their convergence figure beside it."""
    from experiments.agreement import (
        alpha_correlation,
        final_cell_state,
        plot_convergence,
        seed_agreement,
    )

    seeds: dict[str, dict[str, Any]] = {}
    for folder in sorted(ctx.scratch.glob(SEARCH_RUN.format("*"))):
        log_path, genotype_path = folder / "search_log.jsonl", folder / "genotype.json"
        history = [json.loads(line) for line in log_path.read_text().splitlines() if line] \
            if log_path.is_file() else []
        genotype = json.loads(genotype_path.read_text()) if genotype_path.is_file() else None
        tail = (folder / jobs.JOB_LOG).read_text()[-3000:] if (folder / jobs.JOB_LOG).is_file() \
            else ""
        seeds[folder.name] = {"genotype": genotype, "log": history, "output_tail": tail}
    if not seeds:
        return {}
    done = {name: s for name, s in seeds.items() if s["genotype"]}
    agreement = None
    if len(done) >= 2:
        from lgcnet_deploy.model.genotype import Genotype

        a, b = (Genotype.from_dict(s["genotype"]) for s in list(done.values())[:2])
        states = [final_cell_state(ctx.scratch / name) for name in list(done)[:2]]
        agreement = {"runs": list(done)[:2], **seed_agreement(a, b),
                     **alpha_correlation(*(state[0] if state else None for state in states))}
    (ctx.out / SEARCH_JSON).write_text(json.dumps({"seeds": seeds, "agreement": agreement})
                                       + "\n")
    logs = {name: s["log"] for name, s in seeds.items() if s["log"]}
    if logs:
        plot_convergence(logs, ctx.out / SEARCH_CURVES)
    return {"file": SEARCH_JSON, "seed_agreement": agreement,
            "seeds_done": {name: _search_row(s) for name, s in seeds.items()}}


def _search_row(seed: dict[str, Any]) -> dict[str, Any]:
    """A seed's steps, seconds per step, decision and last supernet val mIoU."""
    last = seed["log"][-1] if seed["log"] else {}
    evals = [h["val_miou"] for h in seed["log"] if h.get("val_miou") is not None]
    provenance = (seed["genotype"] or {}).get("provenance", {})
    return {"steps_done": last.get("step", 0), "search_seconds": last.get("seconds"),
            "seconds_per_step": round(last["seconds"] / last["step"], 3) if last else None,
            "mean_top1_prob": last.get("mean_top1_prob"),
            "genotype_steps": provenance.get("steps_done"),
            "last_val_miou": evals[-1] if evals else None}


ORDER = ("env", "tests", "speed", "lut", "train", "search")
RUN = {"env": env, "tests": tests, "speed": speed_stage.speed, "lut": lut, "train": train,
       "search": search}
COLLECT = {"train": collect_train, "search": collect_search}


# -- the closing table -----------------------------------------------------------------------
def _pct(fraction: float | None) -> str:
    return "-" if fraction is None else f"{100 * fraction:.2f} %"


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


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
    if name == "train" and r.get("runs"):
        return "; ".join(_run_headline(n, x) for n, x in r["runs"].items())
    if name == "search" and r.get("seeds_done"):
        agreement = r.get("seed_agreement") or {}
        return "; ".join(f"{n}: {x['steps_done']} steps, {x['seconds_per_step']} s/step, top-1 "
                         f"{_num(x['mean_top1_prob'])}" for n, x in r["seeds_done"].items()) + (
            f"; agreement {agreement['cell_edges']:.2f} of cell edges" if agreement else "")
    if name == "speed":
        return speed_stage.headline(r)
    return ""


def _run_headline(name: str, run: dict[str, Any]) -> str:
    """A training's number: a fold run's final held-out mIoU (its record), else the best val
    reading."""
    if "fold_record" in run:
        return f"{name} {_pct(run['fold_record']['miou'])} held out ({run['epochs']} ep)"
    return f"{name} {_pct(run.get('best_val_miou'))} ({run.get('epochs', 0)} ep)"


def final_report(summary: dict[str, Any]) -> str:
    """Markdown: one row per stage, then the paper-setting speed table and the parity, then
    the pooled-fold table of stage train's fold runs."""
    rows = ["| stage | status | s | result |", "|---|---|---:|---|"]
    for name, r in summary["stages"].items():
        rows.append(f"| {name} | {r.get('status')} | {r.get('seconds', '')} | "
                    f"{_headline(name, r)} |")
    stages = summary["stages"]
    folds = stages.get("train", {}).get("fold_table", {}).get("markdown")
    return "\n".join([*rows, "", *speed_stage.tables(stages.get("speed", {})),
                      *(["", folds] if folds else [])])
