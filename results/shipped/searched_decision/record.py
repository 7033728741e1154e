"""Record in the searched model's genotype what its search decided (session 2026-11-26, sixth).

Its search (results/search/camvid_cpu_b0.005) predates the `mean_top1_prob` log field; its log
has each cell's op-choice entropy. For q ops and an edge of entropy ln q − δ, the top op's
probability exceeds 1/q by at most sqrt(2δ/q) (H ≈ ln q − (q/2)·Σ(p − 1/q)² near uniform), and
by concavity the mean over edges by at most sqrt(2·mean δ/q): a bound on mean_top1_prob.
Run from the repository root: .venv/bin/python results/shipped/searched_decision/record.py
"""
import json
import math
from pathlib import Path

from lgcnet_deploy.core.metadata import ModelMeta
from lgcnet_deploy.model.checkpoint import read_checkpoint, save_checkpoint
from lgcnet_deploy.model.genotype import Genotype
from lgcnet_deploy.model.network import LGCNet
from lgcnet_deploy.model.space import CELL_OPS

LOG = Path("results/search/camvid_cpu_b0.005/search_log.jsonl")
WEIGHTS = Path("lgcnet_deploy/model/weights/lgcnet_camvid_searched.pt")
GENOTYPE = Path("lgcnet_deploy/model/genotypes/searched.json")


def decision() -> dict:
    last = json.loads(LOG.read_text().splitlines()[-1])
    cells = [v for k, v in last["entropy"].items() if k.startswith("cell")]
    q = len(CELL_OPS)
    mean_entropy = sum(cells) / len(cells)
    bound = 1 / q + math.sqrt(2 * max(math.log(q) - mean_entropy, 0.0) / q)
    return {"final_mean_entropy": round(mean_entropy, 5), "mean_top1_prob_at_most": round(bound, 3),
            "seed_agreement": None,
            "decision_note": f"the search (one seed, {last['step']} steps) did not decide: mean "
                             f"op-choice entropy {mean_entropy:.4f} nats against ln {q} = "
                             f"{math.log(q):.4f}; mean_top1_prob was not logged then, this bound "
                             f"is from the entropy (results/shipped/searched_decision/record.py)"}


def main() -> None:
    payload = read_checkpoint(WEIGHTS)
    genotype = Genotype.from_dict(payload["genotype"])
    genotype.provenance.update(decision())
    net = LGCNet(genotype, len(payload["meta"]["classes"]))
    net.load_state_dict(payload["state_dict"])
    save_checkpoint(WEIGHTS, net, ModelMeta.from_dict(payload["meta"]),
                    provenance=payload["provenance"], metrics=payload["metrics"])
    genotype.save(GENOTYPE)
    print(genotype.hash, {k: genotype.provenance[k] for k in decision() if k != "decision_note"})


if __name__ == "__main__":
    main()
