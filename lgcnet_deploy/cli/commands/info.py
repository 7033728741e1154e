"""`lgcnet info`: what a model file holds."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from lgcnet_deploy.core.formats import format_of


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
    info = format_of(path).describe_file(path)
    if args.json:
        print(json.dumps(info, indent=2, default=str))
        return 0
    info.pop("genotype", None)
    for key, value in info.items():
        if key == "palette_rgb":
            continue
        print(f"{key:>24}: {value}")
    return 0
