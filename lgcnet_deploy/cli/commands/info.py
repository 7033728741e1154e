"""`lgcnet info`: what a model file holds."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def _onnx(path: Path) -> dict[str, Any]:
    import onnxruntime as ort

    from lgcnet_deploy.core.metadata import ModelMeta

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    io = {"inputs": [(i.name, i.type, i.shape) for i in sess.get_inputs()],
          "outputs": [(o.name, o.type, o.shape) for o in sess.get_outputs()]}
    meta = ModelMeta.from_props(sess.get_modelmeta().custom_metadata_map)
    return {"backend": "onnxruntime", **io, **meta.to_dict()}


def _checkpoint(path: Path) -> dict[str, Any]:
    from lgcnet_deploy.model.checkpoint import read_checkpoint

    ck = read_checkpoint(path)
    params = sum(v.numel() for v in ck["state_dict"].values() if v.is_floating_point())
    return {"backend": "torch", "format": ck["format"], "parameters_and_buffers": params,
            **ck["meta"], "metrics": ck["metrics"], "provenance": ck["provenance"]}


def _engine(path: Path) -> dict[str, Any]:
    from lgcnet_deploy.export.engine.sidecar import (
        read_sidecar,  # the sidecar describes the engine, no GPU needed
    )

    return {"backend": "tensorrt", **read_sidecar(path)}


READERS = {".onnx": _onnx, ".pt": _checkpoint, ".pth": _checkpoint, ".engine": _engine}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("info", help="show what a model file holds (metadata, I/O, provenance)",
                       description="Print a model file's metadata: classes, input size and "
                       "format, output kind, genotype hash, precision, provenance.")
    p.add_argument("model", type=Path, help=".onnx, .pt checkpoint or .engine")
    p.add_argument("--json", action="store_true", help="print raw JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    path: Path = args.model
    if not path.is_file():
        raise FileNotFoundError(f"model file not found: {path}")
    reader = READERS.get(path.suffix.lower())
    if reader is None:
        raise ValueError(f"{path}: unknown suffix; expected one of {', '.join(READERS)}")
    info = reader(path)
    if args.json:
        print(json.dumps(info, indent=2, default=str))
        return 0
    info.pop("genotype", None)
    for key, value in info.items():
        if key == "palette_rgb":
            continue
        print(f"{key:>24}: {value}")
    return 0
