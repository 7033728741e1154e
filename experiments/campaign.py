"""The accuracy campaign's long runs, one after another, each resumed where it stopped.

    python -m experiments.campaign              # run the queue (in the background, with a log)
    python -m experiments.campaign --status     # where each run stands

The queue (experiments/configs/campaign.json) lists training configs in the order they should
run: the teachers before the students that distil from them, a screen before its confirmation.
An entry is a config's path, or {"config": path, FIELD: value, ...} for the same recipe with
scalar fields changed (another seed and its own `out`, say).
A run whose `last.pt` holds its last epoch is skipped; one that stopped part-way is continued
with `--resume` (bit-exact: batches are a function of seed, epoch and frame). Each run writes
its log beside its checkpoints (OUT/log.txt).
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
    """One entry of the queue: a config file and the scalar fields it changes."""

    config: Path
    overrides: dict[str, Any]

    def settings(self) -> TrainConfig:
        return TrainConfig.load(self.config, **self.overrides)

    def flags(self) -> list[str]:
        """The training command's arguments for this entry."""
        changed = [f"--{k.replace('_', '-')}={v}" for k, v in self.overrides.items()]
        return ["--config", str(self.config), *changed, "--resume"]

    def __str__(self) -> str:
        said = " ".join(f"{k}={v}" for k, v in self.overrides.items())
        return f"{self.config}{' ' + said if said else ''}"


def queue(path: Path = QUEUE) -> list[Run]:
    """The runs of the queue, in order."""
    runs = []
    for entry in json.loads(path.read_text())["runs"]:
        entry = dict(entry) if isinstance(entry, dict) else {"config": entry}
        runs.append(Run(Path(entry.pop("config")), entry))
    return runs


def status(path: Path = QUEUE) -> list[str]:
    """One line per run: config, epochs done of epochs, the latest val mIoU."""
    lines = []
    for entry in queue(path):
        cfg = entry.settings()
        done, miou = progress(cfg)
        said = "-" if miou is None else f"{100 * miou:.2f} %"
        lines.append(f"{entry}: {done}/{cfg.epochs} epochs, val mIoU {said} ({cfg.out})")
    return lines


def run(path: Path = QUEUE) -> int:
    """Run every unfinished run of the queue in order; stop at the first that fails."""
    for entry in queue(path):
        cfg = entry.settings()
        if progress(cfg)[0] >= cfg.epochs:
            continue
        out = Path(cfg.out)
        out.mkdir(parents=True, exist_ok=True)
        print(f"campaign: {entry} from epoch {progress(cfg)[0]}", flush=True)
        with open(out / "log.txt", "a") as log:
            code = subprocess.call([sys.executable, "-m", "lgcnet_research.train.trainer",
                                    *entry.flags()], stdout=log, stderr=log)
        if code != 0:
            print(f"campaign: {entry} failed (exit {code}); see {out / 'log.txt'}", flush=True)
            return code
    print("campaign: every run of the queue is done", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m experiments.campaign", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--queue", type=Path, default=QUEUE)
    p.add_argument("--status", action="store_true", help="print where each run stands")
    args = p.parse_args(argv)
    if args.status:
        print("\n".join(status(args.queue)))
        return 0
    return run(args.queue)


if __name__ == "__main__":
    raise SystemExit(main())
