"""The export chain: a model source becomes a deployable file, one named step after another.

    load       source -> network + metadata (an ONNX source: the file and its metadata)
    fold       BatchNorm folded into the convolutions          model/fold_bn.py
    wrap       in-graph I/O: uint8 BGR in, class map out,       model/io_wrapper.py
               normalised with the metadata's mean/std
    onnx       traced to ONNX                                   export/to_onnx.py
    simplify   onnxsim                                          export/to_onnx.py
    save       checked, tagged (metadata, weights digest)       export/to_onnx.py
    precision  FP16 ONNX, or INT8 Q/DQ ONNX (for an engine      export/fp16.py, export/int8.py
               with an fp16 body)
    engine     TensorRT engine + sidecar (.engine outputs)      export/engine.py

As in Polygraphy's loader chain, each step takes what the one before made, and a step with
nothing to do (an ONNX source needs no tracing, an fp32 .onnx no precision step) passes it
on. What the steps need is decided once, before the first runs, in a `Plan`: the source
resolved (a shipped name becomes its checkpoint), the precision and the INT8 encoding, the
file each step writes; every step's parameters are fields of one `ArtifactSpec`.

Precision is decided here only: the plan picks the conversions that bring the source to the
engine's precision (`_engine_conversions`), the precision step runs them, and the engine
step's builder converts nothing (it checks the ONNX it gets is in the precision asked for).

`make_artifact` is the entry; `lgcnet export`, `lgcnet quantize`, `lgcnet bench`, the parity
tool and the latency table's whole-network timing all go through it, and `lgcnet build`
through `make_engine` (an ONNX made earlier: plan, load, precision, engine); `export_onnx`
runs the steps from fold to save on a network already in memory.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lgcnet_deploy.artifact.describe import describe, fp32_body, has_qdq
from lgcnet_deploy.core.classes import CAMVID, Dataset
from lgcnet_deploy.core.errors import BadInputError, MissingFileError, damaged
from lgcnet_deploy.core.formats import find_format, format_of
from lgcnet_deploy.core.metadata import (
    INPUT_UINT8_NHWC_BGR,
    OUTPUT_ARGMAX,
    PRECISIONS,
    ModelMeta,
)
from lgcnet_deploy.model.genotype import Genotype
from lgcnet_deploy.model.shipped import resolve_model

if TYPE_CHECKING:  # torch and onnx are the [export] extra's; the base install runs ONNX files
    import onnx
    from torch import nn


class ArtifactError(BadInputError):
    """A source cannot become the artifact asked for; the message says what to do instead."""


@dataclass(frozen=True)
class ArtifactSpec:
    """What the deployable artifact should be: every step's parameters, in chain order.
    `input_size` None keeps the source's."""

    dataset: Dataset = CAMVID  # load: the classes of a genotype source (checkpoints: theirs)
    input_size: tuple[int, int] | None = None  # load
    fold: bool = True  # fold
    input_format: str = INPUT_UINT8_NHWC_BGR  # wrap
    output_kind: str = OUTPUT_ARGMAX  # wrap
    batch: int = 1  # onnx (and the engine's static batch)
    dynamic_batch: bool = False  # onnx
    opset: int = 17  # onnx
    simplify: bool = True  # simplify
    precision: str = "fp32"  # precision (and engine)
    int8_target: str = "tensorrt"  # precision: "tensorrt" (symmetric) or "cpu" (u8s8) Q/DQ
    int8_method: str = "minmax"  # precision
    calibration: tuple[Path, ...] | None = None  # precision: frames; None: the shipped list
    quantize: bool = True  # precision: False refuses an fp32 source for int8 (`lgcnet build`)
    # engine: build_engine's keywords (batch, profile, workspace_mib, timing_cache, device,
    # progress, ...) over the chain's batch
    engine_options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Artifact:
    path: Path
    meta: ModelMeta
    trained: bool  # False: a genotype exported with random weights (speed work only)


@dataclass(frozen=True)
class Plan:
    """Decided before the first step: the resolved source, the spec (INT8 encoding fixed for
    engines) and the file each writing step writes (None: that step, or that conversion of
    the precision step, does not run)."""

    source: Path | Genotype | None  # None: a network handed over in memory
    spec: ArtifactSpec
    fp32_onnx: Path  # save's output, or the ONNX source itself (in whatever precision it is)
    quantized_onnx: Path | None  # precision: quantize_int8's Q/DQ ONNX
    fp16_onnx: Path | None  # precision: the FP16 ONNX, or an int8 engine's fp16-body Q/DQ
    engine: Path | None  # engine's output


