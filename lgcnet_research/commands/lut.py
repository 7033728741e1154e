"""`lgcnet lut`: measure the latency lookup table the search's latency loss reads."""

from __future__ import annotations

import argparse
from pathlib import Path

from lgcnet_deploy.cli.args import image_size


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "lut", help="measure the per-op latency table for the search (or show one)",
        description="Times every (op, channels, stride, input/output size) the supernet can "
        "place, on the target backend, plus the fixed frame (stem, cell pre-processing, "
        "fusion reductions, classifier) on a reference genotype; writes a versioned JSON.",
        epilog="example: lgcnet lut --config configs/search/camvid_cpu.json --imgsz 769x1537 "
        "-o results/luts/onnxruntime-cpu_769x1537.json")
    p.add_argument("-o", "--output", type=Path, help="JSON to write")
    p.add_argument("--show", type=Path, help="print the header and costliest ops of a table")
    p.add_argument("--add-trunks", type=Path, metavar="TABLE",
                   help="measure the trunk stems' frame costs into an existing table (same "
                        "backend and machine), keeping its op entries")
    p.add_argument("--config", type=Path, default=None,
                   help="search config whose widths/reductions to measure (default: defaults)")
    p.add_argument("--imgsz", type=image_size, default=(769, 1537), help="input HxW")
    p.add_argument("--backend", default="onnxruntime-cpu",
                   help="onnxruntime-cpu (default), torch-cpu or torch-cuda")
    p.add_argument("--reference", default="default",
                   help="genotype whose whole-network latency fixes the frame cost")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--iters", type=int, default=10)
    p.add_argument("--passes", type=int, default=3,
                   help="measure every op this often and keep its best (shared machines)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import dataclasses
    import tempfile

    from lgcnet_deploy.model.genotype import load_genotype
    from lgcnet_research.latency.lut import LatencyTable, measure_table
    from lgcnet_research.search.config import SearchConfig

    if args.show:
        t = LatencyTable.load(args.show, check_versions=False)
        trunks = "".join(f", {k} frame {v / 1000:.2f} ms" for k, v in t.stem_frame_us.items())
        print(f"{args.show}: {t.backend} on {t.device}, {t.versions}, input "
              f"{t.input_size[0]}x{t.input_size[1]}, {len(t.entries)} keys, frame "
              f"{t.frame_us / 1000:.2f} ms{trunks}")
        for k, v in sorted(t.entries.items(), key=lambda kv: -kv[1])[:15]:
            print(f"  {v / 1000:8.3f} ms  {k.encode()}")
        return 0
    if args.add_trunks:
        return _add_trunks(args)
    if args.output is None:
        raise ValueError("give -o FILE to write a table (or --show FILE to read one)")
    cfg = SearchConfig.load(args.config) if args.config else SearchConfig()
    widths = cfg.widths_obj()
    ref = dataclasses.replace(load_genotype(args.reference), widths=widths,
                              reductions=tuple(cfg.reductions))
    with tempfile.TemporaryDirectory() as tmp:
        table = measure_table(widths, tuple(cfg.reductions), args.imgsz, args.backend,
                              Path(tmp), ref, threads=args.threads, warmup=args.warmup,
                              iters=args.iters, passes=args.passes)
    table.save(args.output)
    print(f"wrote {args.output}: {len(table.entries)} ops on {table.device} "
          f"({args.backend}), frame {table.frame_us / 1000:.2f} ms, "
          f"{table.extra['seconds']:.0f} s")
    return 0


def _add_trunks(args: argparse.Namespace) -> int:
    import tempfile

    from lgcnet_research.latency.lut import LatencyTable, add_trunk_frames

    table = LatencyTable.load(args.add_trunks)
    if not table.measured_here():
        raise ValueError(f"{args.add_trunks} was measured on {table.device}: add trunk frames "
                         f"on that machine (a frame cost beside another machine's op costs "
                         f"would predict nothing)")
    with tempfile.TemporaryDirectory() as tmp:
        add_trunk_frames(table, Path(tmp), threads=args.threads, warmup=args.warmup,
                         iters=args.iters, passes=args.passes)
    table.save(args.output or args.add_trunks)
    frames = ", ".join(f"{k} {v / 1000:.2f} ms" for k, v in table.stem_frame_us.items())
    print(f"wrote {args.output or args.add_trunks}: trunk frames {frames} (paper frame "
          f"{table.frame_us / 1000:.2f} ms)")
    return 0
