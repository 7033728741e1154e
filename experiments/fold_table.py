"""The pooled-fold table of the accuracy campaign: per arm, each seed's folds A and B pooled into
one confusion matrix, the mean over seeds, the seed spread, per-class IoU, and the gain paired
by seed against the arm it builds on, with the campaign's verdict.

    python -m experiments.fold_table --results results/campaign --baseline today \
        --out results/fold_table

Input: one JSON file per finished fold run in --results (the campaign writes them): its arm,
fold, seed, run folder, training config, overrides and command, the `lgcnet folds eval`
command, and that evaluation's report with its held-out confusion matrix. Pooling sums A's and
B's matrices before IoU is taken: A has bicyclists in 14 frames, B fence in 13, so one fold's
IoU of such a class is noise. Fold C (the later half of 0001TP, as CamVid's test split continues
that drive after its training frames) is shown in its own column and left out of the pool: it
overlaps fold B, and it checks whether what fold B costs an arm is the unseen dusk drive or
dusk itself. An arm named `X+Y` (an idea Y added to arm X: `trunk+kd`) is paired against `X`,
so the verdict is on Y; any other arm against the baseline. Arms named
`NAME@L` are the same recipes run to another length L (`trunk@250`, the check of the 80-epoch
proxy's ranking): they form their own group, paired within it (`trunk@250` against
`today@250`) and expected to have that group's seeds. The rule:
adopt when the mean paired gain exceeds twice the seed spread (the larger of the two arms')
over at least 2 paired seeds; drop when a 1-seed screen gains under +2 points, unless its
idea passed its screen on another recipe (`trunk+w16+lovasz` for `trunk+w16+exposure+lovasz`):
then the arm is that idea's confirmation on a later recipe, judged by the 2-seed rule; not
adopted when confirmed seeds do not clear the bar; otherwise undecided. An arm whose records name a
"trade" gives accuracy up for something else (a faster genotype: "latency"): it is judged by
what it costs, kept while its mean paired loss is under 1 point. The teachers' arms (`teacher`,
`teacher-NAME`) are shown, not paired. Beside the pooled verdicts, each paired arm's gain on
each fold at every epoch both runs were evaluated (the records' curves): whether a gain is
still moving when the 80-epoch proxy stops. Writes fold_table.md and fold_table.json to --out
and prints the markdown; and per fold, from the records' curves, fold_curves_<fold>.png
(held-out mIoU by epoch) and fold_class_curves_<fold>.png (held-out IoU by epoch, a panel per
class).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from operator import itemgetter
from pathlib import Path
from typing import Any

import numpy as np

from lgcnet_deploy.core.classes import CAMVID
from lgcnet_deploy.core.errors import BadInputError, LgcnetError, MissingFileError, damaged
from lgcnet_deploy.core.metrics import ConfusionMatrix
from lgcnet_research.train.folds import FOLDS, POOLED_FOLDS

KEYS = ("arm", "fold", "seed", "run", "config", "overrides", "command", "eval_command", "report")
SHOWN = ("pole", "sign", "fence", "pedestrian", "bicyclist")  # the classes the campaign watches
BASELINE = "today"  # the arm the others are paired against, unless X+Y (against X)
TEACHER = "teacher"  # shown beside the students, compared with none (so is "teacher-NAME")
SCREEN_DROP = 0.02  # a 1-seed screen that gains less than this (2 points) is dropped
CONFIRM_SEEDS = 2  # paired seeds needed before an arm is adopted
COST_TOLERANCE = 0.01  # an arm that trades accuracy for something else may cost up to 1 point
RULE = (f"adopt: mean paired gain > 2 × the larger seed spread over ≥ {CONFIRM_SEEDS} paired "
        f"seeds, else not adopted; drop: a 1-seed screen gains < +{100 * SCREEN_DROP:g} points, "
        f"unless its idea (Y of X+Y) passed its screen on another recipe, which it then "
        f"confirms; otherwise undecided; an arm that trades accuracy for something else: keep "
        f"while the mean paired loss is < {100 * COST_TOLERANCE:g} point, else costs")


@dataclass
class FoldRun:
    """One finished fold run: its result file, the file's record, its confusion matrix."""

    source: Path
    record: dict[str, Any]
    confusion: np.ndarray

    @property
    def key(self) -> tuple[str, int, str]:
        return self.record["arm"], self.record["seed"], self.record["fold"]


