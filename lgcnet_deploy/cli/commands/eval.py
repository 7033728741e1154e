"""`lgcnet eval`: mIoU of any model file on a CamVid split."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path

from lgcnet_deploy.cli.args import add_device


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="mIoU of a model file (.pt/.onnx/.engine) on CamVid",
                       description="Segment every frame of a CamVid split through the Segmenter "
                       "(the same pre/post-processing users get) and report per-class IoU and "
                       "mIoU from one confusion matrix over the split, void ignored.",
                       epilog="example: lgcnet eval engines/lgcnet.onnx --split val")
    p.add_argument("model", type=Path)
    p.add_argument("--split", default="val", choices=("train", "val"))
    p.add_argument("--data", type=Path, default=None,
                   help="CamVid root (default: $LGCNET_CAMVID)")
    p.add_argument("--no-verify", action="store_true",
                   help="skip the ONNX weights-digest check (for graphs edited on purpose)")
    p.add_argument("--limit", type=int, default=None, help="only the first N frames")
    p.add_argument("--json", type=Path, default=None, help="also write the report as JSON")
    add_device(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from lgcnet_deploy.core.data import require_camvid
    from lgcnet_deploy.measure.evaluate import evaluate
    from lgcnet_deploy.measure.lineage import seen_warning
    from lgcnet_deploy.runtime.segmenter import Segmenter

    require_camvid(args.data, args.split)  # before loading a model for nothing
    with Segmenter(args.model, device=args.device, verify=not args.no_verify) as seg:
        report = evaluate(seg, args.split, args.data, args.limit)
    print(report.table())
    warning = seen_warning(args.model, args.split)
    if warning:
        print(warning)
    if args.json:
        args.json.write_text(json.dumps(asdict(report), indent=2))
        print(f"wrote {args.json}")
    return 0
