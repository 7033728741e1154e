"""Backend parity on CamVid val: one checkpoint as PyTorch, fp32 ONNX and INT8 ONNX.

    python -m experiments.parity lgcnet_deploy/model/weights/lgcnet_camvid.pt --out runs/parity

Exports the checkpoint (uint8 input, argmax output, as `lgcnet export`), quantises it for both
INT8 targets (as `lgcnet quantize`), runs `lgcnet eval`'s evaluate() on every model through the
Segmenter and writes one markdown table (mIoU, delta to PyTorch, ms/frame) plus the JSON reports.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path

from lgcnet_deploy.export.int8 import DEFAULT_LIST, calibration_frames
from lgcnet_deploy.export.pipeline import ArtifactSpec, make_artifact
from lgcnet_deploy.measure.evaluate import EvalReport, evaluate
from lgcnet_deploy.runtime.segmenter import Segmenter


def build_models(checkpoint: Path, out: Path, calib_list: Path = DEFAULT_LIST,
                 data: Path | None = None) -> dict[str, Path]:
    """fp32 ONNX and the two INT8 QDQ variants of `checkpoint`, written under `out`."""
    fp32 = make_artifact(checkpoint, out / "lgcnet.onnx").path
    frames = tuple(calibration_frames(calib_list, data))
    models = {"PyTorch fp32": checkpoint, "ONNX Runtime fp32": fp32}
    for target in ("tensorrt", "cpu"):
        spec = ArtifactSpec(precision="int8", int8_target=target, calibration=frames)
        models[f"ONNX Runtime INT8 ({target} QDQ)"] = make_artifact(
            fp32, out / f"lgcnet.int8.{target}.onnx", spec).path
    return models


def markdown_table(reports: dict[str, EvalReport]) -> str:
    """One row per backend: mIoU, difference to the first row, pixel accuracy, ms/frame."""
    ref = next(iter(reports.values())).miou
    rows = ["| model | mIoU % | Δ vs first (points) | pixel acc % | inference ms/frame | "
            "end-to-end ms/frame |", "|---|---:|---:|---:|---:|---:|"]
    for name, r in reports.items():
        total = sum(r.latency_ms.values())
        rows.append(f"| {name} | {r.miou * 100:.2f} | {(r.miou - ref) * 100:+.2f} | "
                    f"{r.pixel_accuracy * 100:.2f} | {r.latency_ms.get('inference', 0):.1f} | "
                    f"{total:.1f} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m experiments.parity", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", type=Path)
    p.add_argument("--out", type=Path, default=Path("runs/parity"))
    p.add_argument("--split", default="val", choices=("train", "val"))
    p.add_argument("--limit", type=int, default=None, help="only the first N frames")
    p.add_argument("--data", type=Path, default=None, help="CamVid root")
    args = p.parse_args(argv)

    args.out.mkdir(parents=True, exist_ok=True)
    reports = {}
    for name, path in build_models(args.checkpoint, args.out, data=args.data).items():
        with Segmenter(path) as seg:
            reports[name] = evaluate(seg, args.split, args.data, args.limit)
        print(f"{name}: mIoU {reports[name].miou * 100:.2f} %", flush=True)
    table = markdown_table(reports)
    (args.out / "parity.md").write_text(table + "\n")
    (args.out / "parity.json").write_text(json.dumps(
        {k: asdict(r) for k, r in reports.items()}, indent=2))
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