def scores(confusion: np.ndarray) -> tuple[float, list[float | None]]:
    """mIoU and per-class IoU (None: a class neither labelled nor predicted), by the SDK's
    ConfusionMatrix, the one definition of IoU."""
    cm = ConfusionMatrix(CAMVID.num_classes, CAMVID.ignore_index)
    cm.matrix = confusion
    return cm.miou(), [None if np.isnan(v) else float(v) for v in cm.iou()]


def check_confusion(path: Path, confusion: Any) -> np.ndarray:
    """The report's confusion matrix as an array; BadInputError unless it is C x C
    non-negative pixel counts with at least one pixel."""
    n = CAMVID.num_classes
    try:
        matrix = np.asarray(confusion)
    except ValueError:  # ragged rows
        matrix = np.zeros(0)
    if matrix.shape != (n, n) or matrix.dtype.kind not in "iu" or (matrix < 0).any() \
            or not matrix.sum():
        raise BadInputError(f"{path}: report.confusion must be {n}x{n} pixel counts (rows the "
                            f"label's class, columns the prediction's, void left out), got "
                            f"shape {matrix.shape} of {matrix.dtype}; re-run its eval_command")
    return matrix.astype(np.int64)


def read_result(path: Path) -> FoldRun:
    """One fold run's result file, checked; BadInputError naming the file and the fault."""
    try:
        record = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise damaged(path, "fold result", e, fix="remove it or let the campaign write it "
                                                  "again") from None
    if not isinstance(record, dict):
        raise BadInputError(f"{path}: a fold result is a JSON object with keys {', '.join(KEYS)}")
    missing = [k for k in KEYS if k not in record]
    if missing:
        raise BadInputError(f"{path}: missing key(s) {', '.join(missing)}")
    arm, fold, seed, report = (record[k] for k in ("arm", "fold", "seed", "report"))
    if not isinstance(arm, str) or not arm:
        raise BadInputError(f"{path}: arm {arm!r} is not a name")
    if fold not in FOLDS:
        raise BadInputError(f"{path}: fold {fold!r}, expected one of {', '.join(FOLDS)}")
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise BadInputError(f"{path}: seed {seed!r} is not an integer")
    if not isinstance(record.get("trade", ""), str):
        raise BadInputError(f"{path}: trade {record['trade']!r} is not a word (\"latency\")")
    if not isinstance(report, dict) or "confusion" not in report:
        raise BadInputError(f"{path}: report has no confusion matrix; re-run its eval_command")
    if report.get("fold", fold) != fold:
        raise BadInputError(f"{path}: fold {fold} but its report is fold {report['fold']}")
    return FoldRun(path, record, check_confusion(path, report["confusion"]))


def load_results(folder: Path) -> list[FoldRun]:
    """Every fold result (*.json) in `folder`; BadInputError for a second file of the same arm,
    fold and seed."""
    if not folder.is_dir():
        raise MissingFileError(f"{folder}: no such folder of fold results")
    runs: dict[tuple[str, int, str], FoldRun] = {}
    for path in sorted(folder.glob("*.json")):
        run = read_result(path)
        if run.key in runs:
            arm, seed, fold = run.key
            raise BadInputError(f"{path}: arm {arm} fold {fold} seed {seed} again (also "
                                f"{runs[run.key].source}); keep one")
        runs[run.key] = run
    if not runs:
        raise BadInputError(f"{folder}: no fold result (*.json) in it")
    return list(runs.values())


def mean(values: list[float | None]) -> float | None:
    """The mean of the values that exist (None when none does)."""
    there = [v for v in values if v is not None]
    return float(np.mean(there)) if there else None


def fold_entry(run: FoldRun) -> dict[str, Any]:
    """What the table keeps of one fold run: its own held-out mIoU and how it was made."""
    report = run.record["report"]
    return {"miou": scores(run.confusion)[0], "epoch": report.get("epoch"),
            "epochs_planned": report.get("epochs_planned"), "result": str(run.source),
            **{k: run.record[k] for k in ("run", "config", "overrides", "command",
                                          "eval_command")}}


