"""ONNX -> serialized TensorRT engine + sidecar JSON, on the raw TensorRT Python API.

Why not Polygraphy's loaders: the build is ~10 calls, and the version-specific parts (strong
typing, removed BuilderFlags in 11.x, IProgressMonitor, timing cache) are clearer written
out once here than configured through another layer with its own version gates; Polygraphy
stays the independent checker (`polygraphy run ... --trt --onnxrt`, docs/tensorrt.md).

Precision lives in the ONNX (TensorRT 11 removed BuilderFlag.FP16/INT8): fp32 -> as is,
fp16 -> FP16 ONNX (converted here from fp32 if needed), int8 -> a Q/DQ ONNX. Networks are
strongly typed, except int8 on 10.x where BuilderFlag.INT8+FP16 still exist and let layers
outside Q/DQ pairs run in fp16.

API used (TensorRT 10.x/11.x Python docs):
  Builder, create_network, NetworkDefinitionCreationFlag.STRONGLY_TYPED (10.x; ignored 11.x)
    https://docs.nvidia.com/deeplearning/tensorrt/latest/_static/python-api/infer/Core/Builder.html
  OnnxParser.parse_from_file/num_errors/get_error, IBuilderConfig.set_memory_pool_limit,
  create_optimization_profile/set_shape, create_timing_cache/set_timing_cache/
  get_timing_cache().serialize(), progress_monitor, build_serialized_network
    https://docs.nvidia.com/deeplearning/tensorrt/latest/_static/python-api/infer/Core/BuilderConfig.html
    https://docs.nvidia.com/deeplearning/tensorrt/latest/_static/python-api/infer/Core/ProgressMonitor.html
    https://docs.nvidia.com/deeplearning/tensorrt/latest/_static/python-api/infer/Core/TimingCache.html
  removed in 11.x: https://docs.nvidia.com/deeplearning/tensorrt/latest/api/migration/tensorrt-10x-to-11x-python-api-reference.html
"""

from __future__ import annotations

import os
import shlex
import threading
import time
from pathlib import Path
from typing import Any

import onnx

from lgcnet_deploy.core import cuda
from lgcnet_deploy.core.metadata import INPUT_UINT8_NHWC_BGR, ModelMeta, file_sha256
from lgcnet_deploy.export.engine import import_tensorrt, trt_logger
from lgcnet_deploy.export.engine.sidecar import write_sidecar

PRECISIONS = ("fp16", "int8", "fp32")
Shape = tuple[int, int, int]  # (batch, height, width)


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


