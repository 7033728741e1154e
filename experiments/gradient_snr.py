"""How much does one α step know? The α gradient's signal, noise and seed dependence, measured
on frozen supernets.

    python -m experiments.gradient_snr runs/s0 runs/s1 --batches 32 \\
        --out results/search/x/gradient_snr.json [--hard] [--no-gumbel] [--tau 0.5]

For each run (its OUT/search_state.pt), the gradient of Eq. 10 with respect to the raw cell α
is taken on the same `batches` train batches (nothing is updated). Per cell edge, the op the
mean gradient favours (the most negative entry: descent raises its logit) and its lead over
the runner-up against that lead's per-step noise give:

- `steps_for_2sigma`: median over edges of (2 σ / lead)², the α steps after which the summed
  gradient's favourite is 2 σ ahead, i.e. a decision that the noise no longer flips (favourite
  picked on one half of the batches, lead and σ measured on the other);
- `split_half_agreement`: the favourite of the first half of the batches vs the second
  (within one supernet: is there a stable preference at all?);
- `cross_seed_agreement`: the favourites of the two runs' supernets on the same batches (is the
  preference the same across seeds, given unlimited α steps at these weights?), with the
  correlation of their mean gradients and the held-out correlation (one run's first half of
  the batches against the other's second half: the shared batches and Gumbel noise, with
  `--hard` the same sampled paths, cannot correlate these). `--ce-only` leaves out the
  latency term, whose gradient two supernets at the same α share by construction.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
import torch.nn.functional as F

from lgcnet_deploy.core.classes import CAMVID
from lgcnet_research.search.architect import Architect, load_latency_table
from lgcnet_research.search.config import SearchConfig
from lgcnet_research.search.relax import edge_centred_correlation
from lgcnet_research.search.run import STATE, space_of
from lgcnet_research.search.supernet import Supernet
from lgcnet_research.train.data import CamVidTorch


def load_supernet(run: Path) -> tuple[Supernet, Architect, SearchConfig]:
    """The supernet of a search's last state, with its latency loss."""
    state = torch.load(run / STATE, map_location="cpu", weights_only=True)
    cfg = SearchConfig.from_dict(state["config"])
    net = Supernet(space_of(cfg), CAMVID.num_classes)
    architect = Architect(net, cfg, load_latency_table(cfg))
    net.load_state_dict(state["model"])
    return net, architect, cfg


def draw_batches(cfg: SearchConfig, n: int, seed: int = 1234) -> list[tuple[torch.Tensor, ...]]:
    """`n` train batches of the search's crop and batch size, the same for every caller."""
    torch.manual_seed(seed)
    data = CamVidTorch("train", crop=tuple(cfg.crop), scale_range=tuple(cfg.scale),
                       root=cfg.data, seed=seed)
    loader = torch.utils.data.DataLoader(data, cfg.batch, shuffle=True, drop_last=True)
    batches = []
    while len(batches) < n:
        batches.extend(b for b, _ in zip(loader, range(n - len(batches))))
    return batches


def alpha_gradients(net: Supernet, architect: Architect, batches: list, tau: float,
                    hard: bool, gumbel: bool, ce_only: bool = False) -> torch.Tensor:
    """(batches, cells·p, q): ∂(CE + β log LAT)/∂α_cells on each batch, the weights frozen
    (`ce_only`: ∂CE/∂α, the data's part without the latency term)."""
    net.train()
    grads = []
    for x, y in batches:
        net.zero_grad(set_to_none=True)
        logits, lat = net(x, tau, hard, gumbel)
        ce = F.cross_entropy(logits, y, ignore_index=CAMVID.ignore_index)
        (ce if ce_only else architect.loss(ce, lat)).backward()
        grads.append(net.alpha_cells.grad.detach().reshape(-1, net.alpha_cells.shape[-1]))
    return torch.stack(grads)


def favourites(grads: torch.Tensor) -> torch.Tensor:
    """Per edge, the op whose logit the summed gradient raises most."""
    return grads.mean(0).argmin(-1)


def steps_for_2sigma(grads: torch.Tensor) -> float:
    """Median over edges of (2σ/lead)²: the favourite and runner-up are picked on the first
    half of the batches, the favourite's lead (mean gradient difference) and its per-step std
    σ are measured on the second half, so noise cannot pick its own lead; an edge whose
    held-out lead is not positive needs infinitely many steps."""
    half = len(grads) // 2
    order = grads[:half].mean(0).argsort(-1)  # ascending: favourite first
    held_out = grads[half:]
    best, second = (torch.gather(held_out, -1, order[None, :, i:i + 1]
                                 .expand(len(held_out), -1, 1))[..., 0] for i in (0, 1))
    diff = second - best  # > 0 on average where the favourite is real
    steps = (2 * diff.std(0) / diff.mean(0)) ** 2
    return float(torch.where(diff.mean(0) > 0, steps, torch.inf).median())


def correlation(a: torch.Tensor, b: torch.Tensor) -> float:
    """Edge-centred correlation of two (batches, edges, q) gradients' means."""
    return edge_centred_correlation(a.mean(0), b.mean(0))


def compare(grads: list[torch.Tensor]) -> dict:
    """Within-run and cross-run statistics of the α gradients of two runs. The two runs see the
    same batches and Gumbel noise, which alone can correlate them; the held-out correlation
    (one run's first half of the batches against the other's second half) cannot share that."""
    half = len(grads[0]) // 2
    per_run = [{"steps_for_2sigma": steps_for_2sigma(g),
                "split_half_agreement": float((favourites(g[:half]) == favourites(g[half:]))
                                              .float().mean()),
                "split_half_correlation": correlation(g[:half], g[half:]),
                "mean_abs_gradient": float(g.mean(0).abs().mean()),
                "per_step_std": float(g.std(0).mean())} for g in grads]
    a, b = grads
    return {"per_run": per_run,
            "cross_seed_agreement": float((favourites(a) == favourites(b)).float().mean()),
            "cross_seed_gradient_correlation": correlation(a, b),
            "cross_seed_held_out_correlation": (correlation(a[:half], b[half:])
                                                + correlation(a[half:], b[:half])) / 2}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m experiments.gradient_snr",
                                description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs=2, type=Path, help="two search run folders (search_state.pt)")
    p.add_argument("--batches", type=int, default=32)
    p.add_argument("--tau", type=float, default=0.5, help="Gumbel temperature λ")
    p.add_argument("--hard", action=argparse.BooleanOptionalAction, default=False)
    p.add_argument("--gumbel", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--ce-only", action="store_true",
                   help="the CE gradient alone: the latency term's gradient is the same for "
                        "two supernets with the same α, so it correlates them by construction")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, required=True, help="JSON file to write")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    loaded = [load_supernet(run) for run in args.runs]
    batches = draw_batches(loaded[0][2], args.batches)
    grads = []
    for net, architect, _ in loaded:
        torch.manual_seed(0)  # the same Gumbel noise for both supernets
        grads.append(alpha_gradients(net, architect, batches, args.tau, args.hard, args.gumbel,
                                     args.ce_only))
    result = {"runs": [str(r) for r in args.runs], "batches": args.batches, "tau": args.tau,
              "hard": args.hard, "gumbel": args.gumbel, "ce_only": args.ce_only,
              **compare(grads)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
