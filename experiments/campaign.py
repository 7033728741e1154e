"""The accuracy campaign's long runs, one after another, each resumed where it stopped.

    python -m experiments.campaign              # run the queue (in the background, with a log)
    python -m experiments.campaign --status     # where each run stands
    python -m experiments.campaign --snapshot   # keep the unfinished runs' state, to commit

The queue (experiments/configs/campaign.json) lists its steps in the order they should run:
the teachers, their cached targets, then the students that distil from them, a screen before
its confirmation. A training step is a config's path, or {"config": path, FIELD: value, ...}
for the same recipe with scalar fields changed (another seed and its own `out`, say); a
training whose `last.pt` holds its last epoch is skipped, one that stopped part-way is
continued with `--resume` (bit-exact: batches are a function of seed, epoch and frame). A
targets step, {"targets": {"teacher": ckpt, "fold": "A", "out": folder}}, caches a trained
teacher's soft targets for a fold's training frames (frames already cached are kept). A
training step may wait on the pooled-fold table's verdict on an arm: with "if_adopted": ARM it
runs only once ARM is adopted, with "unless_adopted": ARM only once ARM is judged and not
adopted (or dropped), with "if_screened": ARM only once ARM's one-seed screen on both folds has
passed (a confirmation's second seed, queued with the screen), and while the verdict is not
in, the steps after it go first (the shipped run that takes an idea only if its confirmation
adopts it). Each step writes its log in its output folder (log.txt). Between steps the
campaign goes on in a fresh interpreter and reads the queue afresh, so an edit to the queue or
to the code (a new training setting, say) takes effect when the running step ends.

What outlives the run folders, to be committed: a finished fold run named by an "arm" is scored
on the drive its fold held out, and its report (per-class IoU, confusion matrix, the commands
that made it) is written to results/campaign/OUT.json, which `python -m
experiments.fold_table` pools (an arm that gives up accuracy for something else, named by the
step's "trade", e.g. "latency", is judged by what it costs, not by what it gains); a step
marked "milestone" (a teacher, the shipped run) leaves its finished weights in
experiments/milestones/OUT.pt (fp16, no optimizer state), from which a new checkout
restores the step instead of training it again; a fold run whose record is there counts as
done, so a new checkout starts with the runs that have no result yet (and caches no targets
that only such recorded runs read). A run stopped part-way outlives its folder through
`--snapshot`: its whole last.pt (optimizer state and raw weights too, so the resume is
bit-exact) copied to experiments/milestones/OUT.resume.pt, which a new checkout resumes from
and which is deleted when the run finishes.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any, NamedTuple

import torch

from experiments.fold_table import BASELINE, build, load_results
from lgcnet_deploy.core.errors import EXIT_USER_INPUT, BadInputError, LgcnetError
from lgcnet_deploy.model.checkpoint import read_checkpoint
from lgcnet_research.train.config import TrainConfig
from lgcnet_research.train.fold_eval import load_net, score_fold
from lgcnet_research.train.folds import FOLDS, fold_frames
from lgcnet_research.train.peer import read_peer_checkpoint
from lgcnet_research.train.targets import manifest_current

QUEUE = Path(__file__).parent / "configs" / "campaign.json"
RESULTS = Path("results/campaign")
MILESTONES = Path(__file__).parent / "milestones"
DECIDED = {"adopt": True, "not adopted": False, "drop": False}  # verdicts a gate can act on


def verdict_of(arm: str) -> tuple[str, str] | None:
    """The pooled-fold table's verdict on `arm` and its reason, from the records in RESULTS
    (None: no record of it yet)."""
    runs = load_results(RESULTS) if any(RESULTS.glob("*.json")) else []  # none yet: no verdict
    arms = {a["arm"]: a for a in build(runs, BASELINE)["arms"]}
    return (arms[arm]["verdict"], arms[arm]["reason"]) if arm in arms else None


def adopted(verdict: str, reason: str) -> bool | None:
    """Whether an arm with this verdict is adopted; None while that is not decided."""
    return DECIDED.get(verdict)


def not_adopted(verdict: str, reason: str) -> bool | None:
    """Whether an arm with this verdict was judged and not adopted (or dropped)."""
    return None if verdict not in DECIDED else not DECIDED[verdict]


def screened(verdict: str, reason: str) -> bool | None:
    """Whether an arm passed its one-seed screen: False once it is dropped (or, giving accuracy
    up for something else, costs too much), None before both folds of a seed are in."""
    if verdict in ("drop", "costs"):
        return False
    return None if reason == "no paired seed" else True


class Gate(NamedTuple):
    """A condition a step may wait on: how it reads after the arm's name, and its rule on the
    arm's verdict and reason (True: run, False: pass over, None: not decided yet)."""

    said: str
    rule: Callable[[str, str], bool | None]


