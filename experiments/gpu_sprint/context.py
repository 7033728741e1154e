"""What a stage of the sprint sees (`StageContext`), how it says it cannot run
(`StageSkipped`), and how results reach disk whole (`write_json`): shared by the runner and
the stages it runs."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from experiments.gpu_sprint.config import SprintConfig

REPO = Path(__file__).resolve().parents[2]


class StageSkipped(Exception):
    """A stage cannot run in this call (something it needs is missing); the message says why."""


@dataclass
class StageContext:
    """What a stage sees: its settings, where to write, its deadline, and `report`."""

    name: str
    cfg: SprintConfig
    out: Path
    scratch: Path
    data: Path
    deadline: float
    conn: Connection | None = field(default=None, repr=False)

    @property
    def dry(self) -> bool:
        return self.cfg.dry_run

    @property
    def device(self) -> str:
        if self.cfg.device != "auto":
            return self.cfg.device
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"

    def seconds_left(self) -> float:
        return self.deadline - time.time()

    def report(self, **results: Any) -> None:
        """Send results to the parent now: they land in summary.json even if the stage is
        killed a moment later."""
        if self.conn is not None:
            self.conn.send(results)


def write_json(path: Path, data: dict[str, Any], indent: int | None = None) -> None:
    """JSON under a hidden temporary name, then renamed: a reader never sees half a file."""
    tmp = path.with_name("." + path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=indent, default=str) + "\n")
    tmp.replace(path)
