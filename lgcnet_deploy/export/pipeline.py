"""The one pipeline from a model source to a deployable artifact.

    source: checkpoint (.pt), genotype (name, JSON path or Genotype), or an ONNX file
      → network + metadata            (model stage: load_net)
      → ONNX: BN folded, in-graph I/O  (export/to_onnx)
      → INT8 Q/DQ or FP16 ONNX         (export/int8, export/fp16)
      → TensorRT engine + sidecar      (export/engine), when the output ends in .engine

`make_artifact` is the entry; `lgcnet export`, `lgcnet quantize`, `lgcnet bench`, the parity
tool and the latency table's whole-network timing all go through it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from lgcnet_deploy.core.classes import CAMVID, Dataset
from lgcnet_deploy.core.errors import BadInputError
from lgcnet_deploy.core.formats import find_format, format_of
from lgcnet_deploy.core.metadata import (
    INPUT_UINT8_NHWC_BGR,
    OUTPUT_ARGMAX,
    PRECISIONS,
    ModelMeta,
)
from lgcnet_deploy.model.genotype import Genotype
from lgcnet_deploy.model.shipped import resolve_model


class ArtifactError(BadInputError):
    """A source cannot become the artifact asked for; the message says what to do instead."""


@dataclass(frozen=True)
class ArtifactSpec:
    """What the deployable artifact should be. `input_size` None keeps the source's."""

    input_size: tuple[int, int] | None = None
    input_format: str = INPUT_UINT8_NHWC_BGR
    output_kind: str = OUTPUT_ARGMAX
    batch: int = 1
    dynamic_batch: bool = False
    opset: int = 17
    simplify: bool = True
    dataset: Dataset = CAMVID  # the classes of a genotype source (checkpoints carry theirs)
    precision: str = "fp32"
    int8_target: str = "tensorrt"  # the Q/DQ encoding: "tensorrt" (symmetric) or "cpu" (u8s8)
    int8_method: str = "minmax"
    calibration: tuple[Path, ...] | None = None  # frames; None: the shipped calibration list


@dataclass(frozen=True)
class Artifact:
    path: Path
    meta: ModelMeta
    trained: bool  # False: a genotype exported with random weights (speed work only)


def make_artifact(source: str | Path | Genotype, output: str | Path,
                  spec: ArtifactSpec = ArtifactSpec()) -> Artifact:
    """Turn `source` into the artifact at `output` (.onnx or .engine) that `spec` describes."""
    if spec.precision not in PRECISIONS:
        raise ArtifactError(f"precision must be one of {', '.join(PRECISIONS)}, "
                            f"got {spec.precision!r}")
    if spec.batch < 1:
        raise ArtifactError(f"batch must be >= 1, got {spec.batch}")
    output = Path(output)
    target = format_of(output)
    if target.name not in ("onnx", "engine"):
        raise ArtifactError(f"{output}: artifacts are .onnx or .engine files")
    if target.name == "engine":
        onnx_out = output.with_suffix(".onnx")
    elif spec.precision == "fp32":
        onnx_out = output
    else:  # the fp32 export stays beside the converted model
        onnx_out = output.with_name(f"{output.stem}.fp32.onnx")
    onnx_path, meta, trained = _fp32_onnx(source, onnx_out, spec)
    if target.name == "engine":
        return Artifact(_build_engine(onnx_path, output, spec), meta, trained)
    if spec.precision == "int8":
        onnx_path = _quantize(onnx_path, output, spec)
    elif spec.precision == "fp16":
        from lgcnet_deploy.export.fp16 import convert_fp16

        onnx_path = convert_fp16(onnx_path, output)
    return Artifact(onnx_path, meta.replace(precision=spec.precision), trained)