GATES = {"if_adopted": Gate("is adopted", adopted),
         "unless_adopted": Gate("is not adopted", not_adopted),
         "if_screened": Gate("passes its screen", screened)}


def history(cfg: TrainConfig) -> list[dict[str, Any]]:
    """A run's per-epoch records, from its last.pt; [] before it."""
    last = Path(cfg.out) / "last.pt"
    if not last.is_file():
        return []
    read = read_checkpoint if cfg.model == "lgcnet" else read_peer_checkpoint
    return read(last)["train_state"]["history"]


def progress(epochs: list[dict[str, Any]]) -> tuple[int, float | None]:
    """(epochs done, the latest val mIoU) of a run's `history`; (0, None) before it."""
    seen = [h["val_miou"] for h in epochs if "val_miou" in h]
    return (epochs[-1]["epoch"] if epochs else 0), (seen[-1] if seen else None)


def time_left(epochs: list[dict[str, Any]], cfg: TrainConfig, recent: int = 10) -> str:
    """', about 2.5 h left at 45 s an epoch' for a run of `cfg` part-way (its `history`); ''
    otherwise. Epochs are priced at the median seconds of the last `recent` of their phase:
    crop epochs, then the `finish_epochs` on full frames, which before they start are priced
    at the crop epochs' median times the finish crop's pixels per crop pixel (measured
    1.8-2.3x for a 2.1x ratio)."""
    if not epochs or epochs[-1]["epoch"] >= cfg.epochs:
        return ""
    first_finish = max(1, cfg.epochs - cfg.finish_epochs + 1)  # history counts from 1
    crop_s = _median_seconds([h for h in epochs if h["epoch"] < first_finish], recent)
    finish_s = _median_seconds([h for h in epochs if h["epoch"] >= first_finish], recent)
    if finish_s is None and crop_s is not None:
        finish_s = crop_s * math.prod(cfg.finish_crop) / math.prod(cfg.crop)
    done = epochs[-1]["epoch"]
    crop_left = max(0, first_finish - 1 - done)
    now_s = crop_s if crop_left else finish_s
    if now_s is None or finish_s is None:
        return ""  # no epoch of the run says how long it took
    left = crop_left * now_s + (cfg.epochs - done - crop_left) * finish_s
    said = f"{left / 3600:.1f} h" if left >= 3600 else f"{left / 60:.0f} min"
    return f", about {said} left at {now_s:.0f} s an epoch"


def _median_seconds(epochs: list[dict[str, Any]], recent: int) -> float | None:
    timed = [h["seconds"] for h in epochs[-recent:] if "seconds" in h]
    return statistics.median_high(timed) if timed else None


