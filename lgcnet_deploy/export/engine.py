"""ONNX -> serialized TensorRT engine + sidecar JSON, through Polygraphy's TensorRT loaders.

NVIDIA tests Polygraphy against every TensorRT release and we cannot, so the build goes
through its loaders: NetworkFromOnnxPath (parser, parser errors, strong typing),
CreateConfig (optimisation profile, workspace pool, precision flags, progress monitor),
EngineFromNetwork (build, None checks, timing-cache save and merge) and SaveEngine. Raw
TensorRT API is kept in one place: `_attach_timing_cache`, because CreateConfig ignores the
bool that `IBuilderConfig.set_timing_cache` returns and passes a None cache on to it
(polygraphy/backend/trt/config.py), and a cache that does not load or was made for another
GPU must be reported and moved aside rather than fail every build. The timing-cache
path goes to EngineFromNetwork as a str: Polygraphy locks it with util.LockFile, which
appends ".lock" with `+`. TF32 is asked for (CreateConfig clears it by default; TensorRT and
trtexec keep it on), so fp32 layers run as fast as in a trtexec engine.

Before anything touches TensorRT the ONNX passes the compatibility gate (trt_rules.py); a
graph that breaks a rule is refused with the rules it breaks.

Precision lives in the ONNX (BuilderFlag.FP16/INT8 are deprecated since TensorRT 10.12,
"superseded by strong typing", and gone in 11): fp32 -> as is, fp16 -> an FP16 ONNX, int8 ->
a Q/DQ ONNX with an fp16 body and fp16 scales (strongly typed, each DequantizeLinear outputs
its scale's type, NvInfer.h IDequantizeLayer/IQuantizeLayer). The builder converts nothing:
the export chain's precision step does (pipeline.py; `lgcnet build` goes through it), and
`check_precision` refuses an ONNX that is not yet in the precision asked for. Networks are
strongly typed, except int8 on 10.0-10.11, built weakly typed with BuilderFlag.INT8 + FP16.

Sources (NVIDIA/TensorRT, tools/Polygraphy/polygraphy/backend/trt/): loader.py
(NetworkFromOnnxPath, EngineFromNetwork, SaveEngine), config.py (CreateConfig,
PostprocessConfig), profile.py (Profile); python/docstrings/infer/pyCoreDoc.h
(set_timing_cache returns a bool; get_timing_cache may be None). docs/tensorrt.md has the
full "verified against" table.
"""

from __future__ import annotations

import os
import shlex
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import onnx

from lgcnet_deploy.artifact.describe import fp32_body, has_qdq
from lgcnet_deploy.artifact.engine import INSTALL_TENSORRT, cuda, import_tensorrt
from lgcnet_deploy.artifact.engine.sidecar import write_sidecar
from lgcnet_deploy.artifact.engine.trt_rules import check_onnx, errors
from lgcnet_deploy.core.errors import BadInputError
from lgcnet_deploy.core.metadata import INPUT_UINT8_NHWC_BGR, PRECISIONS, ModelMeta, file_sha256

Shape = tuple[int, int, int]  # (batch, height, width)
# BuilderFlag.INT8/FP16: "Deprecated in TensorRT 10.12. Superseded by strong typing"
# (include/NvInfer.h, release/10.12); removed in 11.0.
STRONG_INT8_FROM = (10, 12)


class TrtRuleError(BadInputError):
    """The ONNX breaks a TensorRT rule (lgcnet check-trt lists them)."""


class PrecisionError(BadInputError):
    """The ONNX is not in the precision the engine is asked for (the export chain converts)."""


def parse_shape(text: str) -> Shape:
    """'BxHxW' (e.g. 1x769x1537) -> (B, H, W)."""
    try:
        b, h, w = (int(p) for p in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"expected a shape BxHxW like 1x360x480, got {text!r}") from None
    return b, h, w


def _tensor_shape(meta: ModelMeta, s: Shape) -> tuple[int, ...]:
    b, h, w = s
    return (b, h, w, 3) if meta.input_format == INPUT_UINT8_NHWC_BGR else (b, 3, h, w)


