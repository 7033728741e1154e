"""`lgcnet bench`: latency/FPS of a model file or genotype; the paper's preset; a peer model."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from lgcnet_deploy.cli.args import add_device, image_size
from lgcnet_deploy.core.timing import MIN_CALLS_P99
from lgcnet_deploy.model.shipped import DEFAULT_MODEL

DEFAULT_ITERS = MIN_CALLS_P99
DEFAULT_SIZES = [(360, 480), (512, 1024), (769, 1537), (1024, 2048)]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bench", help="latency and FPS: network alone and end to end (trtexec-style)",
        description="Time the network alone (backend inference on a prepared batch) and end "
        "to end (BGR frame in -> class map out through the Segmenter): mean, p50, p90, p99 "
        "and FPS; optionally throughput at larger batches, a peer model and plots.",
        epilog="examples:\n  lgcnet bench --preset paper --compare\n"
        "  lgcnet bench engines/lgcnet.onnx --iters 100 --batches 1 2 4\n"
        "  lgcnet bench default --imgsz 360x480 --plot out/bench   # a genotype",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", nargs="?", default=DEFAULT_MODEL,
                   help="model file (.onnx/.pt/.engine), shipped model (its ONNX; its "
                   "checkpoint, re-exported, for another --imgsz or batch) or genotype "
                   f"(default: the shipped {DEFAULT_MODEL}, which the base install times)")
    p.add_argument("--preset", choices=("paper",),
                   help="paper: 769x1537, batch 1, FP16, TensorRT when present, 19 classes")
    p.add_argument("--imgsz", type=image_size, default=None,
                   help="input HxW: a genotype or checkpoint is re-exported at it; an "
                   ".onnx/.engine only takes its own size")
    p.add_argument("--frame", type=image_size, default=None,
                   help="end-to-end frame HxW (default: the input size)")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--batches", type=int, nargs="*", default=[],
                   help="also measure throughput at these batch sizes")
    p.add_argument("--dataset", default=None, choices=("camvid", "cityscapes"),
                   help="class count for genotypes (default camvid; model files carry theirs)")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--iters", type=int, default=DEFAULT_ITERS,
                   help=f"timed calls per measurement (default {DEFAULT_ITERS}; p99 needs "
                   f">= {MIN_CALLS_P99})")
    p.add_argument("--compare", action="store_true",
                   help="also time torchvision's LR-ASPP MobileNetV3-Large, same I/O and backend")
    p.add_argument("--json", type=Path, default=None, metavar="PATH",
                   help="also write the results as JSON to PATH (nothing is written without)")
    p.add_argument("--plot", type=Path, default=None,
                   help="folder for latency histogram and latency-vs-resolution PNGs")
    p.add_argument("--sizes", type=image_size, nargs="+", default=None,
                   help="also time the network at these input sizes (latency vs resolution; "
                   f"genotypes and checkpoints; with --plot default "
                   f"{' '.join(f'{h}x{w}' for h, w in DEFAULT_SIZES)})")
    p.add_argument("--no-verify", action="store_true",
                   help="load an ONNX whose weights differ from its recorded digest")
    add_device(p)
    p.set_defaults(func=run)


def _cells(r) -> list[str]:
    """One table row: what ran, on what, and its timings (ms per call, frames per second)."""
    n, e = r.network, r.end_to_end
    providers = ",".join(p.removesuffix("ExecutionProvider")
                         for p in r.machine.get("providers", [])) or "-"
    p99 = f"{n.p99:.1f}" if len(n.samples) >= MIN_CALLS_P99 else "-"
    e2e = [f"{e.mean:.1f}", f"{e.fps:.1f}", "x".join(map(str, r.frame_size))] if e else \
        ["-"] * 3
    return [r.name, r.backend, providers, r.precision, str(r.threads or "-"),
            "x".join(map(str, r.input_size)), str(r.batch), str(len(n.samples)),
            f"{n.mean:.1f}", f"{n.p50:.1f}", f"{n.p90:.1f}", p99, f"{r.network_fps:.1f}", *e2e]


HEADER = ("model", "backend", "providers", "prec", "threads", "input px", "batch", "calls",
          "mean ms", "p50 ms", "p90 ms", "p99 ms", "FPS", "e2e ms", "e2e FPS", "frame px")
LEFT = 4  # the first four columns are words, the rest numbers


def _table(results, paper: dict | None) -> str:
    rows = [list(HEADER), *(_cells(r) for r in results)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADER))]
    lines = ["  ".join(c.ljust(w) if i < LEFT else c.rjust(w)
                       for i, (c, w) in enumerate(zip(row, widths))).rstrip() for row in rows]
    lines.insert(1, "-" * len(lines[0]))
    for r in results:
        lines += [f"throughput, {r.name}, batch {b}: {fps:.1f} FPS"
                  for b, fps in r.throughput_fps.items()]
    lines += [f"spread, {r.name} network: {r.network.spread()}" for r in results
              if r.network.spread()]
    calls = min(len(r.network.samples) for r in results)
    lines.append("ms: per call (network: backend inference on a prepared batch; e2e: "
                 "Segmenter.predict, BGR frame in, class map out); FPS: frames per second")
    if calls < MIN_CALLS_P99:
        lines.append(f"p99: needs >= {MIN_CALLS_P99} calls, this run timed {calls} "
                     f"(--iters {MIN_CALLS_P99})")
    machine = results[0].machine
    lines.append(f"CPU: {machine.get('cpu')}, onnxruntime {machine.get('onnxruntime')}"
                 + ("; threads: ONNX Runtime's (its default: one per physical core)"
                    if any(r.threads for r in results) else ""))
    if paper:
        lines.append(f"paper: {paper['fps_tensorrt']} FPS ({paper['device']}); measured: "
                     f"{results[0].network_fps:.1f} FPS on {machine.get('cpu')} "
                     f"({results[0].backend}, {results[0].precision})")
    return "\n".join(lines)


def _paper_source(args: argparse.Namespace, kw: dict, tmp: Path) -> str | Path:
    """Apply the paper preset to `kw`; the source to time (an FP16 engine when possible)."""
    from lgcnet_deploy.measure.bench import paper_preset

    preset = paper_preset(args.model)
    if preset["warning"]:
        print(f"\n!!! {preset['warning']}\n")
    kw.update(input_size=preset["input_size"], batch=preset["batch"],
              frame_size=preset["frame_size"], dataset=preset["dataset"],
              device=preset["device"])
    if not preset["engine"]:
        return args.model
    from lgcnet_deploy.core.classes import DATASETS
    from lgcnet_deploy.export.pipeline import ArtifactSpec, make_artifact

    spec = ArtifactSpec(input_size=preset["input_size"], precision="fp16",
                        dataset=DATASETS[preset["dataset"]])
    return make_artifact(args.model, tmp / "paper_fp16.engine", spec).path


def _resolution_curve(args: argparse.Namespace, kw: dict) -> dict | None:
    """Network latency at --sizes (or, for --plot of a re-exportable model, the defaults)."""
    from lgcnet_deploy.core.formats import find_format
    from lgcnet_deploy.measure.bench import bench_source, latency_vs_resolution

    fmt = find_format(bench_source(args.model))  # a shipped model: its ONNX, one size
    sizes = args.sizes or (DEFAULT_SIZES if args.plot and (fmt is None or not fmt.deployable)
                           else None)
    if not sizes:
        return None
    curve = latency_vs_resolution(args.model, sizes, device=kw["device"],
                                  dataset=kw["dataset"], warmup=2,
                                  iters=max(5, args.iters // 3), verify=kw["verify"])
    print("network latency vs input size: " + ", ".join(
        f"{size} {ms:.1f} ms" for size, ms in curve.items()))
    return curve


def _compare_line(ours, peer) -> str:
    """LGCNet / peer latency ratio, saying what the two runs share and what they do not."""
    ratio = ours.network.mean / peer.network.mean
    same = [k for k in ("backend", "precision") if getattr(ours, k) == getattr(peer, k)]
    differ = ", ".join(f"{k} {getattr(ours, k)} vs {getattr(peer, k)}"
                       for k in ("backend", "precision") if k not in same)
    return (f"LGCNet / LR-ASPP network latency: {ratio:.2f}x "
            f"({'faster' if ratio < 1 else 'slower'}), same input"
            + "".join(f", same {k}" for k in same) + (f"; NOT same: {differ}" if differ else ""))


def run(args: argparse.Namespace) -> int:
    from lgcnet_deploy.measure.bench import (
        PAPER,
        benchmark,
        check_options,
        import_lraspp,
        peer_lraspp,
        save_json,
    )

    if args.compare:
        import_lraspp()  # its extras, before timing anything

    kw = dict(device=args.device, batch=args.batch, input_size=args.imgsz,
              dataset=args.dataset or "camvid", frame_size=args.frame, warmup=args.warmup,
              iters=args.iters, throughput_batches=tuple(args.batches),
              verify=not args.no_verify)
    with tempfile.TemporaryDirectory() as tmp:
        check_options(args.model, args.imgsz, args.sizes, args.dataset, batch=args.batch,
                      throughput_batches=args.batches)
        source = args.model
        if args.preset == "paper":
            source = _paper_source(args, kw, Path(tmp))
            check_options(args.model, kw["input_size"], size_option="--preset paper")
        name = Path(str(args.model)).stem
        results = [benchmark(source, name=f"LGCNet {name}", **kw)]
        if args.compare:
            classes = 19 if kw["dataset"] == "cityscapes" else 11
            peer = peer_lraspp(results[0].input_size, classes, Path(tmp))
            results.append(benchmark(peer, name="LR-ASPP MBv3-Large", **kw))
        print(_table(results, PAPER if args.preset == "paper" else None))
        if args.compare:
            print(_compare_line(*results))
        curve = _resolution_curve(args, kw)
        if args.plot:
            from lgcnet_deploy.measure.plots import plot_bench

            for png in plot_bench(results, curve, args.plot):
                print(f"wrote {png}")
        if args.json:
            extra = {"preset": args.preset, "paper": PAPER if args.preset else None,
                     "latency_vs_resolution_ms": curve}
            print(f"wrote {save_json(results, args.json, extra)}")
    return 0
