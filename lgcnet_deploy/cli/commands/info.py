"""`lgcnet info`: what a model file holds, for people (default) or machines (`--json`)."""

from __future__ import annotations

import argparse
import importlib.util
import json
import textwrap
from pathlib import Path
from typing import Any

from lgcnet_deploy.artifact.describe import describe
from lgcnet_deploy.core.errors import MissingFileError
from lgcnet_deploy.core.formats import format_of
from lgcnet_deploy.measure.lineage import runs_of
from lgcnet_deploy.model.shipped import check_model_name, resolve_model

INPUT_WORDS = {"uint8_nhwc_bgr": "uint8 BGR frame, NHWC, normalised in the graph",
               "float32_nchw_rgb": "float32 RGB, NCHW, normalised (x/255 - mean) / std"}
OUTPUT_WORDS = {"argmax": "class map (argmax in the graph)", "logits": "per-class logits"}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("info", help="show what a model file holds (metadata, I/O, provenance)",
                       description="Print a model file's classes, input, output, precision, "
                       "genotype hash, weights digest (checked) and provenance.")
    p.add_argument("model", type=Path, help=".onnx, .pt checkpoint, .engine, or a shipped "
                   "model's short name (lgcnet-camvid: its checkpoint, or without torch its "
                   "ONNX)")
    p.add_argument("--json", action="store_true", help="everything, as JSON (for machines)")
    p.set_defaults(func=run)


def _shape(dims: Any) -> str:
    return "x".join("N" if not isinstance(d, int) else str(d) for d in dims)


def _weights(info: dict[str, Any]) -> str:
    if "weights_sha256" in info:  # ONNX: digest recorded at export, checked here
        status = info["weights_sha256"]
        verdict = {True: "verified", False: "MISMATCH: the file changed after export",
                   None: "no digest recorded (exported before digests; re-export)"}[status["ok"]]
        return f"sha256 {status['actual'][:16]}  {verdict}"
    if "engine_sha256" in info:
        return f"engine sha256 {info['engine_sha256'][:16]}  (checked against it on load)"
    if "parameters_and_buffers" in info:
        return f"{info['parameters_and_buffers']:,} parameters and buffers (checkpoint)"
    return "-"


def _genotype(meta: dict[str, Any]) -> str:
    """Hash, name and, for a searched genotype, how decided its search was."""
    genotype = meta.get("genotype") or {}
    prov = genotype.get("provenance") or {}
    parts = [f"search mean top-1 {prov['mean_top1_prob']:.2f}"
             if prov.get("mean_top1_prob") is not None else None,
             f"search mean top-1 <= {prov['mean_top1_prob_at_most']:.2f}"
             if prov.get("mean_top1_prob_at_most") is not None else None,
             f"seed agreement {prov['seed_agreement']:.2f}" + _chance(prov)
             if prov.get("seed_agreement") is not None else None]
    details = "; ".join(p for p in [genotype.get("name"), *parts] if p)
    return str(meta.get("genotype_hash") or "-") + (f" ({details})" if details else "")


def _chance(prov: dict[str, Any]) -> str:
    """What two seeds would share by chance alone, where the search recorded it."""
    chance = (prov.get("seed_agreement_with") or {}).get("chance")
    return f", chance {chance:.2f}" if chance is not None else ""


def _provenance(info: dict[str, Any], meta: dict[str, Any]) -> str:
    extra, prov = meta.get("extra") or {}, info.get("provenance") or {}
    parts = [str(extra[k]) for k in ("producer", "weights") if k in extra]
    if "opset" in extra:
        parts.append(f"opset {extra['opset']}")
    if "calibration" in extra:
        cal = extra["calibration"]
        parts.append(f"int8 calibrated on {cal.get('frames')} frames ({cal.get('method')})")
    if "tensorrt" in info:
        gpu = info.get("gpu") or {}
        parts.append(f"TensorRT {info['tensorrt']} on {gpu.get('name', '?')} "
                     f"(sm {gpu.get('compute_capability', '?')})")
    parts += [f"{k} {prov[k]}" for k in ("git", "data", "pretraining") if k in prov]
    if (info.get("metrics") or {}).get("val_miou") is not None:
        parts.append(f"val mIoU {info['metrics']['val_miou']:.3f}")
    return "; ".join(parts) or "-"


