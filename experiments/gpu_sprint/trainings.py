"""Stage train's trainings: every run of the plan at once, each its own process on the one
GPU, each under the stage's deadline.

The plan, in this order: the fold runs of `--train-plan` (a queue in experiments.campaign's
format, by default the campaign's own, its training steps of `--train-arms` (by default
`next`: the queue's next open screen that travels, and the arm it is paired with) and
`--train-seeds`, each named by its `out` folder's name: `fold_a_today`, `fold_a_trunk_s1`),
one run per `--train-configs` file (named by its stem) and, with `--sanity-config`, the NAS
sanity check's genotypes (`sanity.candidates`: the searched one and `n_random` random ones
within ±band of its predicted latency), all trained with that config's one recipe
(`sanity-searched`, `sanity-random-0`, ...). A fold run is the campaign's recipe as it is,
with the GPU switches (GPU_SWITCHES, under the step's own overrides) and the sprint's data,
device and threads: it runs its epochs to the last, the deadline only stops it. With
`--train-schedule time` each other run's poly LR runs over the seconds left to the deadline,
so every such run gets the same time and its own number of epochs (recorded); with `epochs` it
runs over its config's epochs and the deadline only stops it.

A run writes into its folder: config.json (what it trains), log.txt, report.json (rewritten
after every validation: recipe, params, history, best and final val mIoU, per-class IoU),
and the Trainer's best.pt, last.pt, curves.png; a fold run also its step (fold_run.json, in
the queue's format) and, once it reached its last epoch, the campaign's fold record
(fold_record.json: `experiments.campaign.write_fold_record`, scored on its held-out drive).
The stage's collector (in the sprint's parent, torch-free) reads the reports (into
summary.json), `pack`s each run's best.pt, curves and log tail into the tar files left of the
sprint's 8 returned files, each at most TAR_LIMIT bytes, in plan order (the sanity check's
runs last): what does not fit is listed, not returned; and `collect_records` puts the fold
records and their pooled table (experiments.fold_table) into one more tar.

    python -m experiments.gpu_sprint.trainings RUN_FOLDER [--deadline T] [--note N]
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import tarfile
import time
from pathlib import Path
from statistics import median
from typing import TYPE_CHECKING, Any, NamedTuple

from experiments.gpu_sprint import jobs
from experiments.gpu_sprint.config import NEXT_SCREEN, SprintConfig
from experiments.gpu_sprint.context import REPO, StageContext, StageSkipped, write_json

if TYPE_CHECKING:
    from experiments.campaign import Run

CONFIG, REPORT = "config.json", "report.json"
FOLD_RUN, RECORD = "fold_run.json", "fold_record.json"  # a fold run's step and its record
FOLD_TAR = "fold_runs.tar"  # OUT's tar of the fold records and their pooled table
RUNS = "runs"  # folder of the run folders in the stage's scratch
PLAN = "plan.json"
# what a fold run changes of the campaign's recipe on a GPU (its step's overrides win)
GPU_SWITCHES = {"device_data": True, "amp": "bf16", "channels_last": True}
RESERVE_S = 25.0  # after its time limit a run still validates, saves, plots (all runs at once)
TAR_LIMIT = 15 * 2**20  # bytes of one returned tar at most (returned files stay < 16 MiB)
MAX_TARS = 3
LOG_TAIL = 20_000  # characters of a run's log.txt that come back
DRY_TRAIN = {"limit": (4, 2), "crop": (64, 64), "batch": 2, "epochs": 2, "finish_epochs": 1,
             "finish_crop": (64, 64), "threads": 1}


# -- the plan (in the stage's process) ---------------------------------------------------------
class TrainPlan(NamedTuple):
    """Stage train's runs in plan order (name -> TrainConfig fields), the fold runs among them
    (name -> the plan's step) and the sanity check's draw (or None)."""

    runs: dict[str, dict[str, Any]]
    steps: dict[str, Run]
    sanity: dict[str, Any] | None


def plan_steps(cfg: SprintConfig) -> list[Run]:
    """The training steps of `--train-plan` of `--train-arms` (`next`: those of
    `next_screen`) and `--train-seeds`, in the queue's order (its targets steps are not run:
    a step that distils names targets carried beside the tree; nor are fold C's checks, which
    pair with the campaign's own runs)."""
    from experiments.campaign import Run, queue
    from lgcnet_research.train.folds import CHECK_FOLDS

    if not cfg.train_plan:
        return []
    steps = [s for s in queue(Path(cfg.train_plan)) if isinstance(s, Run)]
    arms = cfg.train_arms
    if arms == (NEXT_SCREEN,):
        arms = next_screen(steps)
        if not arms:
            return []
    chosen = [s for s in steps if not arms or s.arm in arms]
    settings = [s.settings() for s in chosen]
    return [s for s, run in zip(chosen, settings)
            if (not cfg.train_seeds or run.seed in cfg.train_seeds)
            and run.fold not in CHECK_FOLDS]


def next_screen(steps: list[Run]) -> tuple[str, ...]:
    """The arm the queue's next open screen is paired with, and that screen's arm: the first
    step of an idea `X+Y` on a pooled fold that has no committed record, whose gate holds and
    that distils from no cached targets (they do not travel); () when no screen is open. A GPU
    run trains the pair side by side, since its runs see other pixels and never pool with the
    CPU's."""
    from experiments.fold_table import BASELINE, reference
    from lgcnet_research.train.folds import CHECK_FOLDS

    for step in steps:
        if (step.arm and "+" in step.arm and not step.recorded() and step.gate()
                and step.settings().fold not in CHECK_FOLDS
                and not step.overrides.get("teacher_targets")):
            return reference(step.arm, BASELINE), step.arm
    return ()


def gpu_step(step: Run, **overrides: Any) -> Run:
    """A plan's step as the sprint trains it: the GPU switches, its own overrides, then
    `overrides` (the sprint's data, device, threads and run folder); no milestone is kept."""
    return step._replace(overrides={**GPU_SWITCHES, **step.overrides, **overrides},
                         milestone=False)


def plan(ctx: StageContext) -> TrainPlan:
    """Every run of the plan; ValueError for two runs of one name."""
    from lgcnet_research.train.config import TrainConfig

    planned = plan_steps(ctx.cfg)
    steps = {step.out.name: step for step in planned}
    if len(steps) < len(planned):
        raise ValueError(f"{ctx.cfg.train_plan}: two of its steps write one run folder")
    runs = {name: gpu_step(step).settings().to_dict() for name, step in steps.items()}
    for path in ctx.cfg.train_configs:
        if Path(path).stem in runs:
            raise ValueError(f"two runs named {Path(path).stem}: rename {path}")
        runs[Path(path).stem] = TrainConfig.load(path).to_dict()
    sanity = None
    if ctx.cfg.sanity_config:
        sanity_runs, sanity = sanity_plan(ctx)
        runs.update(sanity_runs)
    if not runs:
        raise StageSkipped("nothing to train: give --train-plan, --train-configs and/or "
                           "--sanity-config")
    return TrainPlan(runs, steps, sanity)


def planned_runs(cfg: SprintConfig) -> int:
    """How many runs the plan of `cfg` has (without drawing the genotypes)."""
    from experiments.sanity import SanityConfig

    sanity = 1 + SanityConfig.load(cfg.sanity_config).n_random if cfg.sanity_config else 0
    return len(plan_steps(cfg)) + len(cfg.train_configs) + sanity


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


def launch(ctx: StageContext, todo: TrainPlan, threads: int) -> dict[str, Any]:
    """Write each run's config.json (the sprint's overrides on top; a fold run's step beside
    it) and start its process."""
    sprint = {"data": str(ctx.data), "device": ctx.device, "threads": threads,
              **(DRY_TRAIN if ctx.dry else {})}
    deadline = ["--deadline", str(ctx.deadline)] if ctx.cfg.train_schedule == "time" else []
    started = {}
    for name, fields in todo.runs.items():
        folder = ctx.scratch / RUNS / name
        folder.mkdir(parents=True, exist_ok=True)
        timed = deadline
        if name in todo.steps:  # the campaign's recipe to its last epoch, and its record
            step = gpu_step(todo.steps[name], **sprint, out=str(folder))
            write_json(folder / FOLD_RUN, {"runs": [step.entry()]}, indent=1)
            fields, timed = step.settings().to_dict(), []
        config = {**fields, **sprint, "out": str(folder), "ship": None}
        (folder / CONFIG).write_text(json.dumps(config, indent=1) + "\n")
        started[name] = jobs.start("experiments.gpu_sprint.trainings",
                                   [str(folder), *timed, "--note", ctx.cfg.note or ""],
                                   folder, threads)
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
    record = write_record(folder) if (folder / FOLD_RUN).is_file() else None
    if record:
        report.update(fold_record={k: record[k] for k in ("arm", "fold", "seed")}
                      | {"miou": record["report"]["miou"], "epoch": record["report"]["epoch"]})
    return report.data


def write_record(folder: Path) -> dict[str, Any] | None:
    """The campaign's fold record of the fold run in `folder` once it reached its last epoch
    (folder/RECORD; None before, or for a step of no arm), its paths named as the campaign's
    are: the run folder as runs/NAME, the carried CamVid relative to the tree."""
    from experiments.campaign import queue, write_fold_record

    (step,) = queue(folder / FOLD_RUN)
    if step.arm is None or not step.done():  # a step of no arm is no row of the table
        return None
    named = {"out": f"{RUNS}/{folder.name}"}
    if data := step.overrides.get("data"):
        carried = Path(data).resolve()
        named["data"] = str(carried.relative_to(REPO) if carried.is_relative_to(REPO)
                            else carried)
    write_fold_record(step, folder / RECORD, step._replace(overrides={**step.overrides, **named}))
    return json.loads((folder / RECORD).read_text())


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


def collect_records(scratch: Path, out: Path, names: list[str]) -> dict[str, Any]:
    """The fold records of the runs `names` that wrote one, as fold_runs/NAME.json, and their
    pooled table (experiments.fold_table) as fold_table/fold_table.md and .json, in
    OUT/FOLD_TAR; what the summary keeps of them ({} when no run wrote a record)."""
    from experiments.fold_table import load_results, write_table

    found = [n for n in names if (scratch / RUNS / n / RECORD).is_file()]
    if not found:
        return {}
    records, table = scratch / "fold_runs", scratch / "fold_table"
    records.mkdir(exist_ok=True)
    for name in found:
        shutil.copyfile(scratch / RUNS / name / RECORD, records / f"{name}.json")
    markdown = write_table(load_results(records), table)
    with tarfile.open(out / FOLD_TAR, "w") as tar:
        tar.add(records, arcname=records.name)
        tar.add(table, arcname=table.name)
    return {"file": FOLD_TAR, "records": found, "markdown": markdown}


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
