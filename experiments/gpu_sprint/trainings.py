"""Stage train's trainings: every TrainConfig of the plan at once, each its own process on
the one GPU, each under the stage's deadline.

The plan: one run per `--train-configs` file (named by its stem) plus, with
`--sanity-config`, the NAS sanity check's genotypes (`sanity.candidates`: the searched one
and `n_random` random ones within ±band of its predicted latency), all trained with that
config's one recipe (`sanity-searched`, `sanity-random-0`, ...). With `--train-schedule time`
(the default) each run's poly LR runs over the seconds left to the deadline, so every run
gets the same time and its own number of epochs (recorded); with `epochs` it runs over its
config's epochs and the deadline only stops it.

A run writes into its folder: config.json (what it trains), log.txt, report.json (rewritten
after every validation: recipe, params, history, best and final val mIoU, per-class IoU),
and the Trainer's best.pt, last.pt, curves.png. The stage's collector (in the sprint's
parent, torch-free) reads the reports (into summary.json) and `pack`s each run's best.pt,
curves and log tail into the tar files the 8-file limit leaves, each at most TAR_LIMIT bytes,
in plan order (the sanity check's runs last): what does not fit is listed, not returned.

    python -m experiments.gpu_sprint.trainings RUN_FOLDER [--deadline T] [--note N]
"""

from __future__ import annotations

import argparse
import io
import json
import tarfile
import time
from pathlib import Path
from statistics import median
from typing import Any

from experiments.gpu_sprint import jobs
from experiments.gpu_sprint.config import SprintConfig
from experiments.gpu_sprint.context import StageContext, StageSkipped, write_json

CONFIG, REPORT = "config.json", "report.json"
RUNS = "runs"  # folder of the run folders in the stage's scratch
PLAN = "plan.json"
RESERVE_S = 25.0  # after its time limit a run still validates, saves, plots (all runs at once)
TAR_LIMIT = 15 * 2**20  # a GPU run returns files of at most 16 MiB
MAX_TARS = 3
LOG_TAIL = 20_000  # characters of a run's log.txt that come back
DRY_TRAIN = {"limit": (4, 2), "crop": (64, 64), "batch": 2, "epochs": 2, "threads": 1}


# -- the plan (in the stage's process) ---------------------------------------------------------
def plan(ctx: StageContext) -> tuple[dict[str, dict[str, Any]], dict[str, Any] | None]:
    """name -> TrainConfig fields of every run, and the sanity check's draw (or None)."""
    from lgcnet_research.train.config import TrainConfig

    runs = {Path(p).stem: TrainConfig.load(p).to_dict() for p in ctx.cfg.train_configs}
    sanity = None
    if ctx.cfg.sanity_config:
        sanity_runs, sanity = sanity_plan(ctx)
        runs.update(sanity_runs)
    if not runs:
        raise StageSkipped("nothing to train: give --train-configs and/or --sanity-config")
    return runs, sanity


def planned_runs(cfg: SprintConfig) -> int:
    """How many runs the plan of `cfg` has (without drawing the genotypes)."""
    from experiments.sanity import SanityConfig

    sanity = 1 + SanityConfig.load(cfg.sanity_config).n_random if cfg.sanity_config else 0
    return len(cfg.train_configs) + sanity


def sanity_plan(ctx: StageContext) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """The sanity check's genotypes as runs of its one recipe, and how they were drawn."""
    from dataclasses import replace

    from experiments.sanity import SanityConfig, candidates
    from lgcnet_research.train.config import TrainConfig

    scfg = SanityConfig.load(ctx.cfg.sanity_config)
    if ctx.dry:  # the shape of the check at the least cost
        scfg = replace(scfg, n_random=1)
    genotypes, sampling = candidates(scfg)
    runs, rows = {}, []
    (ctx.scratch / "genotypes").mkdir(parents=True, exist_ok=True)
    for i, g in enumerate(genotypes):
        name = "sanity-searched" if i == 0 else f"sanity-{g.name}"
        path = g.save(ctx.scratch / "genotypes" / f"{name}.json")
        runs[name] = TrainConfig.from_dict({**scfg.recipe, "genotype": str(path)}).to_dict()
        rows.append({"name": name, "hash": g.hash,
                     "predicted_ms": sampling["predicted_ms"][g.name]})
    return runs, {"config": scfg.to_dict(), "sampling": sampling, "rows": rows}


def launch(ctx: StageContext, runs: dict[str, dict[str, Any]], threads: int
           ) -> dict[str, Any]:
    """Write each run's config.json (the sprint's overrides on top) and start its process."""
    overrides = {"data": str(ctx.data), "device": ctx.device, "threads": threads, "ship": None,
                 **(DRY_TRAIN if ctx.dry else {})}
    deadline = ["--deadline", str(ctx.deadline)] if ctx.cfg.train_schedule == "time" else []
    started = {}
    for name, fields in runs.items():
        folder = ctx.scratch / RUNS / name
        folder.mkdir(parents=True, exist_ok=True)
        config = {**fields, **overrides, "out": str(folder)}
        (folder / CONFIG).write_text(json.dumps(config, indent=1) + "\n")
        started[name] = jobs.start("experiments.gpu_sprint.trainings",
                                   [str(folder), *deadline, "--note", ctx.cfg.note or ""],
                                   folder, overrides["threads"])
    return started


# -- one run (its own process) -----------------------------------------------------------------
class Report:
    """RUN/report.json: what the run is, its history and its results, rewritten atomically."""

    def __init__(self, path: Path, **fields: Any) -> None:
        self.path = path
        self.data: dict[str, Any] = {"status": "running", **fields, "history": []}
        self.write()

    def update(self, **fields: Any) -> None:
        self.data.update(fields)
        self.write()

    def write(self) -> None:
        write_json(self.path, self.data)