def seed_row(seed: int, folds: dict[str, FoldRun]) -> dict[str, Any]:
    """One seed of an arm: its folds' runs and, when it has folds A and B, the pooled IoU."""
    missing = [f"fold {f} missing" for f in POOLED_FOLDS if f not in folds]
    row: dict[str, Any] = {"seed": seed, "missing": missing, "miou": None,
                           "per_class_iou": None, "gain": None,
                           "folds": {f: fold_entry(folds[f]) for f in FOLDS if f in folds}}
    if not missing:
        miou, iou = scores(sum(folds[f].confusion for f in POOLED_FOLDS))
        row.update(miou=miou, per_class_iou=dict(zip(CAMVID.classes, iou)))
    return row


def trade(arm: str, runs: list[FoldRun]) -> str | None:
    """What the arm's runs give accuracy up for (None: nothing); BadInputError when they
    disagree."""
    trades = {r.record.get("trade") for r in runs}
    if len(trades) > 1:
        raise BadInputError(f"arm {arm}: its records name different trades ("
                            + ", ".join(sorted(map(str, trades))) + "); an arm is one question")
    return trades.pop() if trades else None


def arm_summary(arm: str, runs: list[FoldRun], expected: set[int]) -> dict[str, Any]:
    """An arm over its seeds: mean pooled mIoU and per-class IoU, the seed spread (max - min
    pooled mIoU, from 2 seeds on), each fold's mean mIoU over the seeds that ran it, the epochs
    its runs reached, what is missing (a fold, or a seed of `expected`), its trade."""
    seeds = sorted({r.key[1] for r in runs})
    rows = [seed_row(s, {r.key[2]: r for r in runs if r.key[1] == s}) for s in seeds]
    pooled = [r for r in rows if r["miou"] is not None]
    mious = [r["miou"] for r in pooled]
    return {
        "arm": arm, "trade": trade(arm, runs), "seeds_pooled": len(pooled),
        "miou": mean(mious), "spread": max(mious) - min(mious) if len(mious) > 1 else None,
        "fold_miou": {f: mean([r["folds"][f]["miou"] for r in rows if f in r["folds"]])
                      for f in FOLDS},
        "per_class_iou": {c: mean([r["per_class_iou"][c] for r in pooled])
                          for c in CAMVID.classes} if pooled else None,
        "epochs": sorted({e["epoch"] for r in rows for e in r["folds"].values()
                          if e["epoch"] is not None}),
        "missing": [f"seed {s} missing" for s in sorted(expected - set(seeds))]
        + [f"seed {r['seed']}: {m}" for r in rows for m in r["missing"]],
        "against": None, "mean_gain": None, "verdict": None, "reason": None, "seeds": rows}


def verdict(gains: list[float], spread: float | None) -> tuple[str, str]:
    """The campaign's rule on an arm's paired gains and the larger seed spread of the pair."""
    if not gains:
        return "undecided", "no paired seed"
    gain = float(np.mean(gains))
    if len(gains) == 1:
        return ("drop", "1 seed, < +2") if gain < SCREEN_DROP else ("undecided", "1 seed")
    if len(gains) < CONFIRM_SEEDS:
        return "undecided", f"{len(gains)} seeds"
    if spread is not None and gain > 2 * spread:
        return "adopt", "gain > 2×spread"
    return "not adopted", "gain ≤ 2×spread"  # the confirmation was run: a decision


def cost_verdict(gains: list[float]) -> tuple[str, str]:
    """The rule for an arm that gives accuracy up for something else, on its paired gains."""
    if not gains:
        return "undecided", "no paired seed"
    seeds = f"{len(gains)} seed{'s' * (len(gains) != 1)}"
    if float(np.mean(gains)) < -COST_TOLERANCE:
        return "costs", f"{seeds}, loss ≥ {100 * COST_TOLERANCE:g} point"
    return "keep", f"{seeds}, loss < {100 * COST_TOLERANCE:g} point"


def group(arm: str) -> str:
    """The length group of an arm: "@L" for `NAME@L`, "" for the others."""
    return arm[arm.index("@"):] if "@" in arm else ""


def reference(arm: str, baseline: str) -> str:
    """The arm `arm` is paired against, in its length group: X for `X+Y` (the idea Y added
    to X), else the baseline."""
    name = arm.removesuffix(group(arm))
    return (name.rsplit("+", 1)[0] if "+" in name else baseline) + group(arm)