class Run(NamedTuple):
    """A training step: a config file, the scalar fields it changes, the arm of the fold table
    it is a run of (None: not a fold run), whether its weights are kept as a milestone, what
    the arm gives accuracy up for (None: it is meant to gain accuracy) and the verdict it
    waits on ((arm, key of GATES), e.g. ("x", "if_adopted"): it runs only if arm x is
    adopted; None: it always runs)."""

    config: Path
    overrides: dict[str, Any]
    arm: str | None = None
    milestone: bool = False
    trade: str | None = None
    condition: tuple[str, str] | None = None

    def gate(self) -> bool | None:
        """Whether the step's condition holds (True for a step without one); None while the
        verdict it waits on is not in."""
        if self.condition is None:
            return True
        arm, key = self.condition
        said = verdict_of(arm)
        return None if said is None else GATES[key].rule(*said)

    def settings(self) -> TrainConfig:
        return TrainConfig.load(self.config, **self.overrides)

    @property
    def out(self) -> Path:
        return Path(self.settings().out)

    @property
    def record_path(self) -> Path:
        return RESULTS / f"{self.out.name}.json"

    def recorded(self) -> bool:
        """A fold run whose record is committed is finished, even where its folder is not on
        this machine: a new checkout goes on with the runs that have no result yet."""
        return self.arm is not None and self.record_path.is_file()

    def finished(self) -> bool:
        """Trained to its last epoch (or recorded as such)."""
        cfg = self.settings()
        return self.recorded() or progress(history(cfg))[0] >= cfg.epochs

    def done(self) -> bool:
        """Finished, or passed over for good (its condition judged false)."""
        return self.finished() or self.gate() is False

    def entry(self) -> dict[str, Any]:
        """The step as an entry of a queue file (what `queue` reads back as this step)."""
        arm, key = self.condition or (None, "if_adopted")
        marks = {"arm": self.arm, "milestone": self.milestone or None, "trade": self.trade,
                 key: arm}
        return {"config": str(self.config), **{k: v for k, v in marks.items() if v},
                **self.overrides}

    def command(self) -> list[str]:
        changed = [arg for k, v in self.overrides.items() for arg in flag(k, v)]
        return ["lgcnet_research.train", "--config", str(self.config), *changed, "--resume"]

    @property
    def milestone_path(self) -> Path:
        return MILESTONES / f"{self.out.name}.pt"

    @property
    def snapshot_path(self) -> Path:
        return MILESTONES / f"{self.out.name}.resume.pt"

    def restore(self) -> Path | None:
        """Put the step's milestone, or else its snapshot, in place of a missing run folder;
        the file it restored from, if any."""
        last = self.out / "last.pt"
        kept = [p for p in [*([self.milestone_path] if self.milestone else []),
                            self.snapshot_path] if p.is_file()]
        if last.is_file() or not kept:
            return None
        last.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(kept[0], last)
        return kept[0]

    def snapshot(self) -> Path | None:
        """Copy an unfinished run's last.pt (whole, for a bit-exact resume) to its snapshot
        path; the path if it wrote one."""
        cfg = self.settings()
        epochs_done = progress(history(cfg))[0]
        if epochs_done == 0 or epochs_done >= cfg.epochs or self.gate() is False:
            return None  # not started, finished, or passed over: nothing to resume
        self.snapshot_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.snapshot_path.with_suffix(".partial")
        shutil.copyfile(self.out / "last.pt", tmp)  # last.pt is replaced atomically, never torn
        tmp.replace(self.snapshot_path)
        return self.snapshot_path

    def keep(self) -> list[Path]:
        """Write what outlives the run folder (its fold report, its milestone) where missing;
        nothing for a step passed over, whatever its folder holds."""
        written = []
        self.snapshot_path.unlink(missing_ok=True)  # finished or passed over: nothing to resume
        # A step passed over part-way (begun before its verdict came in) is no result. Only
        # such a step can be done unfinished, so the others skip a second read of last.pt.
        if self.gate() is False and not self.finished():
            return written
        last = self.out / "last.pt"
        if self.milestone and not self.milestone_path.is_file() and last.is_file():
            write_milestone(last, self.milestone_path)
            written.append(self.milestone_path)
        if self.arm and not self.record_path.is_file():
            write_fold_record(self, self.record_path)
            written.append(self.record_path)
        return written

    def state(self) -> str:
        cfg = self.settings()
        gate = self.gate()
        if gate is not True:
            arm = self.condition[0]  # a condition is what makes gate() other than True
            said = verdict_of(arm)
            now = "no record" if said is None else f"{said[0]}, {said[1]}"
            return (f"passed over: the verdict on {arm} is {now}" if gate is False
                    else f"waits for a verdict on {arm} (now: {now}); later steps go first")
        if self.recorded() and not (self.out / "last.pt").is_file():
            return f"done, recorded in {self.record_path} (its run folder is not here)"
        epochs = history(cfg)  # one read of last.pt
        done, miou = progress(epochs)
        said = "-" if miou is None else f"{100 * miou:.2f} %"
        left = time_left(epochs, cfg)
        return f"{done}/{cfg.epochs} epochs, val mIoU {said}{left} ({cfg.out})"

    def __str__(self) -> str:
        said = " ".join(f"{k}={v}" for k, v in self.overrides.items())
        arm, key = self.condition or (None, "if_adopted")
        when = f" (if {arm} {GATES[key].said})" if arm else ""
        return f"{self.config}{' ' + said if said else ''}{when}"


def flag(field: str, value: Any) -> list[str]:
    """A TrainConfig field's value as the training command's flag: `--seed=1`, a switch
    `--device-data` / `--no-device-data`, a pair `--crop 64 64`."""
    name = "--" + field.replace("_", "-")
    if isinstance(value, bool):
        return [name if value else "--no-" + name[2:]]
    if isinstance(value, list | tuple):
        return [name, *map(str, value)]
    return [f"{name}={value}"]


