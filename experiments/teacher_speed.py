"""Training-step time of the teachers on this CPU, measured interleaved so that the ratio holds
on a machine whose speed drifts: batch 8, 256x320 crops, channels_last, fp32, SGD.

    python -m experiments.teacher_speed --variants lite0 lite2 --rounds 6 --threads 2

Each round times 3 steps of every variant (the order alternating between rounds) and keeps
their median; printed: each variant's median over the rounds and its per-round ratio to the
first variant's.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from lgcnet_research.base.machine import keep_freed_memory
from lgcnet_research.train.pretrained import VARIANTS
from lgcnet_research.train.teacher import teacher_net


def step_seconds(net: torch.nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor,
                 y: torch.Tensor) -> float:
    """One training step's wall time."""
    start = time.perf_counter()
    loss = F.cross_entropy(net(x), y)
    opt.zero_grad()
    loss.backward()
    opt.step()
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m experiments.teacher_speed", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=["lite0", "lite2"])
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    keep_freed_memory()
    torch.manual_seed(0)
    nets = {v: teacher_net(11, pretrained=False, variant=v).to(memory_format=torch.channels_last)
            for v in args.variants}
    opts = {v: torch.optim.SGD(n.parameters(), lr=0.01, momentum=0.9) for v, n in nets.items()}
    x = torch.randn(8, 3, 256, 320).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 11, (8, 256, 320))
    for v in nets:  # warm-up: first steps allocate and pick kernels
        step_seconds(nets[v], opts[v], x, y)
    times: dict[str, list[float]] = {v: [] for v in nets}
    for r in range(args.rounds):
        for v in args.variants if r % 2 == 0 else args.variants[::-1]:
            times[v].append(statistics.median(step_seconds(nets[v], opts[v], x, y)
                                              for _ in range(3)))
    first = args.variants[0]
    for v, seconds in times.items():
        ratios = [t / f for t, f in zip(seconds, times[first])]
        print(f"{v}: {statistics.median(seconds):.3f} s a step, {statistics.median(ratios):.2f}x "
              f"{first} (rounds {min(ratios):.2f}-{max(ratios):.2f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