@dataclass(frozen=True)
class Work:
    """What flows along the chain; each step fills in the next field."""

    meta: ModelMeta | None = None
    trained: bool = True
    net: nn.Module | None = None
    module: nn.Module | None = None
    proto: onnx.ModelProto | None = None
    path: Path | None = None


Step = Callable[[Work, Plan], Work]


def plan_artifact(source: str | Path | Genotype, output: str | Path,
                  spec: ArtifactSpec = ArtifactSpec()) -> Plan:
    """Check `spec` and `output`, resolve `source` and choose every step's output file."""
    if spec.precision not in PRECISIONS:
        raise ArtifactError(f"precision must be one of {', '.join(PRECISIONS)}, "
                            f"got {spec.precision!r}")
    if spec.batch < 1:
        raise ArtifactError(f"batch must be >= 1, got {spec.batch}")
    output = Path(output)
    target = format_of(output)
    if target.name not in ("onnx", "engine"):
        raise ArtifactError(f"{output}: artifacts are .onnx or .engine files")
    source = _resolve_source(source)
    engine = output if target.name == "engine" else None
    if engine is not None:
        spec = replace(spec, int8_target="tensorrt")  # TensorRT takes symmetric Q/DQ only
        fp32 = output.with_suffix(".onnx")
        quantized, fp16 = _engine_conversions(source, spec, engine)
    else:
        fp32 = output if spec.precision == "fp32" else output.with_name(f"{output.stem}.fp32.onnx")
        quantized = output if spec.precision == "int8" else None
        fp16 = output if spec.precision == "fp16" else None
    fp32 = source if isinstance(source, Path) else fp32  # an ONNX source: the chain's start
    for converted in (quantized, fp16):
        if converted is not None and converted.resolve() == fp32.resolve():
            raise ArtifactError(f"{converted}: the {spec.precision.upper()} model needs a file "
                                f"name other than its fp32 source's")
    return Plan(source, spec, fp32, quantized, fp16, engine)


def _resolve_source(source: str | Path | Genotype) -> str | Path | Genotype:
    """A shipped name -> its checkpoint (a str); an ONNX file -> a Path; an engine refused."""
    if isinstance(source, Genotype):
        return source
    source = resolve_model(source)
    fmt = find_format(source)
    if fmt is not None and fmt.name == "engine":
        raise ArtifactError(f"{source}: an engine is already the last stage; build another "
                            f"from its ONNX (`lgcnet build x.onnx -o y.engine`)")
    # a Path from here on means an ONNX source (a shipped name resolves to a Path too)
    return Path(source) if fmt is not None and fmt.name == "onnx" else str(source)


def _engine_conversions(source: str | Path | Genotype, spec: ArtifactSpec,
                        engine: Path) -> tuple[Path | None, Path | None]:
    """The files (quantized, fp16) the precision step writes so that the engine step gets an
    ONNX in `spec.precision` as TensorRT runs it: fp16 an FP16 ONNX; int8 a Q/DQ ONNX with an
    fp16 body and fp16 scales (strongly typed TensorRT runs the layers outside Q/DQ pairs in
    their scale's type: docs/tensorrt.md, "Precision"). None: not needed, the source is so."""
    want = spec.precision
    quantized = engine.with_name(f"{engine.stem}.int8.onnx")
    fp16 = engine.with_name(f"{engine.stem}.fp16.onnx")
    if not isinstance(source, Path):  # a checkpoint or genotype: save writes the fp32 ONNX
        have, qdq, fp32_scales = "fp32", False, False
    else:
        model = _read_onnx(source)
        have = _onnx_meta(source, model).precision
        qdq, fp32_scales = has_qdq(model), fp32_body(model)
    if want == "int8" and not qdq:
        if not spec.quantize:
            raise ArtifactError(f"{source} has no Q/DQ nodes: INT8 engines are built from a "
                                f"quantised ONNX (`lgcnet quantize {source} -o {quantized} "
                                f"--target tensorrt`); TensorRT 11 has no implicit INT8 "
                                f"calibration")
        return quantized, fp16  # quantize_int8 refuses a source that is not fp32
    if want == "int8":
        return None, fp16 if fp32_scales else None
    if have == want:
        return None, None
    if have == "fp32":
        return None, fp16
    raise ArtifactError(f"{source} is an {have} model; an {want} engine is built from the fp32 "
                        f"ONNX: `lgcnet export CHECKPOINT.pt -o MODEL.onnx`, then `lgcnet "
                        f"build MODEL.onnx -o {engine} --precision {want}`")


