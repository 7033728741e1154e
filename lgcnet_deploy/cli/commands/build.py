"""`lgcnet build`: ONNX -> TensorRT engine + sidecar JSON (trtexec/Polygraphy-style flags)."""

from __future__ import annotations

import argparse
from pathlib import Path

from lgcnet_deploy.core.errors import BadInputError
from lgcnet_deploy.core.metadata import PRECISIONS

DESCRIPTION = """\
Build a TensorRT engine from an ONNX model exported by `lgcnet export`, and write the
sidecar <engine>.json (TensorRT version, GPU, precision, shapes, I/O, ONNX hash, model
metadata) that `Segmenter("x.engine")` checks before loading.

Precision lives in the ONNX (the FP16/INT8 builder flags are deprecated since TensorRT
10.12 and gone in 11); the export chain's precision step brings the ONNX there before the
engine step (an ONNX already in that precision is built as it is):
  fp16  the fp32 ONNX is converted to an FP16 ONNX beside the engine (<engine>.fp16.onnx),
        built strongly typed
  int8  needs a Q/DQ ONNX from `lgcnet quantize --target tensorrt`, given an fp16 body and
        fp16 scales beside the engine (<engine>.fp16.onnx); TensorRT 10.0-10.11 build it
        weakly typed (+FP16), 10.12+ strongly typed
  fp32  the ONNX as exported (TF32 allowed, as in trtexec)

The ONNX first passes the TensorRT-compatibility gate (`lgcnet check-trt`); a graph that
breaks a rule is refused before TensorRT is loaded. The build runs through Polygraphy's
loaders (parser, config with the optimisation profile, timing cache and progress bars).

Engines only run with the TensorRT version and GPU architecture that built them: build on
the machine (or an identical one) that runs them."""

EPILOG = """\
examples:
  lgcnet build engines/lgcnet.onnx -o engines/lgcnet_fp16.engine
  lgcnet build engines/lgcnet_b.onnx -o engines/lgcnet_b1-8.engine --min 1x360x480 \\
      --opt 4x360x480 --max 8x360x480
  lgcnet build engines/lgcnet_qdq.onnx -o engines/lgcnet_int8.engine --precision int8
see docs/tensorrt.md"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("build", help="build a TensorRT engine from an ONNX model (GPU)",
                       description=DESCRIPTION, epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("onnx", type=Path, help="ONNX model from `lgcnet export` (or a Q/DQ ONNX)")
    p.add_argument("-o", "--output", type=Path, required=True,
                   help="engine file to write, e.g. engines/lgcnet_fp16.engine")
    p.add_argument("--precision", choices=PRECISIONS, default="fp16",
                   help="engine precision (default: fp16)")
    shapes = p.add_argument_group("shapes", "static batch, or an optimisation profile "
                                  "(all three of --min/--opt/--max, each BxHxW)")
    shapes.add_argument("--batch", type=int, default=None,
                        help="static batch size (default: the ONNX's)")
    for k in ("min", "opt", "max"):
        shapes.add_argument(f"--{k}", metavar="BxHxW", default=None,
                            help=f"{k} input shape of the profile, e.g. 1x360x480")
    p.add_argument("--workspace", type=int, default=2048, metavar="MiB",
                   help="builder workspace memory pool limit in MiB (default: 2048)")
    p.add_argument("--timing-cache", type=Path, default=None, metavar="FILE",
                   help="timing cache to load and update (default: "
                   "<engine dir>/timing-trt<version>-sm<cc>.cache)")
    p.add_argument("--no-timing-cache", action="store_true", help="build without a timing cache")
    p.add_argument("--device", type=int, default=0, help="CUDA device index (default: 0)")
    p.add_argument("--verbose", action="store_true", help="TensorRT's verbose log")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from lgcnet_deploy.export.engine import parse_shape
    from lgcnet_deploy.export.pipeline import make_engine

    given = [args.min, args.opt, args.max]
    if any(given) and not all(given):
        raise BadInputError("an optimisation profile needs all of --min, --opt and --max")
    if all(given) and args.batch is not None:
        raise BadInputError("give either --batch (static) or --min/--opt/--max (profile)")
    profile = tuple(parse_shape(s) for s in given) if all(given) else None
    path = make_engine(args.onnx, args.output, args.precision, batch=args.batch,
                       profile=profile, workspace_mib=args.workspace,
                       timing_cache=args.timing_cache,
                       use_timing_cache=not args.no_timing_cache, device=args.device,
                       verbose=args.verbose, progress=not args.no_progress)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB) and {path.name}.json")
    return 0