def resolve_shapes(model: onnx.ModelProto, meta: ModelMeta, batch: int | None,
                   profile: tuple[Shape, Shape, Shape] | None) -> tuple[Shape, Shape, Shape]:
    """(min, opt, max) input shapes, all equal for a static engine; checked against the ONNX."""
    dims = [d.dim_value or None for d in model.graph.input[0].type.tensor_type.shape.dim]
    onnx_bhw = (dims[0], *(dims[1:3] if meta.input_format == INPUT_UINT8_NHWC_BGR else dims[2:4]))
    if profile is None:
        if batch is None and None in onnx_bhw:
            raise ValueError("the ONNX has dynamic axes: pass --batch N for a static engine or "
                             "--min/--opt/--max BxHxW for an optimisation profile")
        s = (batch or onnx_bhw[0], onnx_bhw[1], onnx_bhw[2])
        if None in s:
            raise ValueError("the ONNX has a dynamic height/width: give --min/--opt/--max BxHxW")
        profile = (s, s, s)
    for s in profile:
        for axis, want, got in zip(("batch", "height", "width"), onnx_bhw, s):
            if want is not None and want != got:
                raise ValueError(f"the ONNX has a static {axis} of {want}, asked for {got}; "
                                 f"re-export (lgcnet export --batch/--imgsz/--dynamic-batch)")
    if not all(lo <= mid <= hi for lo, mid, hi in zip(*profile)):
        raise ValueError(f"need min <= opt <= max on every axis, got {profile}")
    return profile


def check_precision(model: onnx.ModelProto, onnx_path: Path, precision: str,
                    engine_path: Path) -> ModelMeta:
    """`model`'s metadata, once it is in `precision` as the engine runs it (int8: Q/DQ with
    an fp16 body); anything else is refused with the `lgcnet build` that converts it."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    meta = ModelMeta.from_props({p.key: p.value for p in model.metadata_props}, onnx_path)
    if meta.precision != precision:
        what = f"an {meta.precision} ONNX"
    elif precision == "int8" and not has_qdq(model):
        what = "an int8 ONNX without Q/DQ nodes"
    elif precision == "int8" and fp32_body(model):  # strongly typed: the body would run fp32
        what = "a Q/DQ ONNX with an fp32 body"
    else:
        return meta
    raise PrecisionError(f"{onnx_path} is {what}, and the engine builder converts nothing: "
                         f"build it through the export chain, which brings it to {precision} "
                         f"first: `lgcnet build {onnx_path} -o {engine_path} --precision "
                         f"{precision}` (Python: export.pipeline.make_engine)")


def _progress_monitor(trt: Any) -> Any:
    """A tqdm bar per TensorRT build phase (trt.IProgressMonitor, TensorRT >= 10)."""
    from tqdm import tqdm

    class TqdmMonitor(trt.IProgressMonitor):
        def __init__(self) -> None:
            trt.IProgressMonitor.__init__(self)
            self._bars: dict[str, Any] = {}
            self._lock = threading.Lock()  # TensorRT may call from several threads

        def phase_start(self, phase_name: str, parent_phase: str | None, num_steps: int) -> None:
            with self._lock:
                self._bars[phase_name] = tqdm(total=num_steps, desc=phase_name, leave=False,
                                              position=len(self._bars))

        def step_complete(self, phase_name: str, step: int) -> bool:
            with self._lock:
                if phase_name in self._bars:
                    self._bars[phase_name].update(step + 1 - self._bars[phase_name].n)
            return True  # False would cancel the build

        def phase_finish(self, phase_name: str) -> None:
            with self._lock:
                bar = self._bars.pop(phase_name, None)
                if bar is not None:
                    bar.close()

    return TqdmMonitor()


def build_command(onnx_path: Path, engine_path: Path, precision: str,
                  shapes: tuple[Shape, Shape, Shape], workspace_mib: int) -> str:
    """The `lgcnet build` command line that reproduces an engine (stored in the sidecar)."""
    if shapes[0] == shapes[2]:
        shape_args = f"--batch {shapes[0][0]}"
    else:
        shape_args = " ".join(f"--{k} {'x'.join(map(str, s))}"
                              for k, s in zip(("min", "opt", "max"), shapes))
    return (f"lgcnet build {shlex.quote(str(onnx_path))} -o {shlex.quote(str(engine_path))} "
            f"--precision {precision} {shape_args} --workspace {workspace_mib}")


def gate(model: onnx.ModelProto, path: Path, dynamic: bool) -> None:
    """Refuse `model` if it breaks a TensorRT rule; warnings are printed, not fatal. A Q/DQ
    graph must have the fp16 body the export chain's precision step gives it."""
    findings = check_onnx(model, profiled_inputs={model.graph.input[0].name} if dynamic else (),
                          fp16_body=True)
    broken = errors(findings)
    if broken:
        first = broken[0]
        rules = sorted({f.rule for f in broken})
        raise TrtRuleError(f"{path} breaks TensorRT rules; not building it: {len(broken)} "
                           f"error(s) in {', '.join(f'[{r}]' for r in rules)}, first at "
                           f"{first.where}: {first.message} (`lgcnet check-trt {path}` lists "
                           f"all)")
    for f in findings:
        warnings.warn(str(f), stacklevel=3)


