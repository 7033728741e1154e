"""Latency and FPS: the network alone and end to end, the paper's preset, and a peer model.

Timing is `core/timing.time_calls`. Every backend returns host arrays, so a call ends only
after the device finished and copied back; on CUDA, torch's CUDA events would time the same
span and add nothing for these synchronous calls.
"""

from __future__ import annotations

import importlib.util
import json
import platform
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from lgcnet_deploy.artifact.describe import describe
from lgcnet_deploy.artifact.engine import tensorrt_gpu
from lgcnet_deploy.core.classes import DATASETS, PAPER_INPUT_SIZE, Dataset
from lgcnet_deploy.core.data import CamVid
from lgcnet_deploy.core.errors import BadInputError, MissingFileError
from lgcnet_deploy.core.formats import MissingExtraError, find_format
from lgcnet_deploy.core.host import cpu_label, physical_cores
from lgcnet_deploy.core.metadata import INPUT_UINT8_NHWC_BGR, OUTPUT_ARGMAX
from lgcnet_deploy.core.timing import MIN_CALLS_P99, Stats, time_calls
from lgcnet_deploy.export.pipeline import ArtifactSpec, check_input_sizes, deployable_path
from lgcnet_deploy.model.shipped import resolve_model
from lgcnet_deploy.runtime.backends import Backend, load_backend
from lgcnet_deploy.runtime.segmenter import Segmenter

if TYPE_CHECKING:  # torch comes with the export extra; the ONNX path does not need it
    from torch import nn

# The paper's speed setting (section IV-B, Table IV): Cityscapes frames of 1024x2048 resized to
# 769x1537, batch 1, FP16, forward time only, on a Titan Xp.
PAPER = {"input_size": PAPER_INPUT_SIZE, "frame_size": (1024, 2048), "batch": 1,
         "precision": "fp16", "dataset": "cityscapes", "fps_tensorrt": 205.6,
         "fps_pytorch": 115.2, "device": "NVIDIA Titan Xp, TensorRT 5.1.5"}


COMPARE_INSTALL = "pip install '.[export,compare]' in the lgcnet-deploy checkout"
EXPORT_INSTALL = "pip install '.[export]' in the lgcnet-deploy checkout"


class BenchOptionError(BadInputError):
    """A benchmark option the model given cannot honour; the message says what would."""


@dataclass
class BenchResult:
    name: str
    backend: str
    device: str
    precision: str
    batch: int
    input_size: tuple[int, int]
    network: Stats
    end_to_end: Stats | None = None
    frame_size: tuple[int, int] | None = None
    throughput_fps: dict[int, float] = field(default_factory=dict)
    machine: dict[str, Any] = field(default_factory=dict)
    threads: int | None = None  # CPU threads the network runs on; None on a GPU

    @property
    def network_fps(self) -> float:
        """Frames per second through the network: `batch` frames per call."""
        return self.batch * self.network.fps

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("network", "end_to_end"):
            if d[k] is not None:
                stats = getattr(self, k)
                fps = self.network_fps if k == "network" else stats.fps
                d[k].update(fps=fps, calls=len(stats.samples), rounds_ms=stats.rounds(),
                            p99=stats.p99 if len(stats.samples) >= MIN_CALLS_P99 else None)
                d[k].pop("samples")
        return d


def machine_info(backend: Backend) -> dict[str, Any]:
    import onnxruntime

    info = {"cpu": cpu_label(), "onnxruntime": onnxruntime.__version__,
            "python": platform.python_version()}
    providers = getattr(backend, "providers", None)
    if providers:
        info["providers"] = providers
    return info


def network_threads(backend: Backend) -> int | None:
    """The CPU threads running the network: ONNX Runtime's intra-op pool on its CPU provider
    (unset, ONNX Runtime uses one per physical core); None when a GPU runs it."""
    providers = getattr(backend, "providers", None)
    if not providers or providers[0] != "CPUExecutionProvider":
        return None
    return getattr(backend, "threads", None) or physical_cores()


def test_frame(size: tuple[int, int]) -> np.ndarray:
    """A real CamVid frame resized to `size` (H, W) when CamVid is present, else noise."""
    frame = CamVid("val")[0][0] if CamVid.available() else np.random.default_rng(0).integers(
        0, 256, (360, 480, 3), dtype=np.uint8)
    return cv2.resize(frame, (size[1], size[0]), interpolation=cv2.INTER_LINEAR)


