"""Latency lookup table (§III-C c): the measured latency of every op the supernet can place.

A key is one op at one shape: (op, c_in, c_out, stride, in H x W, out H x W); its value is
the op's marginal cost between two 1x1 convs (what surrounds every edge in the network) over
a same-shape stand-in, and 0 for the zero op (derived networks drop those edges). The table is a
JSON file with a header naming the backend, device, library versions, input size and widths
it was measured for; a lookup of a missing key is an error (never a silent re-measure), and
loading a table measured on this device with other library versions fails with the command
that rebuilds it. A table measured on another device is that device's record (the search's
target need not be the machine that searches: the GPU sprint reads the CPU table) and loads
as is.

`frame_us` is the latency of everything that is not searched (stem, cell pre-processing,
fusion 1x1 reductions, classifier, resize, in-graph I/O): the measured whole network of a
reference genotype minus its LUT sum. A trunk (`space.TRUNKS`) replaces the stem and the
reduction cells, so its frame has a cost of its own, `stem_frame_us[trunk]`, measured the same
way on a trunk genotype. `predict(genotype)` = its frame's cost + Σ edge latencies.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, NamedTuple

from lgcnet_deploy.core.metadata import read_json
from lgcnet_deploy.core.timing import time_calls
from lgcnet_deploy.model.genotype import Genotype, Widths
from lgcnet_deploy.model.space import DEFAULT_STEM, TRUNKS
from lgcnet_research.base.edges import EdgeSpec, edge_specs, genotype_choices, genotype_edge_specs
from lgcnet_research.base.machine import device_name

LUT_SCHEMA = "lgcnet-lut/1"


class LutError(ValueError):
    """A latency table is malformed, for another setting, or lacks a key."""


class LutKey(NamedTuple):
    op: str
    c_in: int
    c_out: int
    stride: int
    in_hw: tuple[int, int]
    out_hw: tuple[int, int]

    def encode(self) -> str:
        return (f"{self.op}|{self.c_in}|{self.c_out}|{self.stride}|"
                f"{self.in_hw[0]}x{self.in_hw[1]}|{self.out_hw[0]}x{self.out_hw[1]}")

    @classmethod
    def decode(cls, s: str) -> LutKey:
        try:
            op, ci, co, st, i, o = s.split("|")
            hw = [tuple(int(v) for v in t.split("x")) for t in (i, o)]
            return cls(op, int(ci), int(co), int(st), hw[0], hw[1])
        except ValueError as e:
            raise LutError(f"malformed LUT key {s!r} (expected op|cin|cout|stride|HxW|HxW)") \
                from e

    @classmethod
    def of(cls, spec: EdgeSpec, op: str) -> LutKey:
        return cls(op, spec.c_in, spec.c_out, spec.stride, spec.in_hw, spec.out_hw)


def library_versions(backend: str) -> dict[str, str]:
    import torch

    versions = {"torch": torch.__version__}
    if backend.startswith("onnxruntime"):
        import onnxruntime

        versions["onnxruntime"] = onnxruntime.__version__
    return versions


@dataclass
class LatencyTable:
    """Header + {key: microseconds}."""

    backend: str
    device: str
    versions: dict[str, str]
    input_size: tuple[int, int]
    widths: Widths
    reductions: tuple[int, ...]
    entries: dict[LutKey, float] = field(default_factory=dict)
    frame_us: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)
    stem_frame_us: dict[str, float] = field(default_factory=dict)  # trunk -> its frame

    def __getitem__(self, key: LutKey) -> float:
        try:
            return self.entries[key]
        except KeyError:
            raise LutError(f"latency table ({self.backend}, {self.input_size[0]}x"
                           f"{self.input_size[1]}) has no entry {key.encode()!r}; it was "
                           f"measured for other widths or input size: rebuild it with "
                           f"`lgcnet lut --imgsz {self.input_size[0]}x{self.input_size[1]}` "
                           f"and the search's widths") from None

    def edge_latencies(self, specs: Iterable[EdgeSpec]) -> list[list[float]]:
        """Per edge, the latency (µs) of each of its choices, in choice order."""
        return [[self[LutKey.of(s, op)] for op in s.choices] for s in specs]

    def ops_us(self, genotype: Genotype) -> float:
        """Σ over edges of the chosen op's latency (Eq. 8-9 with one-hot z)."""
        specs = genotype_edge_specs(genotype, self.input_size)
        return sum(self[LutKey.of(s, op)] for s, op in zip(specs, genotype_choices(genotype)))

    def frame_cost_us(self, genotype: Genotype) -> float:
        """The latency of `genotype`'s unsearched frame: the paper's, or its trunk's."""
        return self.trunk_frame_us(genotype.stem) if genotype.has_trunk else self.frame_us

    def trunk_frame_us(self, stem: str) -> float:
        """The frame cost of trunk `stem` (`space.TRUNKS`); LutError if it was not measured."""
        if stem not in self.stem_frame_us:
            raise LutError(f"latency table ({self.backend}, {self.input_size[0]}x"
                           f"{self.input_size[1]}) has no frame cost for trunk "
                           f"{stem!r}: add it with `lgcnet lut --add-trunks TABLE`")
        return self.stem_frame_us[stem]

    def predict_ms(self, genotype: Genotype) -> float:
        """Predicted whole-network latency: fixed frame + searched ops."""
        return (self.frame_cost_us(genotype) + self.ops_us(genotype)) / 1000.0

    # -- file --------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": LUT_SCHEMA, "backend": self.backend, "device": self.device,
            "versions": self.versions, "input_size": list(self.input_size),
            "widths": self.widths.to_dict(),
            "reductions": list(self.reductions), "frame_us": self.frame_us,
            "stem_frame_us": self.stem_frame_us, "extra": self.extra, "unit": "microseconds",
            "entries": {k.encode(): round(v, 2) for k, v in sorted(self.entries.items())},
        }

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=1) + "\n")
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: str | Path, check_versions: bool = True) -> LatencyTable:
        """Read a table; with `check_versions`, refuse one measured on this device with other
        libraries (stale); a table of another device loads as is."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"latency table not found: {path}; measure one with "
                                    f"`lgcnet lut -o {path}`")
        d = read_json(path, LutError)
        if not isinstance(d, dict) or d.get("schema") != LUT_SCHEMA:
            got = d.get("schema") if isinstance(d, dict) else type(d).__name__
            raise LutError(f"{path}: schema {got!r}, expected {LUT_SCHEMA!r}; re-measure "
                           f"with `lgcnet lut -o {path}`")
        try:
            table = cls(d["backend"], d["device"], dict(d["versions"]),
                        tuple(d["input_size"]),
                        Widths.from_dict(d["widths"]),
                        tuple(d["reductions"]),
                        {LutKey.decode(k): float(v) for k, v in d["entries"].items()},
                        float(d["frame_us"]), dict(d.get("extra", {})),
                        {k: float(v) for k, v in d.get("stem_frame_us", {}).items()})
        except (KeyError, TypeError, ValueError) as e:
            raise LutError(f"{path}: malformed latency table ({type(e).__name__}: {e})") from e
        if check_versions and table.measured_here():
            here = library_versions(table.backend)
            diff = {k: (v, here.get(k)) for k, v in table.versions.items() if here.get(k) != v}
            if diff:
                said = ", ".join(f"{k} {a} (installed: {b})" for k, (a, b) in diff.items())
                raise LutError(f"{path} was measured with {said}: latencies do not carry "
                               f"across library versions; re-measure with `lgcnet lut "
                               f"--backend {table.backend} --imgsz {table.input_size[0]}x"
                               f"{table.input_size[1]} -o {path}`")
        return table

    def measured_here(self) -> bool:
        """Whether this machine is the device the table was measured on."""
        try:
            return device_name(self.backend) == self.device
        except (RuntimeError, AssertionError):  # a CUDA table read where CUDA is absent
            return False

    def check_matches(self, widths: Widths, reductions: tuple[int, ...],
                      stem: str = DEFAULT_STEM) -> None:
        """Whether a search space's edges are this table's. After a trunk (`space.TRUNKS`)
        the cells are normal cells at their strides (4, 8, 16) and the stem widths and reductions
        play no part: the cell and fusion widths must match, and the trunk's frame be
        measured."""
        if stem in TRUNKS:
            self.trunk_frame_us(stem)
            if (widths.cells, widths.fusion) != (self.widths.cells, self.widths.fusion):
                raise LutError(f"latency table is for cell widths {list(self.widths.cells)} "
                               f"and fusion width {self.widths.fusion}, the trunk search uses "
                               f"{list(widths.cells)} and {widths.fusion}: search with the "
                               f"table's widths or measure a table for these with `lgcnet lut`")
            return
        if widths != self.widths or tuple(reductions) != tuple(self.reductions):
            raise LutError(f"latency table is for widths {self.widths} / reductions "
                           f"{list(self.reductions)}, the search uses {widths} / "
                           f"{list(reductions)}; measure a table for these with `lgcnet lut`")


# -- measurement ---------------------------------------------------------------------------
Timer = Callable[[Any, tuple[int, ...]], float]  # (module, input shape) -> median µs


def _ort_timer(threads: int | None, warmup: int, iters: int, workdir: Path) -> Timer:
    import numpy as np
    import onnxruntime as ort
    import torch

    from lgcnet_deploy.export.to_onnx import onnx_from_module

    def measure(module, shape: tuple[int, ...]) -> float:
        path = workdir / "op.onnx"
        onnx_from_module(module, torch.randn(shape), path)
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
        sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        name = sess.get_inputs()[0].name
        feed = {name: np.random.default_rng(0).standard_normal(shape).astype(np.float32)}
        return time_calls(lambda: sess.run(None, feed), warmup, iters).p50 * 1000.0

    return measure


def _torch_timer(device: str, warmup: int, iters: int) -> Timer:
    import torch

    def measure(module, shape: tuple[int, ...]) -> float:
        module = module.to(device).eval()
        x = torch.randn(shape, device=device)
        with torch.inference_mode():
            if device == "cuda":  # CUDA events: the GPU's own clock, no host jitter
                for _ in range(warmup):
                    module(x)
                times = []
                for _ in range(iters):
                    a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(
                        enable_timing=True)
                    a.record()
                    module(x)
                    b.record()
                    torch.cuda.synchronize()
                    times.append(a.elapsed_time(b) * 1000.0)
                return sorted(times)[len(times) // 2]
            return time_calls(lambda: module(x), warmup, iters).p50 * 1000.0

    return measure


BACKENDS = ("onnxruntime-cpu", "torch-cpu", "torch-cuda")


def make_timer(backend: str, workdir: Path, threads: int | None = None, warmup: int = 3,
               iters: int = 10) -> Timer:
    if backend == "onnxruntime-cpu":
        return _ort_timer(threads, warmup, iters, workdir)
    if backend in ("torch-cpu", "torch-cuda"):
        import torch

        if backend == "torch-cuda" and not torch.cuda.is_available():
            raise RuntimeError("backend torch-cuda needs a CUDA GPU; none is visible here")
        return _torch_timer(backend.split("-")[1], warmup, iters)
    raise LutError(f"unknown LUT backend {backend!r}; choose one of {', '.join(BACKENDS)} "
                   "(TensorRT latency tables are not implemented: measure torch-cuda on the GPU)")


def op_module(key: LutKey, context: bool = True):
    """The op of `key` from the one op table, BN folded, as a one-input module.

    With `context`, the op sits between two 1x1 conv + ReLU layers and its output is added to
    another term, as every searched edge is in the network (cell pre-processing before, a
    node sum and convs after): a backend's cost for an op depends on its neighbours (ONNX
    Runtime keeps chains of convs in its blocked NCHWc layout and reorders around ops that
    leave it). The baseline (key.op == "adapter") is pre -> stand-in -> post, no sum.
    """
    import torch.nn.functional as F
    from torch import nn

    from lgcnet_deploy.model.fold_bn import fold_batchnorm
    from lgcnet_deploy.model.ops import build_op, conv_bn_relu

    class Edge(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.pre = conv_bn_relu(key.c_in, key.c_in, 1) if context else nn.Identity()
            self.op = None if key.op == "adapter" else build_op(key.op, key.c_in, key.c_out,
                                                                 key.stride)
            self.post = conv_bn_relu(key.c_out, key.c_out, 1) if context else nn.Identity()

        def forward(self, x):
            x = self.pre(x)
            other = x[:, :key.c_out, ::key.stride, ::key.stride]  # same-shape stand-in
            if tuple(other.shape[-2:]) != key.out_hw:
                other = F.interpolate(other, size=key.out_hw, mode="nearest")
            if self.op is None:  # the baseline: no op, no node sum
                return self.post(other)
            y = self.op(x, key.out_hw) if key.op in ("deconv", "interp") else self.op(x)
            return self.post(y + other)  # an edge's output joins a node sum

    return fold_batchnorm(Edge()).eval()


def measure_table(widths: Widths, reductions: tuple[int, ...], input_size: tuple[int, int],
                  backend: str, workdir: Path, reference: Genotype, *,
                  threads: int | None = None, warmup: int = 3, iters: int = 10,
                  passes: int = 2, progress: bool = True) -> LatencyTable:
    """Measure every key the supernet can instantiate, then the frame cost on `reference`."""
    from tqdm import tqdm

    workdir.mkdir(parents=True, exist_ok=True)
    timer = make_timer(backend, workdir, threads, warmup, iters)
    specs = edge_specs(widths, reductions, input_size)
    keys = sorted({LutKey.of(s, op) for s in specs for op in s.choices})
    table = LatencyTable(backend, device_name(backend), library_versions(backend),
                         tuple(input_size), widths, tuple(reductions),
                         extra={"created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                                "threads": threads, "warmup": warmup, "iters": iters,
                                "passes": passes, "method": "marginal cost in context",
                                "edges": len(specs)})
    t0 = time.time()
    timed: dict[LutKey, float] = {}
    live = [k for k in keys if k.op != "none"]
    todo = sorted(set(live) | {k._replace(op="adapter") for k in live})
    for p in range(passes):  # each key's best pass: load spikes on a shared machine only add
        for key in tqdm(todo, desc=f"LUT {backend} pass {p + 1}/{passes}",
                        disable=not progress, mininterval=2):
            t = timer(op_module(key), (1, key.c_in, *key.in_hw))
            timed[key] = min(timed.get(key, t), t)
    for key in keys:  # the op's marginal cost in context over the no-op baseline
        table.entries[key] = 0.0 if key.op == "none" else max(
            timed[key] - timed[key._replace(op="adapter")], 0.0)  # zero-op edges are dropped
    call = network_call(reference, input_size, backend, workdir, threads)
    whole = min(time_calls(call, warmup, iters).p50 for _ in range(passes))
    table.frame_us = max(whole * 1000.0 - table.ops_us(reference), 0.0)
    table.extra.update(seconds=round(time.time() - t0, 1), frame_reference=reference.hash,
                       frame_reference_ms=round(whole, 3))
    return add_trunk_frames(table, workdir, threads=threads, warmup=warmup, iters=iters,
                            passes=passes)


def trunk_reference(table: LatencyTable, stem: str) -> Genotype:
    """The genotype a trunk's frame cost is measured on: the trunk genotype
    (`genotypes/lite0_s16_lean.json`, whose cells the shipped `lite0_s16_lean16` keeps at a
    narrower fusion cell) with the table's cell and fusion widths."""
    from lgcnet_deploy.model.genotype import load_genotype

    shipped = load_genotype("lite0_s16_lean")
    widths = Widths(stem=TRUNKS[stem].channels, cells=table.widths.cells,
                    fusion=table.widths.fusion)
    return dataclasses.replace(shipped, stem=stem, widths=widths)