def deployable_path(source: str | Path | Genotype, workdir: Path,
                    spec: ArtifactSpec = ArtifactSpec()) -> Path:
    """A file the runtime loads: an existing .onnx/.engine as it is (checked against `spec`),
    anything else exported by `make_artifact` into `workdir`."""
    fmt = None if isinstance(source, Genotype) else find_format(source)
    if fmt is not None and fmt.deployable and Path(source).is_file():
        check_input_sizes(Path(source), [("input size", spec.input_size)])
        return Path(source)
    name = source.hash if isinstance(source, Genotype) else Path(str(source)).stem
    return make_artifact(source, workdir / f"{name}.onnx", spec).path


def _fp32_onnx(source: str | Path | Genotype, onnx_out: Path,
               spec: ArtifactSpec) -> tuple[Path, ModelMeta, bool]:
    """The fp32 ONNX to start from: an ONNX source as it is, else a fresh export."""
    if not isinstance(source, Genotype):
        source = resolve_model(source)
    fmt = None if isinstance(source, Genotype) else find_format(source)
    if fmt is not None and fmt.name == "onnx":
        path = Path(source)
        check_input_sizes(path, [("input size", spec.input_size)])
        return path, _onnx_meta(path), True
    if fmt is not None and fmt.name == "engine":
        raise ArtifactError(f"{source}: an engine is already the last stage; build another "
                            f"from its ONNX (`lgcnet build x.onnx -o y.engine`)")
    from lgcnet_deploy.export.to_onnx import export_onnx
    from lgcnet_deploy.model.checkpoint import load_net

    net, meta, trained = load_net(source, spec.dataset, spec.input_size)
    meta = meta.replace(input_format=spec.input_format, output_kind=spec.output_kind)
    path = export_onnx(net, meta, onnx_out, batch=spec.batch,
                       dynamic_batch=spec.dynamic_batch, opset=spec.opset,
                       simplify=spec.simplify)
    return path, meta, trained


def _onnx_meta(path: Path) -> ModelMeta:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return ModelMeta.from_props({p.key: p.value for p in model.metadata_props}, path)


def check_input_sizes(path: Path, asked: list[tuple[str, tuple[int, int] | None]]) -> None:
    """An exported .onnx/.engine has one input size: asking it for another (`asked`: option
    name and size, None for not asked) is an error, not a silent no-op."""
    fmt = format_of(path)
    asked = [(option, size) for option, size in asked if size is not None]
    if not fmt.deployable or not asked:
        return
    info = fmt.describe_file(path)  # ONNX Runtime or the sidecar: no onnx package needed
    have = tuple(info.get("meta", info)["input_size"])  # an engine's sidecar nests the meta
    for option, size in asked:
        if tuple(size) != have:
            raise ArtifactError(
                f"{path} is exported for {have[0]}x{have[1]} inputs: {option} asks for "
                f"{size[0]}x{size[1]}; re-export from the checkpoint (`lgcnet export CKPT.pt "
                f"--imgsz {size[0]}x{size[1]}`) or benchmark the checkpoint itself")


def _quantize(fp32_onnx: Path, output: Path, spec: ArtifactSpec) -> Path:
    from lgcnet_deploy.export.int8 import calibration_frames, quantize_int8

    frames: Sequence[Path] = spec.calibration or calibration_frames()
    if output.resolve() == fp32_onnx.resolve():
        raise ArtifactError(f"{output}: the INT8 model needs a file name other than its "
                            f"fp32 source's")
    return quantize_int8(fp32_onnx, output, frames, spec.int8_target, spec.int8_method)


def _build_engine(onnx_path: Path, engine: Path, spec: ArtifactSpec) -> Path:
    from lgcnet_deploy.export.engine.build import build_engine

    if spec.precision == "int8":
        onnx_path = _quantize(onnx_path, engine.with_suffix(".int8.onnx"),
                              replace(spec, int8_target="tensorrt"))
    batch = None if spec.dynamic_batch else spec.batch
    return build_engine(onnx_path, engine, precision=spec.precision, batch=batch)