def run_training(folder: Path, deadline: float | None, note: str | None) -> dict[str, Any]:
    """Train folder/config.json (its time limit: up to `deadline`, less RESERVE_S), reporting
    into folder/report.json."""
    from lgcnet_deploy.core.classes import CAMVID
    from lgcnet_research.train.config import TrainConfig
    from lgcnet_research.train.trainer import Trainer, validate

    fields = json.loads((folder / CONFIG).read_text())
    if deadline is not None:
        fields["time_limit"] = round(max(deadline - time.time() - RESERVE_S, 1.0), 1)
    trainer = Trainer(TrainConfig.from_dict(fields))
    # the GPU machine's copy of the tree has no .git: the sprint's note names the commit
    trainer.provenance.update(source="gpu_sprint stage train", sprint_note=note or None,
                              sprint_run=folder.name)
    report = Report(folder / REPORT, name=folder.name, model=trainer.cfg.model,
                    genotype_hash=trainer.provenance["genotype_hash"],
                    params=sum(p.numel() for p in trainer.net.parameters()),
                    recipe=trainer.cfg.to_dict(), hardware=trainer.provenance["hardware"],
                    train_frames=len(trainer.train_set))
    if trainer.cfg.init:
        report.update(init_val_miou=validate(trainer.net, trainer.val_loader,
                                             trainer.info.device).miou())
    history = report.data["history"]

    def on_epoch(record: dict[str, Any]) -> None:
        history.append(record)
        if "val_miou" in record:
            best = max((h for h in history if "val_miou" in h), key=lambda h: h["val_miou"])
            report.update(epochs=record["epoch"], final_val_miou=record["val_miou"],
                          best_val_miou=best["val_miou"], best_epoch=best["epoch"],
                          best_val_iou=dict(zip(CAMVID.classes, best["val_iou"])))

    result = trainer.fit(on_epoch)
    report.update(status="done", epochs=result["epochs"],
                  median_epoch_s=round(median(h["seconds"] for h in history), 3))
    return report.data


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m experiments.gpu_sprint.trainings",
                                description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folder", type=Path, help="run folder holding config.json")
    p.add_argument("--deadline", type=float, default=None,
                   help="epoch seconds: the poly LR runs over the time left to it")
    p.add_argument("--note", default=None)
    args = p.parse_args(argv)
    report = run_training(args.folder, args.deadline, args.note)
    print(f"{args.folder.name}: {report['epochs']} epochs, best val mIoU "
          f"{report.get('best_val_miou')}")
    return 0


# -- collecting (in the sprint's parent: no torch) ---------------------------------------------
def read_reports(scratch: Path) -> dict[str, dict[str, Any]]:
    """Every run's report.json under the stage's scratch folder, in plan order."""
    planned = json.loads((scratch / PLAN).read_text())["runs"] if (scratch / PLAN).is_file() \
        else []
    reports = {}
    for name in planned:
        path = scratch / RUNS / name / REPORT
        if path.is_file():
            reports[name] = json.loads(path.read_text())
    return reports


def pack(scratch: Path, out: Path, names: list[str], tars: int = MAX_TARS
         ) -> dict[str, str | None]:
    """Each run's best.pt and curves.png and the tail of its log.txt into
    OUT/train_runs_<i>.tar, i <= `tars` (first fit in plan order; a run's files stay together);
    returns the tar each run went into (None: did not fit)."""
    bins: list[list[str]] = [[] for _ in range(tars)]
    sizes = [0] * tars
    placed: dict[str, str | None] = {}
    for name in names:
        folder = scratch / RUNS / name
        size = LOG_TAIL + sum((folder / f).stat().st_size + 1024 for f in (
            "best.pt", "curves.png") if (folder / f).is_file())
        slot = next((i for i in range(tars) if sizes[i] + size <= TAR_LIMIT), None)
        placed[name] = None if slot is None else f"train_runs_{slot + 1}.tar"
        if slot is not None:
            bins[slot].append(name)
            sizes[slot] += size
    for i, members in enumerate(bins):
        if members:
            with tarfile.open(out / f"train_runs_{i + 1}.tar", "w") as tar:
                for name in members:
                    _add_run(tar, scratch / RUNS / name)
    return placed


def _add_run(tar: tarfile.TarFile, folder: Path) -> None:
    for f in ("best.pt", "curves.png"):
        if (folder / f).is_file():
            tar.add(folder / f, arcname=f"{folder.name}/{f}")
    log = folder / jobs.JOB_LOG
    if log.is_file():
        tail = log.read_bytes()[-LOG_TAIL:]
        info = tarfile.TarInfo(f"{folder.name}/{jobs.JOB_LOG}")
        info.size, info.mtime = len(tail), int(log.stat().st_mtime)
        tar.addfile(info, io.BytesIO(tail))


def plot_runs(reports: dict[str, dict[str, Any]], path: Path) -> Path:
    """Val mIoU against epoch of every run, one line each (the curves of each run are in the
    tar, from the Trainer)."""
    from lgcnet_research.base.plots import plot_val_lines

    lines = []
    for name, report in reports.items():
        evals = [h for h in report["history"] if "val_miou" in h]
        lines.append((f"{name} ({report.get('model')})", [h["epoch"] for h in evals],
                      [h["val_miou"] for h in evals]))
    return plot_val_lines(lines, path, xlabel="epoch", size=(7, 4),
                          title="stage train: every run, side by side")


if __name__ == "__main__":
    raise SystemExit(main())