class Targets(NamedTuple):
    """A targets step: a teacher's logits cached for a fold's training frames."""

    teacher: Path
    fold: str
    out: Path

    def expected(self) -> int:
        return len(fold_frames(self.fold)[0])

    def cached(self) -> int:
        return len(list(self.out.glob("*.npy"))) if self.out.is_dir() else 0

    def done(self) -> bool:
        """Every frame cached under a current manifest (caching again keeps the frames)."""
        return manifest_current(self.out) and self.cached() >= self.expected()

    def command(self) -> list[str]:
        return ["lgcnet_research.train.targets", str(self.teacher), "--fold", self.fold,
                "-o", str(self.out)]

    def state(self) -> str:
        return f"{self.cached()}/{self.expected()} frames cached ({self.out})"

    def __str__(self) -> str:
        return f"targets of {self.teacher} for fold {self.fold}"


def write_milestone(last: Path, dest: Path) -> None:
    """A finished run's checkpoint without its optimizer state and raw weights, tensors in
    fp16 (they load into the fp32 net as they are): a fifth of the bytes."""
    payload = torch.load(last, map_location="cpu", weights_only=True)
    payload["state_dict"] = {k: v.half() if v.is_floating_point() else v
                             for k, v in payload["state_dict"].items()}
    for heavy in ("optimizer", "raw_state_dict"):
        payload["train_state"].pop(heavy, None)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_suffix(".partial")
    torch.save(payload, tmp)
    tmp.replace(dest)


def write_fold_record(run: Run, dest: Path, shown: Run | None = None) -> None:
    """Score a finished fold run on its held-out drive and write the record the fold table
    pools: the arm, fold and seed, the report, the commands that made it, its curve (the
    held-out mIoU at each of its evaluations, [epoch, mIoU]) and class curve ([epoch, IoU per
    class]) and, for an arm that gives accuracy up for something else, what (its trade).
    `shown`: the same step as the record names it (a GPU machine's run under the campaign's
    paths); the run itself by default."""
    shown = shown or run
    cfg, named = run.settings(), shown.settings()
    if cfg.fold not in FOLDS:
        raise CampaignError(f"{run}: arm {run.arm!r} but fold {cfg.fold!r}; an arm's runs "
                            f"train on fold {' or '.join(FOLDS)}")
    scored, last = run.out / "last.pt", shown.out / "last.pt"  # the file, and its name
    net, payload = load_net(scored)
    report = score_fold(net, payload, scored, cfg.fold, cfg.data)
    evaluated = [h for h in payload["train_state"]["history"] if "val_miou" in h]
    data = f" --data {named.data}" if named.data else ""
    record = {"arm": shown.arm, "fold": cfg.fold, "seed": cfg.seed, "run": str(shown.out),
              "config": str(shown.config), "overrides": shown.overrides,
              "command": " ".join(["python -m", *shown.command()[:-1]]),
              "eval_command": f"lgcnet folds eval {last} --fold {cfg.fold}{data}",
              "report": {**asdict(report), "checkpoint": str(last)},
              "curve": [[h["epoch"], h["val_miou"]] for h in evaluated],
              "class_curve": [[h["epoch"], h["val_iou"]] for h in evaluated if "val_iou" in h],
              **({"trade": shown.trade} if shown.trade else {})}
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(json.dumps(record, indent=1) + "\n")


class CampaignError(BadInputError):
    """The queue names something that cannot be: a bad step, an arm without a fold."""


def queue(path: Path = QUEUE) -> list[Run | Targets]:
    """The steps of the queue, in order."""
    steps: list[Run | Targets] = []
    for entry in json.loads(path.read_text())["runs"]:
        if isinstance(entry, dict) and "targets" in entry:
            t = entry["targets"]
            steps.append(Targets(Path(t["teacher"]), t["fold"], Path(t["out"])))
            continue
        entry = dict(entry) if isinstance(entry, dict) else {"config": entry}
        steps.append(Run(Path(entry.pop("config")), entry, entry.pop("arm", None),
                         bool(entry.pop("milestone", False)), entry.pop("trade", None),
                         condition(entry)))
    return steps


def condition(entry: dict[str, Any]) -> tuple[str, str] | None:
    """A queue entry's gate, popped from it: (ARM, KEY) for "KEY": ARM, KEY one of GATES."""
    gates = [(entry.pop(key), key) for key in GATES if key in entry]
    if len(gates) > 1:
        raise CampaignError(f"a step waits on {', '.join(f'{k}: {a!r}' for a, k in gates)}; "
                            f"give it one of {', '.join(GATES)}, not several")
    return gates[0] if gates else None