def weakly_typed(precision: str, tensorrt_version: str) -> bool:
    """Whether to build weakly typed with BuilderFlag.INT8 + FP16: int8 on TensorRT 10.0-10.11
    only; everything else strongly typed (every tensor in its ONNX type)."""
    major_minor = tuple(int(p) for p in tensorrt_version.split(".")[:2])
    return precision == "int8" and major_minor < STRONG_INT8_FROM


def precision_flags(weak: bool) -> dict[str, bool]:
    """CreateConfig's precision arguments: TF32 on, INT8 + FP16 for a weakly typed build."""
    return {"tf32": True, "int8": weak, "fp16": weak}


def _import_polygraphy() -> Any:
    try:
        from polygraphy.backend import trt as pg
    except ImportError as e:
        raise ImportError(f"`lgcnet build` needs NVIDIA Polygraphy (pip install polygraphy). "
                          f"{INSTALL_TENSORRT}") from e
    return pg


def _set_aside(cache_path: Path) -> Path:
    """Move a cache TensorRT would not take to `<cache>.refused` (the build then starts a
    fresh one at `cache_path`, and Polygraphy's save has nothing stale to merge)."""
    aside = cache_path.with_name(cache_path.name + ".refused")
    os.replace(cache_path, aside)
    return aside


def _attach_timing_cache(config: Any, cache_path: Path) -> None:
    """Load `cache_path` (if any) into `config`; a cache that does not load or is refused is
    reported, moved aside, and the build goes on without it.

    `create_timing_cache` returns None for a blob it cannot read (pybind11's nullptr; NVIDIA
    checks for it in shared/utils/cacheUtils.cpp:67-71) and `set_timing_cache` takes an
    `ITimingCache&` (python/src/infer/pyCore.cpp:1740-1742), so None must never reach it;
    its bool says whether the cache fits this GPU/TensorRT (pyCoreDoc.h, set_timing_cache).
    """
    blob = cache_path.read_bytes() if cache_path.is_file() else b""
    try:
        cache = config.create_timing_cache(blob)
    except (RuntimeError, TypeError, ValueError):
        cache = None
    if cache is not None and config.set_timing_cache(cache, ignore_mismatch=False):
        return
    why = ("does not load (corrupt or truncated)" if cache is None else
           "was made for another GPU or TensorRT")
    where = f"; moved to {_set_aside(cache_path)}" if blob else ""
    warnings.warn(f"timing cache {cache_path} {why}{where}; building without it (a fresh "
                  f"cache is saved after the build)", stacklevel=2)


def _config(trt: Any, pg: Any, shapes: dict[str, list[tuple[int, ...]]], workspace_mib: int,
            weak: bool, cache_path: Path | None, progress: bool, detailed: bool = False) -> Any:
    """Polygraphy's CreateConfig: one profile (min, opt, max per input; also for a dynamic
    batch with min == max), workspace pool, precision flags, progress bars, and our checked
    timing-cache load."""
    config = pg.CreateConfig(
        profiles=[pg.Profile().add(name, *s) for name, s in shapes.items()],
        memory_pool_limits={trt.MemoryPoolType.WORKSPACE: workspace_mib << 20},
        progress_monitor=_progress_monitor(trt) if progress else None,
        # DETAILED: the engine inspector then shows each layer's precision (lgcnet checks)
        profiling_verbosity=trt.ProfilingVerbosity.DETAILED if detailed else None,
        **precision_flags(weak))
    if cache_path is None:
        return config
    return pg.PostprocessConfig(config, lambda builder, network, cfg: _attach_timing_cache(
        cfg, cache_path))


def _engine_io(engine: Any) -> list[dict[str, Any]]:
    names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
    return [{"name": n, "mode": engine.get_tensor_mode(n).name,
             "dtype": engine.get_tensor_dtype(n).name, "shape": list(engine.get_tensor_shape(n)),
             "format": engine.get_tensor_format_desc(n)} for n in names]


def engine_loader(pg: Any, network: Any, config: Any, cache_path: Path | None) -> Any:
    """Polygraphy's EngineFromNetwork, saving and merging the timing cache at `cache_path`
    (a str: Polygraphy's util.LockFile appends ".lock" to it with `+`)."""
    return pg.EngineFromNetwork(network, config, save_timing_cache=None if cache_path is None
                                else str(cache_path))