def bench_source(source: str | Path, sizes: Sequence[tuple[str, tuple[int, int] | None]] = (),
                 batches: Sequence[tuple[str, int]] = ()) -> str | Path:
    """What bench times for a shipped model's short name: its shipped ONNX (the file the base
    install runs) when it takes every (option, size) and (option, batch) asked, else its
    checkpoint, re-exported to fit, which needs torch. Anything else comes back unchanged."""
    onnx = resolve_model(source, ".onnx")
    if onnx == source:
        return source
    info = describe(onnx)
    (h, w), batch = info["input_size"], info["inputs"][0][2][0]  # batch: an int when static
    need = [f"{option} {size[0]}x{size[1]}" for option, size in sizes
            if size is not None and tuple(size) != (h, w)]
    need += [f"{option} {n}" for option, n in batches if isinstance(batch, int) and n > batch]
    if not need:
        return onnx
    if importlib.util.find_spec("torch") is None:
        shape = f"{h}x{w}" + (f", batch {batch}" if isinstance(batch, int) else "")
        raise MissingExtraError(f"{need[0]} re-exports the checkpoint of {source} (its shipped "
                                f"ONNX takes {shape}): {EXPORT_INSTALL}")
    return resolve_model(source)


def prepare(source: str | Path, input_size: tuple[int, int] | None, dataset: Dataset,
            workdir: Path, dynamic_batch: bool = True) -> Path:
    """A model file to load: model files as they are; a checkpoint or genotype is exported
    to ONNX (uint8 in, class map out) at `input_size`."""
    spec = ArtifactSpec(input_size=input_size, dataset=dataset, dynamic_batch=dynamic_batch)
    return deployable_path(source, workdir, spec)


def check_options(source: str | Path, input_size: tuple[int, int] | None = None,
                  sizes: list[tuple[int, int]] | None = None, dataset: str | None = None,
                  size_option: str = "--imgsz", batch: int = 1,
                  throughput_batches: Sequence[int] = ()) -> None:
    """Refuse what a model file cannot honour: an exported .onnx/.engine has one input size
    (only an equal --imgsz/--sizes passes; others need a re-export from the checkpoint), and
    every file carries its own classes (--dataset is for genotypes). A shipped model's short
    name stands for the file `bench_source` picks for these options."""
    asked = [(size_option, input_size), *(("--sizes", s) for s in sizes or [])]
    source = bench_source(source, asked, [("--batch", batch),
                                          *(("--batches", n) for n in throughput_batches)])
    fmt = find_format(source)
    if fmt is None:  # a genotype: every option applies
        return
    path = Path(source)
    if not path.is_file():
        raise MissingFileError(f"model file not found: {path}")
    if dataset is not None:
        info = describe(path)
        meta = info.get("meta", info)  # an engine's sidecar nests the model metadata
        if dataset != meta.get("dataset"):
            raise BenchOptionError(f"{path} carries its own classes ({meta.get('dataset')}); "
                                   f"--dataset applies to genotypes only")
    check_input_sizes(path, asked)


def benchmark(source: str | Path, *, device: str = "cpu", batch: int = 1,
              input_size: tuple[int, int] | None = None, dataset: str = "camvid",
              frame_size: tuple[int, int] | None = None, warmup: int = 5, iters: int = 30,
              end_to_end: bool = True, throughput_batches: tuple[int, ...] = (),
              name: str | None = None, verify: bool = True) -> BenchResult:
    """Benchmark any model file, shipped model (see `bench_source`) or genotype. Network =
    backend.infer on a prepared batch; end to end = Segmenter.predict on a `frame_size` BGR
    frame (default: the input size)."""
    if batch < 1 or iters < 1 or warmup < 0 or any(n < 1 for n in throughput_batches):
        raise BenchOptionError(f"need batch >= 1, iters >= 1, warmup >= 0 and batches >= 1; "
                               f"got batch {batch}, iters {iters}, warmup {warmup}, batches "
                               f"{list(throughput_batches)}")
    name = name or Path(str(source)).stem
    source = bench_source(source, [("input_size", input_size)], [
        ("batch", batch), *(("throughput batch", n) for n in throughput_batches)])
    with tempfile.TemporaryDirectory() as tmp:
        path = prepare(source, input_size, DATASETS[dataset], Path(tmp))
        backend = load_backend(path, device, verify)
        try:
            return _measure(backend, name, batch, frame_size, warmup,
                            iters, end_to_end, throughput_batches)
        finally:
            backend.close()