def _lineage(provenance: dict[str, Any]) -> str | None:
    """A checkpoint's training history in one line: its runs' epochs, the frames of the last
    run and the teacher it learnt from; None when it records no run."""
    runs = runs_of(provenance)
    if not runs:
        return None
    epochs = " + ".join(str(run.get("epochs_run", "?")) for run in runs)
    text = (f"{len(runs)} run{'s' if len(runs) > 1 else ''}, {epochs} epochs; the last on "
            f"{runs[-1].get('data', '?')}")
    teacher = runs[-1].get("teacher")
    if isinstance(teacher, dict):
        taught = teacher.get("provenance") or {}
        what = taught.get("model") or teacher.get("model") or "a teacher"
        trained = (f", {taught['epochs_run']} epochs on {taught.get('data', '?')}"
                   if "epochs_run" in taught else "")
        how = "cached logits" if "targets" in teacher else "logits"
        kind = (runs[-1].get("recipe") or {}).get("distill_kind", "pixel")  # older: pixel
        text += f"; distilled {kind}-wise from the {how} of {what}{trained}"
    return text


def summary(path: Path, info: dict[str, Any]) -> list[tuple[str, str]]:
    """(label, text) rows describing a model file for people."""
    meta = info.get("meta", info)  # an engine's sidecar nests the model metadata
    classes = meta.get("classes", ())
    h, w = meta.get("input_size", ("?", "?"))
    io_in, io_out = (info.get("inputs") or [[None, None, None]])[0], (info.get("outputs")
                                                                        or [[None, None, None]])[0]
    input_text = f"{h}x{w}, {INPUT_WORDS.get(meta.get('input_format'), meta.get('input_format'))}"
    if io_in[2] is not None:
        input_text += f" ({io_in[1]} {_shape(io_in[2])})"
    if meta.get("exposure_target") is not None:
        input_text += (f"; frames of mean luminance under {meta['exposure_target']:g} "
                       f"brightened to it (exposure normalisation)")
    output_text = OUTPUT_WORDS.get(meta.get("output_kind"), str(meta.get("output_kind")))
    if io_out[2] is not None:
        output_text += f" ({io_out[1]} {_shape(io_out[2])})"
    return [
        ("model", f"{path} ({format_of(path).label}, {path.stat().st_size / 1e6:.1f} MB)"),
        ("classes", f"{len(classes)} ({meta.get('dataset', '?')}): {', '.join(classes)}"),
        ("input", input_text),
        ("output", output_text),
        ("precision", str(info.get("precision", meta.get("precision", "?")))),
        ("genotype", _genotype(meta)),
        ("weights", _weights(info)),
        ("provenance", _provenance(info, meta)),
        *([("lineage", lineage)] if (lineage := _lineage(info.get("provenance") or {}))
          else []),
    ]


def run(args: argparse.Namespace) -> int:
    # a short name shows its checkpoint (provenance, val mIoU) where torch can read it, else
    # the ONNX that the base install runs
    have_torch = importlib.util.find_spec("torch") is not None
    check_model_name(args.model)
    path = Path(resolve_model(args.model, ".pt" if have_torch else ".onnx"))
    if not path.is_file():
        raise MissingFileError(f"model file not found: {path}")
    info = describe(path)
    if args.json:
        print(json.dumps(info, indent=2, default=str))
        return 0
    rows = summary(path, info)
    width = max(len(label) for label, _ in rows) + 2
    for label, text in rows:
        lines = textwrap.wrap(text, 100 - width) or ["-"]
        print(f"{label:<{width}}{lines[0]}")
        for line in lines[1:]:
            print(" " * width + line)
    return 0