def pair(arm: dict[str, Any], base: dict[str, Any] | None) -> None:
    """Fill in `arm`'s gain per seed against `base` (the same seed), their mean, the verdict."""
    base_miou = {r["seed"]: r["miou"] for r in (base or {}).get("seeds", [])
                 if r["miou"] is not None}
    for row in arm["seeds"]:
        if row["miou"] is not None and row["seed"] in base_miou:
            row["gain"] = row["miou"] - base_miou[row["seed"]]
    gains = [r["gain"] for r in arm["seeds"] if r["gain"] is not None]
    spreads = [s for s in (arm["spread"], (base or {}).get("spread")) if s is not None]
    arm["mean_gain"] = mean(gains)
    arm["verdict"], arm["reason"] = cost_verdict(gains) if arm["trade"] else verdict(
        gains, max(spreads) if spreads else None)


def idea(arm: str) -> str | None:
    """The idea an `X+Y` arm adds (Y), None for an arm that adds none."""
    name = arm.removesuffix(group(arm))
    return name.rsplit("+", 1)[1] if "+" in name else None


def screen_passed_as(arm: str, arms: dict[str, dict[str, Any]]) -> str | None:
    """Another arm of the same length group that added `arm`'s idea to another recipe and
    passed its screen (or was adopted): then `arm`, the idea on a later recipe, is that idea's
    confirmation, not a screen of its own. None when there is no such arm."""
    for name, other in arms.items():
        if (name != arm and idea(name) == idea(arm) is not None and group(name) == group(arm)
                and not other["trade"] and (other["verdict"] == "adopt" or (
                    other["verdict"] == "undecided" and other["reason"] == "1 seed"))):
            return name
    return None


def is_teacher(arm: str) -> bool:
    """Whether `arm` is a teacher's: `teacher`, or a named one such as `teacher-lite2`."""
    return arm == TEACHER or arm.startswith(TEACHER + "-")


def length(arm: dict[str, Any]) -> str:
    """The epochs an arm's runs reached ("60", or "60/40" when they differ)."""
    return "/".join(map(str, arm["epochs"])) or "?"


def build(runs: list[FoldRun], baseline: str) -> dict[str, Any]:
    """The whole table: every arm (the baseline first, the teachers last), each other arm
    paired against its reference."""
    names = sorted({r.key[0] for r in runs},
                   key=lambda a: (group(a), a.removesuffix(group(a)) != baseline, is_teacher(a), a))
    seeds = {g: {r.key[1] for r in runs if not is_teacher(r.key[0]) and group(r.key[0]) == g}
             for g in map(group, names)}  # what every student arm of a group should have
    arms = {a: arm_summary(a, [r for r in runs if r.key[0] == a],
                           set() if is_teacher(a) else seeds[group(a)]) for a in names}
    for name, arm in arms.items():
        if not is_teacher(name) and reference(name, baseline) != name:
            arm["against"] = reference(name, baseline)
            pair(arm, arms.get(arm["against"]))
    for name, arm in arms.items():
        if arm["verdict"] == "drop" and (passed := screen_passed_as(name, arms)):
            arm["verdict"], arm["reason"] = "undecided", f"1 seed; confirms `{passed}`'s screen"
    notes = [] if baseline in arms else [
        f"no result of the baseline arm {baseline!r} (arms: {', '.join(names)}): nothing "
        f"is paired"]
    unequal = [f"{a} {length(arm)} against {arm['against']} {length(arms[arm['against']])}"
               for a, arm in arms.items() if arm["against"] in arms
               and length(arm) != length(arms[arm["against"]])]
    if unequal:
        notes.append("paired arms ran different lengths (epochs: " + ", ".join(unequal)
                     + "): compare at equal length")
    return {"baseline": baseline, "classes": list(CAMVID.classes), "rule": RULE,
            "arms": list(arms.values()), "gain_curves": gain_curves(runs, arms), "notes": notes}


