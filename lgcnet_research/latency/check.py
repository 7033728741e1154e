"""Does the latency table predict reality? LUT-predicted vs measured whole-network latency.

    python -m lgcnet_research.latency.check --lut results/luts/onnxruntime-cpu_769x1537.json --n 12

`--genotype a.json --genotype b.json` measures given genotypes instead (e.g. the β runs).
Otherwise it samples N random genotypes over the table's search space (each from its own
Dirichlet mix of the candidate ops, so they span light to heavy networks), predicts each
one's latency from the table (frame + Σ ops) and measures the deployed network (BN folded,
uint8 in, argmax out) on the same backend, then prints both and Spearman's ρ.
Exit status 1 if ρ < --min-rho.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

from lgcnet_deploy.core.timing import time_calls
from lgcnet_deploy.model.genotype import Genotype, load_genotype
from lgcnet_deploy.model.space import (
    CELL_EDGES,
    CELL_OPS,
    DEFAULT_FUSION_INPUTS,
    FUSION_EDGES,
    FUSION_OPS,
    NUM_CELLS,
    UP_OPS,
)
from lgcnet_research.latency.lut import LatencyTable, network_call


def random_genotype(rng: np.random.Generator, table: LatencyTable, name: str,
                    concentration: float | None = 0.3,
                    fusion_inputs: tuple[int, ...] = DEFAULT_FUSION_INPUTS) -> Genotype:
    """Every edge drawn from a per-genotype Dirichlet(`concentration`) mix over its candidate
    ops (light to heavy networks), or uniformly over them when `concentration` is None."""
    mix = {ops: None if concentration is None else rng.dirichlet(np.full(len(ops), concentration))
           for ops in (CELL_OPS, FUSION_OPS, UP_OPS)}

    def draw(ops: tuple[str, ...]) -> str:
        return ops[rng.choice(len(ops), p=mix[ops])]

    cells = tuple(tuple(draw(CELL_OPS) for _ in CELL_EDGES) for _ in range(NUM_CELLS))
    fusion = tuple(draw(FUSION_OPS if e.kind == "op" else UP_OPS) for e in FUSION_EDGES)
    return Genotype(cells=cells, fusion_ops=fusion, reductions=table.reductions,
                    fusion_inputs=fusion_inputs, widths=table.widths, name=name)


def random_genotypes_at(table: LatencyTable, target_ms: float, n: int, band: float = 0.05,
                        seed: int = 0, concentration: float | None = None,
                        fusion_inputs: tuple[int, ...] = DEFAULT_FUSION_INPUTS,
                        max_tries: int = 100_000,
                        exclude: frozenset[str] = frozenset()) -> tuple[list[Genotype], int]:
    """Rejection sampling: `n` distinct random genotypes whose LUT-predicted latency is within
    ±`band` of `target_ms`, none of whose hashes is in `exclude` (the genotype they are drawn
    to be compared with); returns them and the number of draws it took."""
    rng = np.random.default_rng(seed)
    found: dict[str, Genotype] = {}
    for tries in range(1, max_tries + 1):
        g = random_genotype(rng, table, f"random-{len(found)}", concentration, fusion_inputs)
        if (abs(table.predict_ms(g) / target_ms - 1) <= band and g.hash not in found
                and g.hash not in exclude):
            found[g.hash] = g
            if len(found) == n:
                return list(found.values()), tries
    raise RuntimeError(f"only {len(found)} of {n} random genotypes within ±{band:.0%} of "
                       f"{target_ms:.1f} ms in {max_tries} draws: widen the band or set a "
                       f"Dirichlet concentration (e.g. 0.3) to reach the tails")


def spearman(a: list[float], b: list[float]) -> float:
    """Spearman's rank correlation (Pearson on ranks; ties are improbable for timings)."""
    ra, rb = (np.argsort(np.argsort(v)).astype(float) for v in (a, b))
    return float(np.corrcoef(ra, rb)[0, 1])


def check(table: LatencyTable, genotypes: list[Genotype], threads: int | None = None,
          iters: int = 8, rounds: int = 5) -> dict:
    """Predict and measure genotypes; rounds interleave them so a load spike on a shared
    machine hits all of them alike (each keeps its best round's median)."""
    from tqdm import tqdm

    best = [float("inf")] * len(genotypes)
    with tempfile.TemporaryDirectory() as tmp:
        calls = [network_call(g, table.input_size, table.backend, Path(tmp), threads)
                 for g in tqdm(genotypes, desc="export")]
        for _ in tqdm(range(rounds), desc="rounds"):
            for i, call in enumerate(calls):
                best[i] = min(best[i], time_calls(call, 2, iters).p50)
    rows = [{"genotype": g.hash, "name": g.name, "predicted_ms": table.predict_ms(g),
             "measured_ms": m, "ops_ms": table.ops_us(g) / 1000.0}
            for g, m in zip(genotypes, best)]
    rho = spearman([r["predicted_ms"] for r in rows], [r["measured_ms"] for r in rows])
    return {"rows": rows, "spearman_rho": rho, "backend": table.backend, "device": table.device,
            "input_size": list(table.input_size), "rounds": rounds,
            "iters": iters}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m lgcnet_research.latency.check", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--lut", type=Path, required=True)
    p.add_argument("--n", type=int, default=12, help="random genotypes (>= 10)")
    p.add_argument("--genotype", action="append", default=[], metavar="JSON",
                   help="measure these genotypes instead of random ones (repeatable)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--iters", type=int, default=8, help="timed calls per round")
    p.add_argument("--rounds", type=int, default=5, help="interleaved rounds over all genotypes")
    p.add_argument("--min-rho", type=float, default=0.9)
    p.add_argument("--json", type=Path, default=None, help="write the rows and ρ here")
    args = p.parse_args(argv)
    table = LatencyTable.load(args.lut)
    rng = np.random.default_rng(args.seed)
    genotypes = [load_genotype(g) for g in args.genotype] or [
        random_genotype(rng, table, f"random-{i}") for i in range(args.n)]
    result = check(table, genotypes, args.threads, args.iters, args.rounds)
    result["seed"] = None if args.genotype else args.seed
    print(f"{result['backend']} on {result['device']}, input "
          f"{result['input_size'][0]}x{result['input_size'][1]}")
    print("| genotype | name | LUT predicted ms | measured ms | ratio |\n|---|---|---:|---:|---:|")
    for r in sorted(result["rows"], key=lambda r: r["predicted_ms"]):
        print(f"| {r['genotype']} | {r['name']} | {r['predicted_ms']:.1f} | "
              f"{r['measured_ms']:.1f} | {r['measured_ms'] / r['predicted_ms']:.2f} |")
    print(f"Spearman rho = {result['spearman_rho']:.3f} over {len(genotypes)} genotypes "
          f"(bar: {args.min_rho})")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    return 0 if result["spearman_rho"] >= args.min_rho else 1


if __name__ == "__main__":
    raise SystemExit(main())
