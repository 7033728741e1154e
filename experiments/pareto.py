"""The Pareto table: accuracy against cost for each shipped model and the LR-ASPP peer,
measured in one run.

    python -m experiments.pareto --models lgcnet-camvid lgcnet-camvid-searched \
        lgcnet-camvid-handwritten \
        --peer-weights runs/train_peer/best.pt --out results/pareto

Per model: CamVid val mIoU at 360x480 through the Segmenter on its checkpoint (101 frames,
one confusion matrix, void ignored; a model without trained weights shows none; the peer,
from `--peer-weights`, a checkpoint of `python -m lgcnet_research.train --model
lraspp_mbv3_large`, is scored through the Segmenter on the SDK's peer export to ONNX),
parameters,
GFLOPs at 360x480 (torch's FlopCounterMode: 2 per multiply-add), and ONNX Runtime CPU network
latency at 360x480 and 769x1537 — timed in interleaved rounds (every model once per round,
the median of the rounds' medians) because this machine's shared cores drift between runs.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from lgcnet_deploy.core.classes import CAMVID
from lgcnet_deploy.core.timing import time_calls
from lgcnet_deploy.export.pipeline import ArtifactSpec, make_artifact
from lgcnet_deploy.measure.bench import lraspp_net, peer_lraspp
from lgcnet_deploy.measure.evaluate import evaluate
from lgcnet_deploy.model.checkpoint import load_net
from lgcnet_deploy.runtime.backends import load_backend
from lgcnet_deploy.runtime.segmenter import Segmenter
from lgcnet_research.train.peer import PeerCheckpointError, load_peer

SIZES = ((360, 480), (769, 1537))
EVAL_SIZE = (360, 480)
PEER = "LR-ASPP MobileNetV3-Large"


@dataclass
class ParetoRow:
    name: str
    params_m: float
    gflops_360x480: float
    val_miou: float | None  # None: no trained weights to score
    latency_ms: dict[str, float] = field(default_factory=dict)  # "HxW" -> median p50


def count(net: nn.Module, size: tuple[int, int] = SIZES[0]) -> tuple[float, float]:
    """(parameters in millions, GFLOPs for one frame of `size`)."""
    params = sum(p.numel() for p in net.parameters()) / 1e6
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        net.eval()(torch.zeros(1, 3, *size))
    return params, counter.get_total_flops() / 1e9


def onnx_files(models: list[str], size: tuple[int, int], workdir: Path,
               peer_onnx: Path | None = None) -> dict[str, Path]:
    """Each model exported at `size` (uint8 in, class map out), the peer's export beside them."""
    files = {m: make_artifact(m, workdir / f"{Path(m).stem}_{size[0]}x{size[1]}.onnx",
                              ArtifactSpec(input_size=size)).path for m in models}
    if peer_onnx is not None:
        files[PEER] = peer_onnx
    return files


def peer_exports(peer: nn.Module, sizes: list[tuple[int, int]],
                 workdir: Path) -> dict[tuple[int, int], Path]:
    """The peer exported once per distinct size (the scoring size may be a latency size too)."""
    return {size: peer_lraspp(size, CAMVID.num_classes, workdir, peer)
            for size in dict.fromkeys(sizes)}


def interleaved_latency(files: dict[str, Path], rounds: int, iters: int) -> dict[str, float]:
    """Median over `rounds` of each model's p50 network latency (ms), models interleaved."""
    backends = {name: load_backend(path) for name, path in files.items()}
    frames = {name: np.zeros(b.input_shape(1), np.uint8) for name, b in backends.items()}
    samples: dict[str, list[float]] = {name: [] for name in backends}
    try:
        for _ in range(rounds):
            for name, b in backends.items():
                samples[name].append(time_calls(lambda b=b, x=frames[name]: b.infer(x), 2,
                                                iters).p50)
    finally:
        for b in backends.values():
            b.close()
    return {name: float(np.median(v)) for name, v in samples.items()}


def measure(models: list[str], peer: bool, rounds: int, iters: int, data: str | None,
            sizes: tuple[tuple[int, int], ...] = SIZES,
            peer_weights: str | Path | None = None,
            val_limit: int | None = None) -> list[ParetoRow]:
    """One row per model (and the peer, trained when `peer_weights` names its checkpoint);
    `val_limit` scores only the first val frames (smoke tests)."""
    peer_net = load_peer(peer_weights)[0] if peer_weights else (  # first: a bad path fails fast
        lraspp_net(CAMVID.num_classes) if peer else None)
    rows = {}
    for m in models:
        net, _, trained = load_net(m)
        rows[m] = ParetoRow(m, *count(net), val_miou=None)
        if trained:
            with Segmenter(m) as seg:
                rows[m].val_miou = evaluate(seg, "val", data, val_limit, progress=False).miou
    with tempfile.TemporaryDirectory() as tmp:
        peer_onnx = {}
        if peer_net is not None:
            rows[PEER] = ParetoRow(PEER, *count(peer_net), val_miou=None)
            scored = [EVAL_SIZE] if peer_weights else []
            peer_onnx = peer_exports(peer_net, [*scored, *sizes], Path(tmp))
        if peer_weights:  # the Segmenter on its ONNX export: the SDK loads no peer checkpoint
            with Segmenter(peer_onnx[EVAL_SIZE]) as seg:
                rows[PEER].val_miou = evaluate(seg, "val", data, val_limit,
                                               progress=False).miou
        for size in sizes:
            files = onnx_files(models, size, Path(tmp), peer_onnx.get(size))
            latency = interleaved_latency(files, rounds, iters)
            for name, ms in latency.items():
                rows[name].latency_ms[f"{size[0]}x{size[1]}"] = ms
    return list(rows.values())


def markdown(rows: list[ParetoRow]) -> str:
    sizes = list(rows[0].latency_ms)
    head = ("| model | val mIoU % (360x480; leaks) | params (M) | GFLOPs (360x480) | "
            + " | ".join(f"ORT CPU ms {s}" for s in sizes) + " |\n|---|---:|---:|---:|"
            + "---:|" * len(sizes))
    lines = [head]
    for r in rows:
        miou = "—" if r.val_miou is None else f"{r.val_miou * 100:.2f}"
        lat = " | ".join(f"{r.latency_ms[s]:.1f}" for s in sizes)
        lines.append(f"| {r.name} | {miou} | {r.params_m:.2f} | {r.gflops_360x480:.2f} | "
                     f"{lat} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m experiments.pareto", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=["lgcnet-camvid", "lgcnet-camvid-searched",
                                                   "lgcnet-camvid-handwritten"])
    p.add_argument("--peer", action="store_true",
                   help="add LR-ASPP MobileNetV3-Large (random init: no val mIoU)")
    p.add_argument("--peer-weights", type=Path, default=None,
                   help="the peer's trained checkpoint (python -m lgcnet_research.train --model "
                        "lraspp_mbv3_large): its row gets val mIoU too (implies --peer)")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--iters", type=int, default=10)
    p.add_argument("--threads", type=int, default=None, help="torch threads (FLOP counting)")
    p.add_argument("--data", default=None, help="CamVid root")
    p.add_argument("--out", type=Path, default=Path("runs/pareto"))
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        rows = measure(args.models, args.peer, args.rounds, args.iters, args.data,
                       peer_weights=args.peer_weights)
    except (FileNotFoundError, PeerCheckpointError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    table = markdown(rows)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "pareto.md").write_text(table + "\n")
    (args.out / "pareto.json").write_text(json.dumps([asdict(r) for r in rows], indent=1))
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