def prepare_onnx(onnx_path: Path, precision: str, engine_path: Path) -> tuple[Path, ModelMeta]:
    """The ONNX to build for `precision` (FP16 converted beside the engine if needed)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    model = onnx.load(str(onnx_path), load_external_data=False)
    meta = ModelMeta.from_props({p.key: p.value for p in model.metadata_props})
    if precision == "fp16" and meta.precision == "fp32":
        from lgcnet_deploy.export.fp16 import convert_fp16

        fp16_path = engine_path.with_name(engine_path.stem + ".fp16.onnx")
        return convert_fp16(onnx_path, fp16_path), meta.replace(precision="fp16")
    if precision == "int8":
        if not any(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in model.graph.node):
            raise ValueError(f"{onnx_path} has no Q/DQ nodes: INT8 engines are built from a "
                             f"quantised ONNX (lgcnet_deploy.quantize); TensorRT 11 has no "
                             f"implicit INT8 calibration")
    elif meta.precision != precision:
        raise ValueError(f"{onnx_path} is a {meta.precision} model, asked for {precision}")
    return onnx_path, meta.replace(precision=precision)


def _progress_monitor(trt: Any) -> Any:
    """A tqdm bar per TensorRT build phase (IProgressMonitor, TensorRT >= 10)."""
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


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".partial")
    tmp.write_bytes(data)
    os.replace(tmp, path)


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


def build_engine(onnx_path: str | Path, engine_path: str | Path, *, precision: str = "fp16",
                 batch: int | None = None, profile: tuple[Shape, Shape, Shape] | None = None,
                 workspace_mib: int = 2048, timing_cache: str | Path | None = None,
                 use_timing_cache: bool = True, device: int = 0, verbose: bool = False,
                 progress: bool = True) -> Path:
    """Build `onnx_path` into a TensorRT engine at `engine_path` plus `<engine>.json`.

    `batch` makes a static engine; `profile` = (min, opt, max) (B, H, W) makes a dynamic one.
    The timing cache defaults to engines-dir/timing-trt<version>-sm<cc>.cache (it is only
    valid for one TensorRT version and GPU), so rebuilds take seconds instead of minutes.
    """
    onnx_path, engine_path = Path(onnx_path), Path(engine_path)
    if not onnx_path.is_file():
        raise FileNotFoundError(f"ONNX model not found: {onnx_path}")
    trt = import_tensorrt()
    cuda.set_device(device)
    gpu = cuda.device_info(device)
    engine_path.parent.mkdir(parents=True, exist_ok=True)
    built_onnx, meta = prepare_onnx(onnx_path, precision, engine_path)
    model = onnx.load(str(built_onnx), load_external_data=False)
    shapes = resolve_shapes(model, meta, batch, profile)
    input_name = model.graph.input[0].name

    logger = trt_logger(trt, verbose)
    builder = trt.Builder(logger)
    weak_int8 = precision == "int8" and hasattr(trt.BuilderFlag, "INT8")  # 10.x only
    flags = 0
    if not weak_int8 and int(trt.__version__.split(".")[0]) == 10:
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(built_onnx)):
        errors = "\n".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"TensorRT's ONNX parser rejected {built_onnx}:\n{errors}")

    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_mib << 20)
    if weak_int8:
        config.set_flag(trt.BuilderFlag.INT8)
        config.set_flag(trt.BuilderFlag.FP16)
    if shapes[0] != shapes[2]:
        opt_profile = builder.create_optimization_profile()
        opt_profile.set_shape(input_name, *(_tensor_shape(meta, s) for s in shapes))
        config.add_optimization_profile(opt_profile)
    cache_path = None
    if use_timing_cache:
        cache_path = Path(timing_cache) if timing_cache else engine_path.parent / (
            f"timing-trt{trt.__version__}-sm{gpu['compute_capability'].replace('.', '')}.cache")
        blob = cache_path.read_bytes() if cache_path.is_file() else b""
        config.set_timing_cache(config.create_timing_cache(blob), ignore_mismatch=False)
    monitor = _progress_monitor(trt) if progress and hasattr(trt, "IProgressMonitor") else None
    if monitor is not None:
        config.progress_monitor = monitor

    t0 = time.perf_counter()
    serialized = builder.build_serialized_network(network, config)
    seconds = time.perf_counter() - t0
    if serialized is None:
        raise RuntimeError(f"TensorRT could not build {built_onnx} ({precision}); rerun with "
                           f"--verbose to see why")
    _write_atomic(engine_path, bytes(serialized))
    if cache_path is not None:
        _write_atomic(cache_path, bytes(config.get_timing_cache().serialize()))

    engine = trt.Runtime(logger).deserialize_cuda_engine(bytes(serialized))
    if engine is None:
        raise RuntimeError(f"TensorRT built {engine_path} but cannot deserialize it")
    io = [{"name": n, "mode": engine.get_tensor_mode(n).name,
           "dtype": engine.get_tensor_dtype(n).name, "shape": list(engine.get_tensor_shape(n)),
           "format": engine.get_tensor_format_desc(n)
           if hasattr(engine, "get_tensor_format_desc") else None}
          for n in (engine.get_tensor_name(i) for i in range(engine.num_io_tensors))]
    write_sidecar(engine_path, {
        "tensorrt": trt.__version__, "gpu": gpu, "precision": precision,
        "strongly_typed": not weak_int8, "io": io, "engine_sha256": file_sha256(engine_path),
        "shapes": {k: list(_tensor_shape(meta, s)) for k, s in zip(("min", "opt", "max"),
                                                                   shapes)},
        "onnx": {"path": str(onnx_path), "sha256": file_sha256(onnx_path)},
        "built_onnx": {"path": str(built_onnx), "sha256": file_sha256(built_onnx)},
        "meta": meta.to_dict(),
        "build": {"command": build_command(onnx_path, engine_path, precision, shapes,
                                           workspace_mib),
                  "seconds": round(seconds, 1), "workspace_mib": workspace_mib,
                  "timing_cache": str(cache_path) if cache_path else None,
                  "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())},
    })
    return engine_path