def _measure(backend: Backend, name: str, batch: int, frame_size: tuple[int, int] | None,
             warmup: int, iters: int, end_to_end: bool,
             throughput_batches: tuple[int, ...]) -> BenchResult:
    too_big = [n for n in (batch, *throughput_batches)
               if backend.max_batch is not None and n > backend.max_batch]
    if too_big:
        raise BenchOptionError(f"{backend.path.name} has a static batch of {backend.max_batch}: "
                               f"batch {too_big[0]} needs a dynamic-batch model (`lgcnet export "
                               f"... --dynamic-batch`, or benchmark the checkpoint)")
    seg = Segmenter(backend)
    size = tuple(backend.meta.input_size)
    frame = test_frame(frame_size or size)

    def batch_of(n: int) -> np.ndarray:
        return seg.preprocess([test_frame(size)] * n)

    x = batch_of(batch)
    network = time_calls(lambda: backend.infer(x), warmup, iters, f"{name} network")
    e2e = time_calls(lambda: seg.predict(frame), warmup, iters,
                     f"{name} end-to-end") if end_to_end else None
    throughput = {}
    for n in throughput_batches:
        xb = batch_of(n)
        throughput[n] = n * time_calls(lambda xb=xb: backend.infer(xb), 2,
                                       max(3, iters // n), f"{name} batch {n}").fps
    return BenchResult(name, backend.name, backend.device, backend.meta.precision, batch, size,
                       network, e2e, frame.shape[:2] if end_to_end else None, throughput,
                       machine_info(backend), network_threads(backend))


def import_lraspp():
    """torchvision's LR-ASPP factory, also beside a CPU torch with a CUDA torchvision wheel.

    PyPI's torchvision wheels are CUDA builds: beside the CPU torch their C++ ops do not load,
    and torchvision 0.28 then fails registering fake kernels for nms/qnms at import. The
    segmentation models use none of those ops, so declaring the two schemas lets it import.
    """
    import sys

    try:
        from torchvision.models.segmentation import lraspp_mobilenet_v3_large
    except RuntimeError as e:
        if "torchvision::nms" not in str(e):
            raise MissingExtraError(f"--compare: torchvision does not import ({e}); install "
                                    f"the one built for your torch: {COMPARE_INSTALL}") from e
    except ImportError as e:
        raise MissingExtraError(f"--compare needs torch and torchvision ({e}): "
                                f"{COMPARE_INSTALL}") from e
    else:
        return lraspp_mobilenet_v3_large
    import torch

    for name in [m for m in sys.modules if m.split(".")[0] == "torchvision"]:
        del sys.modules[name]
    for op in ("nms", "qnms"):
        torch.library.define(f"torchvision::{op}",
                             "(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    from torchvision.models.segmentation import lraspp_mobilenet_v3_large

    return lraspp_mobilenet_v3_large


LRASPP_NAME = "lraspp_mbv3_large"  # the peer's name in metadata, file names and checkpoints


def lraspp_net(num_classes: int) -> nn.Module:
    """torchvision's LR-ASPP MobileNetV3-Large (random init) returning logits only: the one
    definition of the peer, for timing, export and training."""
    from torch import nn

    lraspp_mobilenet_v3_large = import_lraspp()

    class Out(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.m = lraspp_mobilenet_v3_large(weights=None, weights_backbone=None,
                                               num_classes=num_classes)

        def forward(self, x):
            return self.m(x)["out"]

    return Out().eval()


def peer_lraspp(input_size: tuple[int, int], num_classes: int, workdir: Path,
                net: nn.Module | None = None) -> Path:
    """The LR-ASPP peer exported with the same I/O as LGCNet: uint8 frame in, class map out.
    `net`: a trained `lraspp_net` (default: random init, for latency only)."""
    from lgcnet_deploy.core.metadata import ModelMeta
    from lgcnet_deploy.export.pipeline import export_onnx

    ds = next(d for d in DATASETS.values() if d.num_classes == num_classes)
    meta = ModelMeta.for_dataset(ds, input_size=input_size, input_format=INPUT_UINT8_NHWC_BGR,
                                 output_kind=OUTPUT_ARGMAX, genotype_hash=LRASPP_NAME)
    h, w = input_size
    return export_onnx(net if net is not None else lraspp_net(num_classes), meta,
                       workdir / f"{LRASPP_NAME}_{h}x{w}.onnx", dynamic_batch=True, fold=False)


def latency_vs_resolution(source: str | Path, sizes: list[tuple[int, int]], **kw) -> dict:
    """Network latency (ms, mean) at each input size, for sources that can be re-exported."""
    return {f"{h}x{w}": benchmark(source, input_size=(h, w), end_to_end=False, **kw).network.mean
            for h, w in sizes}


def save_json(results: list[BenchResult], path: Path, extra: dict | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"results": [r.to_json() for r in results], **(extra or {})},
                               indent=2))
    return path


def paper_preset(source: str | Path) -> dict[str, Any]:
    """Arguments reproducing the paper's setting on the best backend present, and a warning
    when that is not TensorRT."""
    kw = {"input_size": PAPER["input_size"], "batch": PAPER["batch"],
          "frame_size": PAPER["frame_size"], "dataset": PAPER["dataset"]}
    if tensorrt_gpu():
        return {**kw, "engine": True, "device": "cuda", "warning": None}
    return {**kw, "engine": False, "device": "cpu", "warning": (
        "TensorRT/CUDA not available here: measuring ONNX Runtime on the CPU in fp32 "
        "instead. This is NOT the paper's setting (TensorRT FP16 on a Titan Xp); compare "
        "ratios, not FPS.")}

