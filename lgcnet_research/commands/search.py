"""`lgcnet search`: the paper's architecture search on CamVid (lgcnet_research/search/run.py)."""

from __future__ import annotations

import argparse

from lgcnet_research.commands import register_command


def register(sub: argparse._SubParsersAction) -> None:
    from lgcnet_research.search.config import add_arguments

    register_command(
        sub, "search", add_arguments, "lgcnet_research.search.run:run",
        help="search a genotype on CamVid: GGM, fusion cell, CE + β·log(LAT)",
        description="Section III of the paper: 14 cell-independent cells with the GCN-Guided "
        "Module, the dense-connected fusion cell, Gumbel-softmax (λ 1.0 -> 0.03) and the "
        "latency loss from a measured table (`lgcnet lut`). Writes OUT/genotype.json, "
        "OUT/search_log.jsonl, OUT/search_curves.png; resumable. Settings come from --config "
        "(JSON of SearchConfig fields) and the flags below override them. Use `torchrun "
        "--nproc_per_node=N -m lgcnet_research.search` for DDP.",
        epilog="example: lgcnet search --config configs/search/camvid_cpu.json --out "
        "runs/search --resume")
