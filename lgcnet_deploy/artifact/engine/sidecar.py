"""The JSON sidecar `<engine>.json` written beside every engine, and the checks made on load.

A serialized TensorRT engine only runs on the TensorRT version that built it (unless built
version-compatible, which we do not) and is compiled for one GPU architecture; loading it
elsewhere fails inside TensorRT, sometimes badly. The sidecar lets us refuse first, in
plain words, with the exact `lgcnet build` command that makes a fitting engine. An engine
built elsewhere (trtexec, Polygraphy) may come without one: `find_sidecar` then returns
None and the runtime reads the I/O from the engine (engine_io.py). A sidecar that exists
but is not ours, not a JSON object or has fields of the wrong type is an error naming it.
Pure Python: testable without TensorRT or a GPU.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any

from lgcnet_deploy.core.errors import BadInputError, DamagedFileError, WorkFailedError
from lgcnet_deploy.core.metadata import MetadataError, ModelMeta, read_json

SIDECAR_FORMAT = "lgcnet-engine/1"
# field -> the JSON type it must have
FIELDS: dict[str, type] = {"format": str, "tensorrt": str, "gpu": dict, "precision": str,
                           "io": list, "meta": dict, "engine_sha256": str, "build": dict}
REQUIRED = tuple(FIELDS)


class EngineMismatchError(WorkFailedError):
    """An engine does not fit this machine (TensorRT version, GPU), or it or its sidecar is
    unusable; the message says how to rebuild it."""


class DamagedSidecarError(DamagedFileError, EngineMismatchError):
    """A sidecar that cannot be parsed or is not ours: a bad input (exit 3), and still an
    EngineMismatchError for callers that catch that."""


def sidecar_path(engine: str | Path) -> Path:
    engine = Path(engine)
    return engine.with_name(engine.name + ".json")


def write_json_atomic(path: Path, data: dict[str, Any]) -> Path:
    tmp = path.with_name(path.name + ".partial")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)
    return path


def write_sidecar(engine: str | Path, data: dict[str, Any]) -> Path:
    missing = [k for k in REQUIRED if k not in data and k != "format"]
    if missing:
        raise BadInputError(f"sidecar for {engine} lacks {missing}")
    return write_json_atomic(sidecar_path(engine), {**data, "format": SIDECAR_FORMAT})


def read_sidecar(engine: str | Path) -> dict[str, Any]:
    """The sidecar's dict; EngineMismatchError if it is missing, not ours or malformed."""
    side = find_sidecar(engine)
    if side is None:
        raise EngineMismatchError(f"{engine} has no sidecar {sidecar_path(engine).name} (not "
                                  f"built by `lgcnet build`)")
    return side


def find_sidecar(engine: str | Path) -> dict[str, Any] | None:
    """The checked sidecar of `engine`, or None when there is none."""
    path = sidecar_path(engine)
    if not path.is_file():
        return None
    rebuild = f"delete it, or rebuild the engine with `lgcnet build MODEL.onnx -o {engine}`"
    try:
        data = read_json(path, DamagedSidecarError)
    except DamagedSidecarError as e:
        raise DamagedSidecarError(f"{e}; {rebuild}") from e
    if not isinstance(data, dict):
        raise DamagedSidecarError(f"{path} holds a JSON {type(data).__name__}, not an object: "
                                  f"not an lgcnet engine sidecar; {rebuild}")
    missing = [k for k in FIELDS if k not in data]
    if data.get("format") != SIDECAR_FORMAT or missing:
        raise DamagedSidecarError(
            f"{path} is not an lgcnet engine sidecar (format {data.get('format')!r}, missing "
            f"{missing}); {rebuild}")
    wrong = [f"{k} is a {type(data[k]).__name__}, not a {t.__name__}"
             for k, t in FIELDS.items() if not isinstance(data[k], t)]
    gpu = data["gpu"] if isinstance(data["gpu"], dict) else {}
    wrong += [f"gpu.{k} is not a string" for k in ("name", "compute_capability")
              if gpu and not isinstance(gpu.get(k), str)]
    if wrong:
        raise DamagedSidecarError(f"{path}: malformed sidecar ({'; '.join(wrong)}); {rebuild}")
    return data


def rebuild_command(side: dict[str, Any]) -> str:
    command = side.get("build", {}).get("command")
    return command if isinstance(command, str) else "lgcnet build MODEL.onnx -o ENGINE"


def _mmp(version: str) -> tuple[str, ...]:
    """major.minor.patch: TensorRT's engine compatibility unit (build number ignored)."""
    return tuple(version.split(".")[:3])


def check_sidecar(side: dict[str, Any], tensorrt_version: str, gpu: dict[str, Any]) -> None:
    """Refuse an engine built for another TensorRT version or GPU architecture.

    `gpu` is lgcnet_deploy.cuda.device_info() of the device we are about to run on. Same
    compute capability but another GPU model runs (TensorRT allows it) with a warning, as
    its tactics were timed on different hardware.
    """
    built_gpu = side["gpu"]
    problems = []
    if _mmp(side["tensorrt"]) != _mmp(tensorrt_version):
        problems.append(f"TensorRT {side['tensorrt']} (this machine has {tensorrt_version})")
    if built_gpu.get("compute_capability") != gpu.get("compute_capability"):
        problems.append(f"a {built_gpu.get('name')} (compute capability "
                        f"{built_gpu.get('compute_capability')}; this machine has a "
                        f"{gpu.get('name')}, {gpu.get('compute_capability')})")
    if problems:
        raise EngineMismatchError(
            "TensorRT engines only run with the TensorRT version and GPU architecture that "
            f"built them; this one was built for {' and for '.join(problems)}. Rebuild it on "
            f"this machine with:\n  {rebuild_command(side)}")
    if built_gpu.get("name") != gpu.get("name"):
        warnings.warn(f"engine was built on a {built_gpu.get('name')}, running on a "
                      f"{gpu.get('name')} (same architecture): it runs, but rebuilding here "
                      f"picks kernels timed on this GPU: {rebuild_command(side)}", stacklevel=2)


def sidecar_meta(side: dict[str, Any], path: str | Path) -> ModelMeta:
    """The model metadata a sidecar carries; EngineMismatchError naming `path` if invalid."""
    try:
        return ModelMeta.from_dict(side["meta"])
    except (MetadataError, TypeError, ValueError) as e:
        raise EngineMismatchError(f"{sidecar_path(path)}: its `meta` is not valid model "
                                  f"metadata ({e}); rebuild with {rebuild_command(side)}") from e
