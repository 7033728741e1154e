"""Side-by-side processes inside one stage: the trainings of stage train, the seeds of stage
search. Each job is `python -m MODULE ...` with its output in its own folder's log.txt and its
share of the CPU threads; it inherits the stage's process group, so the runner's kill at the
end of the box ends the jobs too.

Why processes side by side: these nets are launch-bound on an H100 (sprint call 1: 45 ms a
step for 0.66 M parameters, the GPU idle most of it), so N jobs cost far less than N times the
wall time of one, and a job that fails or hangs costs only itself.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from experiments.gpu_sprint.context import REPO, StageContext

JOB_LOG = "log.txt"
POLL_S = 10.0


def threads_per_job(jobs: int) -> int:
    """An equal share of this machine's cores (at least one) for each of `jobs` processes."""
    return max(1, (os.cpu_count() or 1) // max(jobs, 1))


def start(module: str, args: list[str], folder: Path, threads: int) -> subprocess.Popen:
    """`python -m module args` in the repository root, its output in folder/log.txt."""
    folder.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONUNBUFFERED": "1"}
    with (folder / JOB_LOG).open("ab") as log:
        return subprocess.Popen([sys.executable, "-m", module, *args], cwd=REPO, env=env,
                                stdout=log, stderr=subprocess.STDOUT)


def wait(jobs: dict[str, subprocess.Popen], ctx: StageContext,
         poll: Callable[[], None] | None = None, margin_s: float = 2.0) -> dict[str, int | None]:
    """Wait for every job, calling `poll` every POLL_S seconds; `margin_s` before the stage's
    deadline stop the ones still running (SIGTERM, then SIGKILL). Returns each exit code."""
    polled = time.time()
    while any(p.poll() is None for p in jobs.values()):
        left = ctx.seconds_left() - margin_s
        if left <= 0:
            break
        time.sleep(min(1.0, left))
        if poll is not None and time.time() - polled >= POLL_S:
            poll()
            polled = time.time()
    for p in jobs.values():
        if p.poll() is None:
            p.terminate()
    for p in jobs.values():
        try:
            p.wait(3.0)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    return {name: p.returncode for name, p in jobs.items()}