def load(work: Work, plan: Plan) -> Work:
    """The network and metadata of a checkpoint or genotype; an ONNX source's metadata."""
    spec = plan.spec
    if isinstance(plan.source, Path):
        check_input_sizes(plan.source, [("input size", spec.input_size)])
        return replace(work, meta=_onnx_meta(plan.source), path=plan.source)
    if plan.source is None:
        return work
    from lgcnet_deploy.model.checkpoint import load_net

    net, meta, trained = load_net(plan.source, spec.dataset, spec.input_size)
    meta = meta.replace(input_format=spec.input_format, output_kind=spec.output_kind)
    return replace(work, net=net, meta=meta, trained=trained)


def fold(work: Work, plan: Plan) -> Work:
    if work.net is None or not plan.spec.fold:
        return work
    from lgcnet_deploy.model.fold_bn import fold_batchnorm

    return replace(work, net=fold_batchnorm(work.net))


def wrap(work: Work, plan: Plan) -> Work:
    if work.net is None:
        return work
    from lgcnet_deploy.model.io_wrapper import wrap_io

    return replace(work, net=None, module=wrap_io(work.net, work.meta))


def to_onnx(work: Work, plan: Plan) -> Work:
    if work.module is None:
        return work
    from lgcnet_deploy.export.to_onnx import check_export_settings, dummy_input, trace

    spec = plan.spec
    check_export_settings(work.meta.input_size, spec.batch, spec.opset)
    with _export_errors(work):
        proto = trace(work.module, dummy_input(work.meta, spec.batch),
                      plan.fp32_onnx.with_name(plan.fp32_onnx.name + ".trace"),
                      opset=spec.opset, dynamic_batch=spec.dynamic_batch)
    return replace(work, module=None, proto=proto)


def simplify(work: Work, plan: Plan) -> Work:
    if work.proto is None or not plan.spec.simplify:
        return work
    from lgcnet_deploy.export.to_onnx import simplify as onnxsim

    with _export_errors(work):
        return replace(work, proto=onnxsim(work.proto))


def save(work: Work, plan: Plan) -> Work:
    if work.proto is None:
        return work
    from lgcnet_deploy.export.to_onnx import save as save_onnx

    spec = plan.spec
    with _export_errors(work):  # onnx.checker's ValidationError and friends
        path = save_onnx(work.proto, plan.fp32_onnx, work.meta, {
            "dynamic_batch": spec.dynamic_batch, "opset": spec.opset})
    return replace(work, proto=None, path=path)


@contextmanager
def _export_errors(work: Work) -> Iterator[None]:
    """Any failure of the onnx, simplify or save step is an ExportError naming the model."""
    from lgcnet_deploy.export.to_onnx import ExportError

    try:
        yield
    except ExportError:
        raise
    except Exception as e:
        raise ExportError(f"ONNX export of {work.meta.genotype_hash or 'model'} failed: "
                          f"{e}") from e


def precision(work: Work, plan: Plan) -> Work:
    """The conversions the plan chose, in order: quantize (int8 Q/DQ), then FP16 (an FP16
    model, or the fp16 body of an engine's Q/DQ)."""
    spec, path = plan.spec, work.path
    if plan.quantized_onnx is not None:
        from lgcnet_deploy.export.int8 import calibration_frames, quantize_int8

        path = quantize_int8(path, plan.quantized_onnx, spec.calibration or calibration_frames(),
                             spec.int8_target, spec.int8_method)
    if plan.fp16_onnx is not None:
        from lgcnet_deploy.export.fp16 import convert_fp16

        path = convert_fp16(path, plan.fp16_onnx)
    if path == work.path:
        return work
    return replace(work, path=path, meta=work.meta.replace(precision=spec.precision))


def engine(work: Work, plan: Plan) -> Work:
    if plan.engine is None:
        return work
    from lgcnet_deploy.export.engine import build_engine

    spec = plan.spec
    options = {"batch": None if spec.dynamic_batch else spec.batch, **spec.engine_options}
    # the precision step made the ONNX this precision; the builder only checks it is. The
    # sidecar's rebuild command names the ONNX before the FP16 conversion: `lgcnet build`
    # converts it again.
    return replace(work, path=build_engine(
        work.path, plan.engine, precision=spec.precision,
        rebuild_from=plan.quantized_onnx or plan.fp32_onnx, **options))