def add_trunk_frames(table: LatencyTable, workdir: Path, *, threads: int | None = None,
                     warmup: int = 3, iters: int = 10, passes: int = 2) -> LatencyTable:
    """Measure every trunk's frame cost (`space.TRUNKS`) into `table.stem_frame_us`: a trunk
    genotype's whole network minus the LUT sum of its edges (which the table already has:
    a trunk's cells have the shapes of the paper's normal cells)."""
    for stem in TRUNKS:
        reference = trunk_reference(table, stem)
        call = network_call(reference, table.input_size, table.backend, workdir, threads)
        whole = min(time_calls(call, warmup, iters).p50 for _ in range(passes))
        table.stem_frame_us[stem] = max(whole * 1000.0 - table.ops_us(reference), 0.0)
        table.extra.setdefault("stem_frame_references", {})[stem] = {
            "genotype": reference.hash, "ms": round(whole, 3)}
    return table


def network_call(genotype: Genotype, input_size: tuple[int, int], backend: str,
                 workdir: Path, threads: int | None = None,
                 num_classes: int = 19) -> Callable[[], object]:
    """One inference of the deployed network (BN folded, uint8 in, argmax out), as a call."""
    import numpy as np

    from lgcnet_deploy.core.classes import CITYSCAPES, DATASETS
    from lgcnet_deploy.core.metadata import INPUT_UINT8_NHWC_BGR, OUTPUT_ARGMAX, ModelMeta
    from lgcnet_deploy.model.network import LGCNet

    dataset = next((d for d in DATASETS.values() if d.num_classes == num_classes), CITYSCAPES)
    h, w = input_size
    frame = np.random.default_rng(0).integers(0, 256, (1, h, w, 3), dtype=np.uint8)
    if backend == "onnxruntime-cpu":
        from lgcnet_deploy.export.pipeline import ArtifactSpec, make_artifact
        from lgcnet_deploy.runtime.backends.onnx_runtime import OnnxRuntimeBackend

        spec = ArtifactSpec(input_size=tuple(input_size), dataset=dataset)
        path = make_artifact(genotype, workdir / f"net_{genotype.hash}.onnx", spec).path
        runner = OnnxRuntimeBackend(path, device="cpu", threads=threads)
        return lambda: runner.infer(frame)
    net = LGCNet(genotype, num_classes).eval()
    meta = ModelMeta.for_dataset(dataset, input_size=tuple(input_size),
                                 input_format=INPUT_UINT8_NHWC_BGR, output_kind=OUTPUT_ARGMAX,
                                 genotype_hash=genotype.hash)
    import torch

    from lgcnet_deploy.model.fold_bn import fold_batchnorm
    from lgcnet_deploy.model.io_wrapper import wrap_io

    device = backend.split("-")[1]
    model = wrap_io(fold_batchnorm(net), meta).to(device)
    x = torch.from_numpy(frame).to(device)

    @torch.inference_mode()
    def call() -> object:
        y = model(x)
        if device == "cuda":
            torch.cuda.synchronize()
        return y

    return call
