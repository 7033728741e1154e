"""Ship the entropy-decided search's genotype (217a4c530fff) as `lgcnet-camvid-searched`
(session 2026-11-26, seventh), retiring the undecided search's model that held the name: its
genotype with the provenance of the search that decided it (mean top-1 0.993, seed agreement
over 2 and 4 seeds and on a GPU), its best val checkpoint, and the command of each run of its
warm-start chain (their epochs and val history are already in each run's provenance).

Run from the repository root:
    .venv/bin/python results/shipped/decided/assemble.py /work/bg/decided/gpu_cpu_ft/best.pt
"""
import json
import sys
from pathlib import Path

from lgcnet_deploy.model.checkpoint import read_checkpoint
from lgcnet_deploy.model.genotype import Genotype
from lgcnet_research.plots import lineage
from lgcnet_research.ship import ship_checkpoint

SHIPPED = Path("lgcnet_deploy/model/weights/lgcnet_camvid_searched.pt")
GENOTYPE = Path("lgcnet_deploy/model/genotypes/searched.json")
SEARCHED = Path("results/search/agree/spos4000_hard_alr0.01_entropy1_beta0_s1/genotype.json")
FOUR_SEEDS = Path("results/search/agree/spos4000_hard_alr0.01_entropy1_beta0_4seeds/agreement.json")
GPU_SEARCH = Path("results/gpu/2026-11-26_h100_session7/call1_search.json")
G = str(SEARCHED)
# oldest first, one command per run of the chain
COMMANDS = [
    f"python -m lgcnet_research.train --genotype {G} --out runs/decided/b0_s1 --epochs 80 "
    "--batch 8 --crop 256 256 --lr 0.02 --eval-every 5 --threads 2",
    f"python -m lgcnet_research.train --genotype {G} --init runs/decided/b0_s1/last.pt "
    "--out runs/decided/ft --epochs 60 --lr 0.01 --batch 8 --crop 256 256 --eval-every 5 "
    "--threads 2",
    "python -m lgcnet_research.train --config configs/train/candidate_decided_cpu.json "
    "--init runs/decided/ft/last.pt --out runs/decided/candidate (its best, epoch 75)",
    "python3 -m lgcnet_research.gpu_sprint --out $OUT --note 'commit a9edc6d, call 2' --stages "
    "train --sanity-config '' --train-configs configs/train/decided_warm_gpu.json "
    "configs/train/gpu_sprint.json configs/train/decided_gpu.json --box-train 330 --budget 345 "
    "(run decided_warm_gpu; init = the previous run's best as .carry/decided_init.pt)",
    f"python -m lgcnet_research.train --genotype {G} --init decided_warm_gpu/best.pt "
    "--out runs/decided/gpu_cpu_ft --epochs 40 --lr 0.003 --batch 16 --crop 360 480 "
    "--ohem-min-kept 100000 --eval-every 4 --threads 2",
]


def genotype_provenance() -> dict:
    """The search's own record plus its agreement over four seeds and on a GPU."""
    prov = json.loads(SEARCHED.read_text())["provenance"]
    four = json.loads(FOUR_SEEDS.read_text())["seed_agreement"]
    gpu = json.loads(GPU_SEARCH.read_text())["agreement"]
    prov["seed_agreement_4_seeds"] = {k: four[k] for k in ("cell_edges", "chance", "pairs")}
    prov["seed_agreement_gpu"] = {k: gpu[k] for k in ("cell_edges", "chance", "p_value")}
    prov["decision"] = (
        "decided by an entropy penalty (--entropy-weight 1, β 0 for the last 2000 of 10000 "
        "steps; docs/search.md 'Forcing the decision'); seed agreement is at chance level "
        "(0.20 with its pair, 0.16 over 4 seeds against chance 0.13; 0.10 against 0.13 for two "
        "GPU seeds): the decision is the search's noise, not a reproducible choice")
    return prov


def main(best_path: str) -> None:
    best = read_checkpoint(best_path)
    genotype = Genotype.from_dict({**json.loads(SEARCHED.read_text()),
                                   "name": "searched-camvid-decided",
                                   "provenance": genotype_provenance()})
    runs = lineage(best["provenance"])
    assert len(runs) == len(COMMANDS), f"{len(runs)} runs in the chain, expected {len(COMMANDS)}"
    for run, command in zip(runs, COMMANDS):
        run["command"] = command
    runs[3]["git"] = "a9edc6d (the device reported 118141c: its .git was not the tree's)"
    ship_checkpoint(best, genotype, best["provenance"], SHIPPED, GENOTYPE, summary=(
        "the entropy-decided search's genotype (217a4c530fff) from scratch: 80 + 60 + 75 CPU "
        "epochs, 196 H100 epochs (5 min), then a CPU fine-tune at LR 0.003; no pretraining, "
        "CamVid train only (367 frames); the last run's best val checkpoint"),
        assembled="results/shipped/decided/assemble.py (session 2026-11-26, seventh)")
    print(f"{SHIPPED}: {100 * best['metrics']['val_miou']:.2f} % val, {len(runs)} runs")


if __name__ == "__main__":
    main(sys.argv[1])