def _build_and_save(pg: Any, network: Any, config: Any, cache_path: Path | None,
                    engine_path: Path, verbose: bool, what: str) -> Any:
    """Build through Polygraphy and save atomically (a failed build leaves no engine)."""
    from polygraphy.logger import G_LOGGER

    tmp = engine_path.with_name(engine_path.name + ".partial")
    try:
        with G_LOGGER.verbosity(G_LOGGER.EXTRA_VERBOSE if verbose else G_LOGGER.WARNING):
            engine = pg.SaveEngine(engine_loader(pg, network, config, cache_path), str(tmp))()
    except Exception as e:  # Polygraphy raises PolygraphyException with TensorRT's errors logged
        tmp.unlink(missing_ok=True)
        raise RuntimeError(f"TensorRT could not build {what}: {e}; rerun with --verbose to "
                           f"see why") from e
    os.replace(tmp, engine_path)
    return engine


def build_engine(onnx_path: str | Path, engine_path: str | Path, *, precision: str = "fp16",
                 batch: int | None = None, profile: tuple[Shape, Shape, Shape] | None = None,
                 workspace_mib: int = 2048, timing_cache: str | Path | None = None,
                 use_timing_cache: bool = True, device: int = 0, verbose: bool = False,
                 progress: bool = True, detailed: bool = False,
                 rebuild_from: str | Path | None = None) -> Path:
    """Build `onnx_path`, already in `precision` (`check_precision`), into a TensorRT engine
    at `engine_path` plus `<engine>.json`; `make_engine` in export/pipeline.py converts first.

    `batch` makes a static engine; `profile` = (min, opt, max) (B, H, W) a dynamic one; an
    ONNX with a dynamic batch always gets a profile (min == max for `batch`). The timing
    cache defaults to engines-dir/timing-trt<version>-sm<cc>.cache (it is only valid for one
    TensorRT version and GPU), so rebuilds take seconds instead of minutes. `rebuild_from`
    (default `onnx_path`) is the ONNX the sidecar names and rebuilds from: the one `lgcnet
    build` was given, before the precision step converted it.
    """
    built_onnx, engine_path = Path(onnx_path), Path(engine_path)
    source = built_onnx if rebuild_from is None else Path(rebuild_from)
    if not built_onnx.is_file():
        raise FileNotFoundError(f"ONNX model not found: {built_onnx}")
    model = onnx.load(str(built_onnx), load_external_data=False)
    meta = check_precision(model, built_onnx, precision, engine_path)
    shapes = resolve_shapes(model, meta, batch, profile)
    input_dims = model.graph.input[0].type.tensor_type.shape.dim
    dynamic = any(not d.HasField("dim_value") for d in input_dims)
    gate(model, built_onnx, dynamic)
    trt, pg = import_tensorrt(), _import_polygraphy()
    cuda.set_device(device)
    gpu = cuda.device_info(device)
    engine_path.parent.mkdir(parents=True, exist_ok=True)
    weak = weakly_typed(precision, trt.__version__)
    cache_path = (Path(timing_cache) if timing_cache else engine_path.parent / (
        f"timing-trt{trt.__version__}-sm{gpu['compute_capability'].replace('.', '')}.cache")
        ) if use_timing_cache else None
    config = _config(trt, pg, {model.graph.input[0].name: [_tensor_shape(meta, s)
                                                            for s in shapes]},
                     workspace_mib, weak, cache_path, progress, detailed)
    network = pg.NetworkFromOnnxPath(str(built_onnx), strongly_typed=not weak)
    t0 = time.perf_counter()
    engine = _build_and_save(pg, network, config, cache_path, engine_path, verbose,
                             f"{built_onnx} ({precision})")
    seconds = time.perf_counter() - t0
    write_sidecar(engine_path, {
        "tensorrt": trt.__version__, "gpu": gpu, "precision": precision,
        "strongly_typed": not weak, "io": _engine_io(engine),
        "engine_sha256": file_sha256(engine_path),
        "shapes": {k: list(_tensor_shape(meta, s)) for k, s in zip(("min", "opt", "max"),
                                                                   shapes)},
        "onnx": {"path": str(source), "sha256": file_sha256(source)},
        "built_onnx": {"path": str(built_onnx), "sha256": file_sha256(built_onnx)},
        "meta": meta.to_dict(),
        "build": {"command": build_command(source, engine_path, precision, shapes,
                                           workspace_mib),
                  "seconds": round(seconds, 1), "workspace_mib": workspace_mib,
                  "timing_cache": str(cache_path) if cache_path else None,
                  "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())},
    })
    return engine_path
