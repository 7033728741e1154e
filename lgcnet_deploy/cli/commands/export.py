"""`lgcnet export`: checkpoint or genotype -> simplified ONNX with metadata."""

from __future__ import annotations

import argparse
from pathlib import Path

from lgcnet_deploy.cli.args import image_size
from lgcnet_deploy.core.classes import DATASETS


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export", help="export a checkpoint (or an untrained genotype) to ONNX",
        description="Fold BatchNorm, export to ONNX (opset >= 17), simplify with onnxsim, check "
        "with onnx.checker and store classes, palette, mean/std, input size and genotype hash in "
        "metadata_props. Default I/O is deployment-friendly: uint8 BGR NHWC frames in, int32 "
        "class map out.",
        epilog="example: lgcnet export lgcnet_deploy/model/weights/lgcnet_camvid.pt "
        "-o engines/lgcnet.onnx")
    p.add_argument("model", help="checkpoint (.pt) or genotype (JSON path or shipped name, "
                   "exported with random weights, for speed work only)")
    p.add_argument("-o", "--output", type=Path, required=True, help="ONNX file to write")
    p.add_argument("--imgsz", type=image_size, default=None,
                   help="input HxW (default: the checkpoint's, 360x480 for CamVid)")
    p.add_argument("--input", choices=("uint8", "float"), default="uint8",
                   help="uint8: BGR NHWC frame, normalised in-graph (default); float: "
                   "normalised RGB NCHW")
    p.add_argument("--output-kind", choices=("argmax", "logits"), default="argmax",
                   help="argmax: int32 class map (default); logits: float NCHW scores")
    p.add_argument("--batch", type=int, default=1, help="static batch size (default 1)")
    p.add_argument("--dynamic-batch", action="store_true", help="make the batch axis dynamic")
    p.add_argument("--opset", type=int, default=17)
    p.add_argument("--dataset", choices=sorted(DATASETS), default="camvid",
                   help="classes for a genotype-only export (checkpoints carry their own)")
    p.add_argument("--no-simplify", action="store_true", help="skip onnxsim")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from lgcnet_deploy.core.metadata import INPUT_FLOAT_NCHW_RGB, INPUT_UINT8_NHWC_BGR
    from lgcnet_deploy.export.pipeline import ArtifactSpec, make_artifact

    spec = ArtifactSpec(
        input_size=args.imgsz, batch=args.batch, dynamic_batch=args.dynamic_batch,
        input_format=INPUT_UINT8_NHWC_BGR if args.input == "uint8" else INPUT_FLOAT_NCHW_RGB,
        output_kind=args.output_kind, opset=args.opset, simplify=not args.no_simplify,
        dataset=DATASETS[args.dataset])
    artifact = make_artifact(args.model, args.output, spec)
    if not artifact.trained:
        print(f"warning: {args.model} is a genotype: exported RANDOM weights (speed work only)")
    h, w = artifact.meta.input_size
    path = artifact.path
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB): genotype "
          f"{artifact.meta.genotype_hash}, input {args.input} {h}x{w}, output "
          f"{args.output_kind}, opset {args.opset}")
    return 0
