"""The accuracy campaign's long runs, one after another, each resumed where it stopped.

    python -m experiments.campaign              # run the queue (in the background, with a log)
    python -m experiments.campaign --status     # where each run stands

The queue (experiments/configs/campaign.json) lists its steps in the order they should run:
the teachers, their cached targets, then the students that distil from them, a screen before
its confirmation. A training step is a config's path, or {"config": path, FIELD: value, ...}
for the same recipe with scalar fields changed (another seed and its own `out`, say); a
training whose `last.pt` holds its last epoch is skipped, one that stopped part-way is
continued with `--resume` (bit-exact: batches are a function of seed, epoch and frame). A
targets step, {"targets": {"teacher": ckpt, "fold": "A", "out": folder}}, caches a trained
teacher's soft targets for a fold's training frames (frames already cached are kept). Each
step writes its log in its output folder (log.txt).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any, NamedTuple

from lgcnet_deploy.model.checkpoint import read_checkpoint
from lgcnet_research.train.config import TrainConfig
from lgcnet_research.train.folds import fold_frames
from lgcnet_research.train.peer import read_peer_checkpoint

QUEUE = Path(__file__).parent / "configs" / "campaign.json"


def progress(cfg: TrainConfig) -> tuple[int, float | None]:
    """(epochs done, the latest val mIoU) of a run, from its last.pt; (0, None) before it."""
    last = Path(cfg.out) / "last.pt"
    if not last.is_file():
        return 0, None
    read = read_checkpoint if cfg.model == "lgcnet" else read_peer_checkpoint
    history = read(last)["train_state"]["history"]
    seen = [h["val_miou"] for h in history if "val_miou" in h]
    return (history[-1]["epoch"] if history else 0), (seen[-1] if seen else None)


class Run(NamedTuple):
    """A training step: a config file and the scalar fields it changes."""

    config: Path
    overrides: dict[str, Any]

    def settings(self) -> TrainConfig:
        return TrainConfig.load(self.config, **self.overrides)

    @property
    def out(self) -> Path:
        return Path(self.settings().out)

    def done(self) -> bool:
        cfg = self.settings()
        return progress(cfg)[0] >= cfg.epochs

    def command(self) -> list[str]:
        changed = [f"--{k.replace('_', '-')}={v}" for k, v in self.overrides.items()]
        return ["lgcnet_research.train", "--config", str(self.config), *changed, "--resume"]

    def state(self) -> str:
        cfg = self.settings()
        done, miou = progress(cfg)
        said = "-" if miou is None else f"{100 * miou:.2f} %"
        return f"{done}/{cfg.epochs} epochs, val mIoU {said} ({cfg.out})"

    def __str__(self) -> str:
        said = " ".join(f"{k}={v}" for k, v in self.overrides.items())
        return f"{self.config}{' ' + said if said else ''}"


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
        return (self.out / "targets.json").is_file() and self.cached() >= self.expected()

    def command(self) -> list[str]:
        return ["lgcnet_research.train.targets", str(self.teacher), "--fold", self.fold,
                "-o", str(self.out)]

    def state(self) -> str:
        return f"{self.cached()}/{self.expected()} frames cached ({self.out})"

    def __str__(self) -> str:
        return f"targets of {self.teacher} for fold {self.fold}"


def queue(path: Path = QUEUE) -> list[Run | Targets]:
    """The steps of the queue, in order."""
    steps: list[Run | Targets] = []
    for entry in json.loads(path.read_text())["runs"]:
        if isinstance(entry, dict) and "targets" in entry:
            t = entry["targets"]
            steps.append(Targets(Path(t["teacher"]), t["fold"], Path(t["out"])))
            continue
        entry = dict(entry) if isinstance(entry, dict) else {"config": entry}
        steps.append(Run(Path(entry.pop("config")), entry))
    return steps


def status(path: Path = QUEUE) -> list[str]:
    """One line per step: what it is and where it stands."""
    return [f"{step}: {step.state()}" for step in queue(path)]


def run(path: Path = QUEUE) -> int:
    """Run every unfinished step of the queue in order; stop at the first that fails."""
    for step in queue(path):
        if step.done():
            continue
        step.out.mkdir(parents=True, exist_ok=True)
        print(f"campaign: {step}: {step.state()}", flush=True)
        with open(step.out / "log.txt", "a") as log:
            code = subprocess.call([sys.executable, "-m", *step.command()], stdout=log,
                                   stderr=log)
        if code != 0:
            print(f"campaign: {step} failed (exit {code}); see {step.out / 'log.txt'}",
                  flush=True)
            return code
    print("campaign: every step of the queue is done", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m experiments.campaign", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--queue", type=Path, default=QUEUE)
    p.add_argument("--status", action="store_true", help="print where each step stands")
    args = p.parse_args(argv)
    if args.status:
        print("\n".join(status(args.queue)))
        return 0
    return run(args.queue)


if __name__ == "__main__":
    raise SystemExit(main())