def unread(step: Run | Targets, steps: list[Run | Targets]) -> bool:
    """Whether `step` is targets not all cached that no unfinished training of `steps` reads:
    every run distilling from them is done (recorded, say, on a new checkout without the
    cache), so caching them again would feed nothing. Targets no step reads stay wanted."""
    if not isinstance(step, Targets) or step.done():
        return False
    readers = [s for s in steps if isinstance(s, Run)
               and (read := s.settings().teacher_targets) and Path(read) == step.out]
    return bool(readers) and all(s.done() for s in readers)


def status(path: Path = QUEUE) -> list[str]:
    """One line per step: what it is and where it stands."""
    steps = queue(path)
    return [f"{step}: " + ("not needed: every run that reads them is done"
                           if unread(step, steps) else step.state()) for step in steps]


def run(path: Path = QUEUE, between_steps: Callable[[], None] | None = None) -> int:
    """Run the queue's unfinished steps in order, reading the queue afresh before each (an
    edit takes effect when the running step ends); stop at the first that fails.
    `between_steps` runs after each finished step (`main` passes `restart_with_new_code`)."""
    while (step := next_step(path)) is not None:
        step.out.mkdir(parents=True, exist_ok=True)
        print(f"campaign: {step}: {step.state()}", flush=True)
        with open(step.out / "log.txt", "a") as log:
            code = subprocess.call([sys.executable, "-m", *step.command()], stdout=log,
                                   stderr=log)
        if code == 0 and not step.done():  # it would be started again, and again
            print(f"campaign: {step} exited without finishing (a stop_after?); see "
                  f"{step.out / 'log.txt'}", flush=True)
            code = EXIT_USER_INPUT
        if code != 0:
            print(f"campaign: {step} failed (exit {code}); see {step.out / 'log.txt'}",
                  flush=True)
            return code
        _keep(step)
        if between_steps is not None:
            between_steps()
    print("campaign: every step of the queue is done", flush=True)
    return 0


def restart_with_new_code() -> None:
    """Go on in a fresh interpreter with the same command line: the next step is then checked
    against the code as it stands now (a training setting added while a step ran is known),
    not against what this process imported when it started. Does not return."""
    print("campaign: going on in a fresh interpreter, with the code as it stands now",
          flush=True)
    sys.stderr.flush()  # execv drops what Python still buffers
    os.execv(sys.executable, sys.orig_argv)


def next_step(path: Path = QUEUE) -> Run | Targets | None:
    """The queue's first unfinished step (None: all done; targets that no unfinished
    training reads are passed over); on the way, each training is restored from its
    milestone or snapshot where its folder is missing, and each finished step's record and
    milestone written where missing."""
    steps = queue(path)
    for step in steps:
        restored = step.restore() if isinstance(step, Run) else None
        if restored:
            print(f"campaign: {step}: restored from {restored}", flush=True)
        if not (step.done() or unread(step, steps)):
            if isinstance(step, Run) and step.gate() is None:
                continue  # the verdict it waits on is not in: the steps after it go first
            return step
        _keep(step)
    return None


def snapshot(path: Path = QUEUE) -> list[Path]:
    """Snapshot every started, unfinished training of the queue; the files written."""
    written = [step.snapshot() for step in queue(path) if isinstance(step, Run)]
    return [p for p in written if p is not None]


def _keep(step: Run | Targets) -> None:
    for path in step.keep() if isinstance(step, Run) else []:
        print(f"campaign: {step}: wrote {path}", flush=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m experiments.campaign", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--queue", type=Path, default=QUEUE)
    p.add_argument("--status", action="store_true", help="print where each step stands")
    p.add_argument("--snapshot", action="store_true",
                   help="copy each unfinished run's state to experiments/milestones (to commit)")
    args = p.parse_args(argv)
    try:
        if args.status:
            print("\n".join(status(args.queue)))
            return 0
        if args.snapshot:
            print("\n".join(f"campaign: wrote {p}" for p in snapshot(args.queue))
                  or "campaign: no run stands part-way")
            return 0
        return run(args.queue, between_steps=restart_with_new_code)
    except (LgcnetError, FileNotFoundError) as e:  # a config the queue names may be missing
        print(f"campaign: error: {e}", file=sys.stderr)
        return getattr(e, "exit_code", EXIT_USER_INPUT)


if __name__ == "__main__":
    raise SystemExit(main())