STEPS: tuple[tuple[str, Step], ...] = (
    ("load", load), ("fold", fold), ("wrap", wrap), ("onnx", to_onnx),
    ("simplify", simplify), ("save", save), ("precision", precision), ("engine", engine))


def run_steps(work: Work, plan: Plan, first: str = "load", last: str = "engine") -> Work:
    """Run the chain's steps from `first` to `last` (inclusive) on `work`."""
    names = [name for name, _ in STEPS]
    for _, step in STEPS[names.index(first):names.index(last) + 1]:
        work = step(work, plan)
    return work


def make_artifact(source: str | Path | Genotype, output: str | Path,
                  spec: ArtifactSpec = ArtifactSpec()) -> Artifact:
    """Turn `source` into the artifact at `output` (.onnx or .engine) that `spec` describes."""
    work = run_steps(Work(), plan_artifact(source, output, spec))
    return Artifact(work.path, work.meta, work.trained)


def make_engine(onnx_path: str | Path, engine_path: str | Path, precision: str = "fp16",
                batch: int | None = None, **options: Any) -> Path:
    """`lgcnet build`: the chain from an ONNX made earlier to a TensorRT engine. An fp32 ONNX
    is converted to FP16 beside the engine (`<engine>.fp16.onnx`), a Q/DQ ONNX given its fp16
    body there; an fp32 ONNX is never quantized here (int8 takes `lgcnet quantize`'s Q/DQ
    ONNX). `batch` None: the ONNX's; `options` are build_engine's (profile, workspace_mib,
    timing_cache, device, progress, ...)."""
    fmt = find_format(onnx_path)
    if fmt is None or fmt.name != "onnx":
        raise ArtifactError(f"{onnx_path}: `lgcnet build` takes an ONNX model; export a "
                            f"checkpoint first (`lgcnet export CHECKPOINT.pt -o MODEL.onnx`)")
    spec = ArtifactSpec(precision=precision, quantize=False,
                        engine_options={"batch": batch, **options})
    return make_artifact(Path(onnx_path), engine_path, spec).path


def export_onnx(net: nn.Module, meta: ModelMeta, path: str | Path, *, batch: int = 1,
                dynamic_batch: bool = False, opset: int = 17, simplify: bool = True,
                fold: bool = True) -> Path:
    """Export `net` (an LGCNet, or a peer with `fold=False`) with the I/O `meta` describes
    to an fp32 ONNX file: the chain from fold to save. meta.input_size fixes H and W (static
    shapes let TensorRT and onnxsim fold everything); `dynamic_batch` makes the batch axis
    symbolic. An existing file at `path` survives a failed export."""
    spec = ArtifactSpec(input_size=meta.input_size, fold=fold, input_format=meta.input_format,
                        output_kind=meta.output_kind, batch=batch, dynamic_batch=dynamic_batch,
                        opset=opset, simplify=simplify)
    plan = Plan(None, spec, Path(path), None, None, None)
    return run_steps(Work(meta=meta, net=net), plan, "fold", "save").path


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


def _read_onnx(path: Path) -> onnx.ModelProto:
    import onnx

    if not path.is_file():
        raise MissingFileError(f"ONNX model not found: {path}")
    try:
        return onnx.load(str(path), load_external_data=False)
    except Exception as e:  # protobuf's DecodeError and friends
        raise damaged(path, "ONNX model", e) from e


def _onnx_meta(path: Path, model: onnx.ModelProto | None = None) -> ModelMeta:
    model = _read_onnx(path) if model is None else model
    return ModelMeta.from_props({p.key: p.value for p in model.metadata_props}, path)


def check_input_sizes(path: Path, asked: list[tuple[str, tuple[int, int] | None]]) -> None:
    """An exported .onnx/.engine has one input size: asking it for another (`asked`: option
    name and size, None for not asked) is an error, not a silent no-op."""
    fmt = format_of(path)
    asked = [(option, size) for option, size in asked if size is not None]
    if not fmt.deployable or not asked:
        return
    info = describe(path)  # ONNX Runtime or the sidecar: no onnx package needed
    have = tuple(info.get("meta", info)["input_size"])  # an engine's sidecar nests the meta
    for option, size in asked:
        if tuple(size) != have:
            raise ArtifactError(
                f"{path} is exported for {have[0]}x{have[1]} inputs: {option} asks for "
                f"{size[0]}x{size[1]}; re-export from the checkpoint (`lgcnet export CKPT.pt "
                f"--imgsz {size[0]}x{size[1]}`) or benchmark the checkpoint itself")
