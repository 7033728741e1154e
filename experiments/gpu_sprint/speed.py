"""Stage speed: the paper's speed setting on PyTorch-CUDA, and GPU-vs-CPU mask parity.

Setting (section IV-B): 769x1537 input, batch 1, FP16 (fp32 in a CPU dry run); 1024x2048
frames end to end. Models: the default genotype (random-0), the hand-written genotype at the
paper's widths, torchvision's LR-ASPP MobileNetV3-Large (weights=None: latency only) and the
searched genotype, all
19-class (Cityscapes) with the deployed I/O (uint8 BGR frame in, int32 class map out), through
`CudaRunner` in three modes: eager, CUDA graph, torch.compile + CUDA graph. Network =
`CudaRunner.forward` on a frame already on the GPU, synchronised; end to end =
`Segmenter.predict` on the 1024x2048 frame (resize, upload, network, download, resize back).
Eager and graph rows come first for every model, then the parity, then the compile rows
(compilation is the slow, risky part).

Parity: the shipped CamVid checkpoints through the SDK's own `.pt` path (`Segmenter(pt,
"cuda")`: fp16, CUDA graph) against the same checkpoint on the CPU in fp32, on real CamVid val
frames: pixel agreement of the masks and both mIoUs.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from experiments.gpu_sprint.context import StageContext
from lgcnet_deploy.core.classes import CAMVID, CITYSCAPES
from lgcnet_deploy.core.data import CamVid
from lgcnet_deploy.core.metadata import INPUT_UINT8_NHWC_BGR, OUTPUT_ARGMAX, ModelMeta
from lgcnet_deploy.core.metrics import ConfusionMatrix
from lgcnet_deploy.core.timing import Stats, time_calls
from lgcnet_deploy.measure.bench import LRASPP_NAME, PAPER, lraspp_net
from lgcnet_deploy.model.fold_bn import fold_batchnorm
from lgcnet_deploy.model.io_wrapper import InGraphIO, wrap_io
from lgcnet_deploy.model.shipped import SHIPPED_MODELS, resolve_model
from lgcnet_deploy.runtime.backends.base import Backend
from lgcnet_deploy.runtime.backends.pytorch_cuda import CudaRunner
from lgcnet_deploy.runtime.segmenter import Segmenter

SHIPPED = {name: Path(resolve_model(name)) for name in SHIPPED_MODELS}  # short name -> .pt
MODELS = ("default", "handwritten", LRASPP_NAME, "searched")  # genotypes, the peer
DRY_SIZES = {"input_size": (64, 128), "frame_size": (128, 256)}


def deployed(name: str, input_size: tuple[int, int]) -> tuple[InGraphIO, ModelMeta]:
    """A model of MODELS as deployed: uint8 BGR NHWC in, class map out (BN folded for LGCNet)."""
    from lgcnet_deploy.model.checkpoint import load_net

    meta = ModelMeta.for_dataset(CITYSCAPES, input_size=input_size,
                                 input_format=INPUT_UINT8_NHWC_BGR, output_kind=OUTPUT_ARGMAX)
    if name == LRASPP_NAME:
        return wrap_io(lraspp_net(CITYSCAPES.num_classes), meta), meta
    net, _, _ = load_net(name, CITYSCAPES, input_size)
    return wrap_io(fold_batchnorm(net), meta), meta


class RunnerBackend(Backend):
    """A CudaRunner behind the Backend interface, so that Segmenter times it end to end; the
    module is built in memory, so there is no model file to load."""

    name = "torch-cuda"

    def __init__(self, runner: CudaRunner, meta: ModelMeta) -> None:  # no file: skip Backend's
        self.runner, self.meta = runner, meta.replace(precision=runner.precision)
        self.path, self.device, self._closed = Path(f"<{runner.mode}>"), str(runner.device), False

    def _load(self) -> ModelMeta:
        return self.meta

    def _infer(self, batch: np.ndarray) -> np.ndarray:
        return self.runner(batch)


def _stats(s: Stats) -> dict[str, float]:
    return {k: round(getattr(s, k), 3) for k in ("mean", "p50", "p90", "p99", "fps")}


def measure(name: str, mode: str, device: str, frame: np.ndarray, input_size: tuple[int, int],
            iters: int) -> tuple[dict[str, Any], np.ndarray]:
    """One model in one mode: setup (capture/compile) seconds, network and end-to-end stats;
    and the class map it gives the frame (to compare the modes)."""
    module, meta = deployed(name, input_size)
    t0 = time.time()
    runner = CudaRunner(module, device, fp16=device.startswith("cuda"),  # CPUs lack fp16 kernels
                        use_cuda_graph=mode != "eager", torch_compile=mode == "compile")
    seg = Segmenter(RunnerBackend(runner, meta))
    x = torch.from_numpy(seg.preprocess([frame])).to(device)

    def network() -> torch.Tensor:
        y = runner.forward(x)
        if runner.device.type == "cuda":
            torch.cuda.synchronize(runner.device)
        return y

    mask = network().cpu().numpy()  # capture / compile: the setup cost
    setup_s = time.time() - t0
    net = time_calls(network, max(3, iters // 10), iters)
    e2e = time_calls(lambda: seg.predict(frame), max(2, iters // 30), max(3, iters // 3))
    return {"model": name, "mode": runner.mode, "precision": runner.precision,
            "params_m": round(sum(p.numel() for p in module.net.parameters()) / 1e6, 3),
            "setup_s": round(setup_s, 1), "network": _stats(net),
            "end_to_end": _stats(e2e)}, mask


def mask_parity(ctx: StageContext, frames: int) -> list[dict[str, Any]]:
    """Each shipped checkpoint on `ctx.device` (SDK path) vs CPU fp32 on real val frames."""
    val = CamVid("val", ctx.data)
    rows = []
    for name, ckpt in SHIPPED.items():
        with Segmenter(ckpt, "cpu") as cpu, Segmenter(ckpt, ctx.device) as dev:
            agree = []
            cms = [ConfusionMatrix(CAMVID.num_classes, CAMVID.ignore_index) for _ in (0, 1)]
            for i in range(min(frames, len(val))):
                img, label = val[i]
                a, b = cpu.predict(img).mask, dev.predict(img).mask
                agree.append(float((a == b).mean()))
                cms[0].update(a, label)
                cms[1].update(b, label)
            rows.append({"model": name, "device": ctx.device, "precision": dev.meta.precision,
                         "frames": len(agree), "pixel_agreement_mean": float(np.mean(agree)),
                         "pixel_agreement_min": float(np.min(agree)),
                         "miou_cpu": cms[0].miou(), "miou_device": cms[1].miou()})
    return rows


def _skip_reason(mode: str, device: str, seconds_left: float) -> str | None:
    if mode != "eager" and not device.startswith("cuda"):
        return f"{mode} needs CUDA"
    if seconds_left < (60 if mode == "compile" else 10):
        return "too little of the box left"
    return None


def speed(ctx: StageContext) -> None:
    """Eager and graph rows for every model, then the parity, then the compile rows."""
    sizes = DRY_SIZES if ctx.dry else {k: PAPER[k] for k in DRY_SIZES}
    val_frame = CamVid("val", ctx.data)[0][0]
    h, w = sizes["frame_size"]
    frame = cv2.resize(val_frame, (w, h), interpolation=cv2.INTER_LINEAR)
    iters = 3 if ctx.dry else ctx.cfg.speed_iters
    precision = "fp16" if ctx.device.startswith("cuda") else "fp32"
    ctx.report(setting={**sizes, "batch": 1, "precision": precision, "iters": iters,
                        "paper_fps": {"tensorrt": PAPER["fps_tensorrt"],
                                      "pytorch": PAPER["fps_pytorch"],
                                      "device": PAPER["device"]}})
    rows: list[dict[str, Any]] = []
    eager_masks: dict[str, np.ndarray] = {}  # per model: what the other modes must agree with
    modes = ctx.cfg.speed_modes
    first = [(m, mode) for mode in ("eager", "graph") if mode in modes for m in MODELS]
    for name, mode in first:
        rows.append(_row(ctx, name, mode, frame, sizes["input_size"], iters, eager_masks))
        ctx.report(rows=rows)
    ctx.report(parity=mask_parity(ctx, 1 if ctx.dry else ctx.cfg.parity_frames))
    for name in MODELS if "compile" in modes else ():
        rows.append(_row(ctx, name, "compile", frame, sizes["input_size"], iters, eager_masks))
        ctx.report(rows=rows)


def _row(ctx: StageContext, name: str, mode: str, frame: np.ndarray,
         input_size: tuple[int, int], iters: int,
         eager_masks: dict[str, np.ndarray]) -> dict[str, Any]:
    """measure(), or why it did not run; one failing row never stops the others. A timed
    row records how much of its class map agrees with the eager one of the same model
    (random weights: near-tied logits make a few pixels flip between fp16 kernels)."""
    reason = _skip_reason(mode, ctx.device, ctx.seconds_left())
    if reason:
        return {"model": name, "mode": mode, "skipped": reason}
    try:
        row, mask = measure(name, mode, ctx.device, frame, input_size, iters)
    except ImportError as e:  # torchvision missing (a CPU-only install)
        return {"model": name, "mode": mode, "skipped": f"{type(e).__name__}: {e}"[:300]}
    except Exception as e:  # the failure is the finding: keep it, go on
        return {"model": name, "mode": mode, "error": f"{type(e).__name__}: {e}"[:1000]}
    if mode == "eager":
        eager_masks[name] = mask
    elif name in eager_masks:
        row["mask_agreement_vs_eager"] = float((mask == eager_masks[name]).mean())
    return row


# -- report ----------------------------------------------------------------------------------
def headline(r: dict[str, Any]) -> str:
    timed = [row for row in r.get("rows", []) if "network" in row]
    if not timed:
        return "no model timed" if "setting" in r else ""
    best = max(timed, key=lambda row: row["network"]["fps"])
    return (f"{len(timed)} rows; fastest {best['model']} {best['mode']}: "
            f"{best['network']['fps']:.1f} FPS network")


def tables(r: dict[str, Any]) -> list[str]:
    """The speed rows beside the paper's FPS, and the parity rows (markdown)."""
    setting = r.get("setting", {})
    paper = setting.get("paper_fps", {})
    out = []
    if r.get("rows"):
        size = "x".join(map(str, setting.get("input_size", ())))
        out += [f"Paper setting {size}, batch 1, {setting.get('precision')}; paper: "
                f"{paper.get('tensorrt')} FPS TensorRT, {paper.get('pytorch')} FPS PyTorch "
                f"({paper.get('device')})", "",
                "| model | mode | params M | network p50 / p90 / p99 ms | network FPS | "
                "end-to-end p50 / p99 ms | e2e FPS | setup s | mask = eager |",
                "|---|---|---:|---|---:|---|---:|---:|---:|"]
    for row in r.get("rows", []):
        if "network" not in row:
            out.append(f"| {row['model']} | {row['mode']} | | "
                       f"{row.get('skipped') or row.get('error', '')[:80]} | | | | | |")
            continue
        n, e = row["network"], row["end_to_end"]
        agree = row.get("mask_agreement_vs_eager")
        out.append(f"| {row['model']} | {row['mode']} | {row['params_m']} | {n['p50']:.2f} / "
                   f"{n['p90']:.2f} / {n['p99']:.2f} | {n['fps']:.1f} | {e['p50']:.2f} / "
                   f"{e['p99']:.2f} | {e['fps']:.1f} | {row['setup_s']} | "
                   f"{'' if agree is None else f'{100 * agree:.2f} %'} |")
    if r.get("parity"):
        out += ["", "| shipped model | device | frames | pixel agreement mean / min | "
                "mIoU CPU fp32 | mIoU device |", "|---|---|---:|---|---:|---:|"]
        out += [f"| {p['model']} | {p['device']} {p['precision']} | {p['frames']} | "
                f"{100 * p['pixel_agreement_mean']:.3f} % / {100 * p['pixel_agreement_min']:.3f}"
                f" % | {100 * p['miou_cpu']:.2f} | {100 * p['miou_device']:.2f} |"
                for p in r["parity"]]
    return out
