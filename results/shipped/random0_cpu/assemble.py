"""Ship random-0 as the default (session 2026-11-26, sixth): its genotype with the provenance of
the random search that drew it, its best val checkpoint, and each run of its warm-start chain
with the epochs and val history that the runs of that code did not yet record.

Run from the repository root after `git mv` of the previous default to `lgcnet-camvid-searched`:
    .venv/bin/python results/shipped/random0_cpu/assemble.py
"""
import json
from pathlib import Path

from lgcnet_deploy.model.checkpoint import read_checkpoint
from lgcnet_deploy.model.genotype import Genotype
from lgcnet_research.ship import ship_checkpoint
from lgcnet_research.train import run_record

SHIPPED = Path("lgcnet_deploy/model/weights/lgcnet_camvid.pt")
GENOTYPE = Path("lgcnet_deploy/model/genotypes/default.json")
DRAWN = Path("results/sanity/camvid_cpu/genotypes/random-0.json")
BEST = "/work/bg/candidate_random0_cpu/best.pt"
# oldest first: each run's last.pt holds its whole history
RUNS = [
    ("runs/sanity_cpu/random-0/last.pt",
     "python -m lgcnet_research.sanity --config configs/sanity/camvid_cpu.json"),
    ("runs/sanity_ft/random-0/last.pt",
     "python -m lgcnet_research.train --genotype runs/sanity_cpu/genotypes/random-0.json "
     "--init runs/sanity_cpu/random-0/last.pt --out runs/sanity_ft/random-0 --epochs 60 "
     "--lr 0.01 --batch 8 --crop 256 256 --eval-every 5 --threads 1"),
    ("/work/bg/candidate_random0_cpu/last.pt",
     "python -m lgcnet_research.train --config configs/train/candidate_random0_cpu.json "
     "--init runs/sanity_ft/random-0/last.pt --out runs/candidate_random0_cpu, then --resume "
     "(4 sessions)"),
]
GENOTYPE_PROVENANCE = {
    "source": "random search at a fixed predicted latency (the NAS sanity check, "
              "lgcnet_research.sanity, configs/sanity/camvid_cpu.json): each edge uniform over "
              "its candidates, accepted when the ONNX Runtime CPU table "
              "(results/luts/onnxruntime-cpu_769x1537.json) predicts within ±5 % of the "
              "gradient-searched genotype 0ae83e9cc699 (166.6 ms); draw 0 of 3",
    "predicted_ms": 165.4,
    "selection": "best of the 3 random draws on CamVid val after one identical 80-epoch CPU "
                 "recipe (55.91 % final, against 49.51 and 41.23 %; the gradient-searched "
                 "genotype 48.01 %), docs/search.md",
    "gradient_search": "not from the gradient search: no search run here has both decided "
                       "(mean_top1_prob >= 0.5) and agreed across seeds (docs/search.md)",
}


def chained_provenance(best: dict) -> dict:
    """best.pt's provenance with every run's epochs, val history and command filled in."""
    levels, prov = [], best
    while prov:
        levels.append(prov)
        prov = (prov.get("init") or {}).get("provenance")
    levels.reverse()
    assert len(levels) == len(RUNS), f"{len(levels)} runs in the chain, expected {len(RUNS)}"
    for level, (last, command) in zip(levels, RUNS):
        level.update(run_record(read_checkpoint(last)["train_state"]["history"]),
                     command=command)
    return best


def main() -> None:
    best = read_checkpoint(BEST)
    genotype = Genotype.from_dict({**json.loads(DRAWN.read_text()), "name": "random-camvid-cpu",
                                   "provenance": GENOTYPE_PROVENANCE})
    ship_checkpoint(best, genotype, chained_provenance(best["provenance"]), SHIPPED, GENOTYPE,
                    summary=(
        "random-0 (738e90861bbb), the best of a latency-constrained random search of 3, from "
        "scratch on this project's 2-core CPU: 80 epochs (crop 256, batch 8, LR 0.02 poly) -> "
        "+60 (LR 0.01) -> +250 (crop 360x480, batch 16, LR 0.01 poly): 390 epochs, no "
        "pretraining, CamVid train only (367 frames); the last run's best val checkpoint "
        "(epoch 220 of 250; its final epoch: 64.58 %)"),
                    assembled="results/shipped/random0_cpu/assemble.py (session 2026-11-26)")
    print(SHIPPED, genotype.hash, json.dumps(best["metrics"])[:200])


if __name__ == "__main__":
    main()