def gain_curves(runs: list[FoldRun], arms: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Per paired arm, seed and fold: its held-out mIoU minus its reference's, same seed and
    fold, at each epoch both runs were evaluated ([epoch, gain]; the records' curves)."""
    curves = {r.key: dict(r.record.get("curve") or []) for r in runs}
    rows = []
    for (name, seed, fold), points in sorted(curves.items()):
        against = arms[name]["against"]
        base = curves.get((against, seed, fold), {})
        shared = sorted(set(points) & set(base))
        if shared:
            rows.append({"arm": name, "against": against, "seed": seed, "fold": fold,
                         "gain": [[e, points[e] - base[e]] for e in shared]})
    return rows


def gain_curve_row(row: dict[str, Any]) -> str:
    """A row of the gain-by-epoch table."""
    said = ", ".join(f"{e}: {pct(g, 1, '+')}" for e, g in row["gain"])
    return (f"| `{row['arm']}` | `{row['against']}` | {row['seed']} | {row['fold']} "
            f"| {said} |")


def pct(value: float | None, digits: int = 1, sign: str = "") -> str:
    """A fraction as percent (points), "–" when there is none."""
    return "–" if value is None else f"{100 * value:{sign}.{digits}f}"


def main_row(arm: dict[str, Any]) -> str:
    """An arm's row of the main table."""
    n = arm["seeds_pooled"]
    spread = f"{pct(arm['spread'], 2)} ({n} seed{'s' * (n != 1)})"
    iou = arm["per_class_iou"] or {}
    if arm["against"] is None:  # its group's baseline, or a teacher
        gain, said = "–", "not paired" if is_teacher(arm["arm"]) else "baseline"
    else:
        paired = sum(r["gain"] is not None for r in arm["seeds"])
        gain = f"{pct(arm['mean_gain'], 2, '+')} vs `{arm['against']}` ({paired} paired)"
        said = f"{arm['verdict']} ({arm['trade'] + ': ' if arm['trade'] else ''}{arm['reason']})"
    cells = [f"`{arm['arm']}`", length(arm), pct(arm["miou"], 2), spread,
             *(pct(arm["fold_miou"][f], 2) for f in FOLDS),
             *(pct(iou.get(c)) for c in SHOWN), gain, said, "; ".join(arm["missing"])]
    return "| " + " | ".join(cells) + " |"


def class_row(arm: dict[str, Any]) -> str:
    """An arm's row of the every-class table."""
    iou = arm["per_class_iou"] or {}
    cells = [f"`{arm['arm']}`", *(pct(iou.get(c)) for c in CAMVID.classes), pct(arm["miou"], 2)]
    return "| " + " | ".join(cells) + " |"


def code(text: str) -> str:
    """A command as markdown code inside a table cell."""
    return "`" + str(text).replace("|", "\\|") + "`"


def run_rows(arm: dict[str, Any]) -> list[str]:
    """An arm's rows of the commands table: one per fold run."""
    rows = []
    for row in arm["seeds"]:
        for fold, entry in row["folds"].items():
            rows.append(f"| `{arm['arm']}` | {row['seed']} | {fold} | {pct(entry['miou'], 2)} "
                        f"| {pct(row['miou'], 2)} | {pct(row['gain'], 2, '+')} "
                        f"| {entry['epoch'] or '?'} | {code(entry['command'])} "
                        f"| {code(entry['eval_command'])} |")
    return rows


def markdown(table: dict[str, Any]) -> str:
    """The table as markdown: main table, every class, every run with its commands, notes."""
    base, arms = table["baseline"], table["arms"]
    lines = [
        "# Pooled folds A+B", "",
        f"Per run, the held-out confusion matrices of folds A and B summed, IoU from the sum; "
        f"per arm the mean over seeds (fold A, B, C: each fold's mean mIoU; C, a check, is not "
        f"pooled), spread = max − min pooled mIoU over seeds; gain = pooled mIoU minus that of "
        f"the arm it is paired against, same seed, in points (`X+Y` against `X`, the others "
        f"against `{base}`; in a length group `NAME@L`, the same within the group). Rule: "
        f"{table['rule']}.", "",
        f"| arm | epochs | mIoU % | spread | {' | '.join(f'fold {f}' for f in FOLDS)} | "
        f"{' | '.join(SHOWN)} | paired gain | verdict | missing |",
        "|---|---:|---:|---:|" + "---:|" * (len(FOLDS) + len(SHOWN)) + "---:|---|---|",
        *(main_row(arm) for arm in arms), "",
        "## Every class (pooled IoU %, mean over seeds)", "",
        f"| arm | {' | '.join(CAMVID.classes)} | mIoU |",
        "|---|" + "---:|" * (len(CAMVID.classes) + 1),
        *(class_row(arm) for arm in arms), "",
        "## Runs and their commands", "",
        "| arm | seed | fold | fold mIoU % | pooled mIoU % | paired gain | epoch | "
        "training | evaluation |",
        "|---|---:|---|---:|---:|---:|---:|---|---|",
        *(row for arm in arms for row in run_rows(arm))]
    if table["gain_curves"]:
        lines += ["", "## Paired gain by epoch (one fold, one seed; points)", "",
                  "| arm | against | seed | fold | gain at each epoch both runs were evaluated |",
                  "|---|---|---:|---|---|", *map(gain_curve_row, table["gain_curves"])]
    if table["notes"]:
        lines += ["", *(f"Note: {n}." for n in table["notes"])]
    return "\n".join(lines)


def write_table(runs: list[FoldRun], out: Path, baseline: str = BASELINE) -> str:
    """The table of the fold runs `runs` (`load_results`) as out/fold_table.md and .json;
    returns the markdown."""
    table = build(runs, baseline)
    text = markdown(table)
    out.mkdir(parents=True, exist_ok=True)
    (out / "fold_table.md").write_text(text + "\n")
    (out / "fold_table.json").write_text(json.dumps(table, indent=1) + "\n")
    return text


def curve_runs(runs: list[FoldRun], fold: str, curve: str) -> list[FoldRun]:
    """The runs of `fold` whose records have `curve` ("curve", "class_curve"), in arm and seed
    order."""
    return [r for r in sorted(runs, key=lambda r: r.key) if r.key[2] == fold
            and r.record.get(curve)]


def curve_line(run: FoldRun, curve: str, pick: Callable[[Any], float] = lambda v: v
               ) -> tuple[str, list[float], list[float]]:
    """One run's line of its record's `curve` ([epoch, value] pairs; `pick` reads the value):
    (arm and seed, epochs, values)."""
    points = run.record[curve]
    return (f"{run.key[0]} (seed {run.key[1]})", [e for e, _ in points],
            [pick(v) for _, v in points])


def plot_fold_curves(runs: list[FoldRun], out: Path) -> list[Path]:
    """Per fold, out/fold_curves_<fold>.png: each run's held-out mIoU at its evaluations (the
    records' `curve`), one line per arm and seed; where a recipe ends against how it starts."""
    from lgcnet_research.base.plots import plot_val_lines

    written = []
    for fold in FOLDS:
        lines = [curve_line(r, "curve") for r in curve_runs(runs, fold, "curve")]
        if lines:
            written.append(plot_val_lines(
                lines, out / f"fold_curves_{fold.lower()}.png", xlabel="epoch", size=(7, 4),
                ylabel="held-out mIoU %", title=f"fold {fold}, holding out {FOLDS[fold]}"))
    return written


def plot_class_curves(runs: list[FoldRun], out: Path) -> list[Path]:
    """Per fold, out/fold_class_curves_<fold>.png: each class's held-out IoU at each
    evaluation (the records' `class_curve`), a panel per class and mIoU, one line per arm and
    seed; which class a recipe gains or loses as it trains (fold B's dusk sky, say)."""
    from lgcnet_research.base.plots import plot_val_grid

    written = []
    for fold in FOLDS:
        shown = curve_runs(runs, fold, "class_curve")
        if not shown:
            continue
        panels = {name: [curve_line(r, "class_curve", itemgetter(c)) for r in shown]
                  for c, name in enumerate(CAMVID.classes)}
        panels["mIoU"] = [curve_line(r, "curve") for r in shown]
        written.append(plot_val_grid(
            panels, out / f"fold_class_curves_{fold.lower()}.png", xlabel="epoch",
            title=f"fold {fold}: held-out IoU % per class, holding out {FOLDS[fold]}"))
    return written


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m experiments.fold_table", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--results", type=Path, default=Path("results/campaign"),
                   help="folder of fold results, one JSON per finished fold run")
    p.add_argument("--baseline", default=BASELINE,
                   help="the arm others are paired against (X+Y is paired against X)")
    p.add_argument("--out", type=Path, default=Path("results/fold_table"))
    args = p.parse_args(argv)
    try:
        runs = load_results(args.results)
        print(write_table(runs, args.out, args.baseline))
        plot_fold_curves(runs, args.out)
        plot_class_curves(runs, args.out)
    except LgcnetError as e:
        print(f"fold_table: error: {e}", file=sys.stderr)
        return e.exit_code
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
