"""What normalising the exposure at evaluation does for fold runs trained without it: every
finished fold run of the campaign scored again on its held-out drive with its frames brightened
to a mean luminance (`lgcnet_deploy.core.exposure`), folds A and B pooled per arm and seed as
the fold table pools them, against the campaign's own evaluation of the same weights.

    python -m experiments.exposure --results results/campaign --target 0.45 \
        --out results/exposure

Fold B holds out a dusk drive (0001TP) that no other drive resembles; fold A a daylight one.
Each run's report goes to --out as fold_<a|b>_<run>.json (`lgcnet folds eval CHECKPOINT
--fold F --exposure-target T --json ...` writes the same); a report already there for the same
checkpoint and target is read, not recomputed. Writes exposure.md and exposure.json.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from experiments.fold_table import FoldRun, check_confusion, is_teacher, load_results, scores
from lgcnet_deploy.core.classes import CAMVID
from lgcnet_deploy.core.errors import EXIT_USER_INPUT, LgcnetError
from lgcnet_deploy.core.exposure import check_target
from lgcnet_research.train.fold_eval import evaluate_fold
from lgcnet_research.train.folds import POOLED_FOLDS

SHOWN = ("sky", "building", "tree", "pole", "sign", "fence", "pedestrian", "bicyclist")


def exposed_confusion(run: FoldRun, target: float, out: Path, threads: int | None
                      ) -> np.ndarray:
    """The held-out confusion matrix of `run`'s checkpoint with its frames brightened to
    `target`: read from its report in `out` when one of that checkpoint and target is there."""
    checkpoint = Path(run.record["run"]) / "last.pt"
    dest = out / Path(run.record["run"]).with_suffix(".json").name
    if dest.is_file():
        report = json.loads(dest.read_text())
        if report.get("checkpoint") == str(checkpoint) \
                and report.get("exposure_target") == target:
            return check_confusion(dest, report["confusion"])
    report = evaluate_fold(checkpoint, run.record["fold"], threads=threads,
                           exposure_target=target)
    dest.write_text(json.dumps(asdict(report), indent=2) + "\n")
    return check_confusion(dest, report.confusion)


def pooled_rows(runs: list[FoldRun], target: float, out: Path, threads: int | None
                ) -> list[dict[str, Any]]:
    """Per arm and seed with both folds: pooled mIoU and per-class IoU as evaluated, and with
    the frames brightened; the teacher's arm included."""
    by_key: dict[tuple[str, int], dict[str, FoldRun]] = {}
    for run in runs:
        arm, seed, fold = run.key
        by_key.setdefault((arm, seed), {})[fold] = run
    rows = []
    for (arm, seed), every_fold in sorted(by_key.items()):
        folds = {f: every_fold[f] for f in POOLED_FOLDS if f in every_fold}
        if len(folds) < len(POOLED_FOLDS):
            continue
        as_run = sum(r.confusion for r in folds.values())
        exposed = {f: exposed_confusion(r, target, out, threads) for f, r in sorted(folds.items())}
        rows.append({"arm": arm, "seed": seed,
                     "as_run": _scored(as_run),
                     "exposed": _scored(sum(exposed.values())),
                     "fold_as_run": {f: 100 * scores(r.confusion)[0] for f, r in folds.items()},
                     "fold_exposed": {f: 100 * scores(c)[0] for f, c in exposed.items()}})
    return rows


def _scored(confusion: np.ndarray) -> dict[str, float]:
    miou, iou = scores(confusion)
    return {"miou": 100 * miou,
            **{c: 100 * (v or 0.0) for c, v in zip(CAMVID.classes, iou)}}


def markdown(rows: list[dict[str, Any]], target: float) -> str:
    head = ("| arm | seed | fold A | fold B | pooled | with exposure | gain | "
            + " | ".join(SHOWN) + " |")
    lines = [f"# Exposure normalised to mean luminance {target:g} at evaluation", "",
             "Fold mIoU % as evaluated → with the held-out frames brightened; pooled A+B; per "
             "class the change in pooled IoU, points.", "", head,
             "|" + "---|" * 2 + "---:|" * (5 + len(SHOWN))]
    for r in rows:
        folds = [f"{r['fold_as_run'][f]:.2f} → {r['fold_exposed'][f]:.2f}" for f in "AB"]
        gain = r["exposed"]["miou"] - r["as_run"]["miou"]
        classes = [f"{r['exposed'][c] - r['as_run'][c]:+.1f}" for c in SHOWN]
        arm = f"`{r['arm']}`" + (" (teacher)" if is_teacher(r["arm"]) else "")
        lines.append(f"| {arm} | {r['seed']} | {' | '.join(folds)} | {r['as_run']['miou']:.2f} | "
                     f"{r['exposed']['miou']:.2f} | {gain:+.2f} | {' | '.join(classes)} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m experiments.exposure", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--results", type=Path, default=Path("results/campaign"),
                   help="the campaign's fold results")
    p.add_argument("--target", type=float, default=0.45, help="mean luminance, 0-1")
    p.add_argument("--out", type=Path, default=Path("results/exposure"))
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = p.parse_args(argv)
    try:
        target = check_target(args.target)
        args.out.mkdir(parents=True, exist_ok=True)
        rows = pooled_rows(load_results(args.results), target, args.out, args.threads)
    except (LgcnetError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USER_INPUT
    table = markdown(rows, target)
    (args.out / "exposure.md").write_text(table)
    (args.out / "exposure.json").write_text(json.dumps(
        {"target": target, "results": str(args.results), "rows": rows}, indent=1) + "\n")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
