"""Training-step time of nets on this CPU, measured interleaved so that the ratio holds on a
machine whose speed drifts: an SGD step with cross-entropy on a batch of crops, channels_last.

    python -m experiments.train_speed --arms lite0 lite2 --rounds 6 --threads 2
    python -m experiments.train_speed --arms lite0_s16_lean16 lite0_s16_lean16:bf16

An arm is a teacher (`lite0`, `lite1`, `lite2`: EfficientNet-Lite with the teacher's head) or
a genotype name (the derived LGCNet), optionally with `:bf16` (the step under bf16 autocast,
as the trainer's `--amp bf16`). Each round times 3 steps of every arm (the order alternating
between rounds) and keeps their median; printed: each arm's median over the rounds and its
per-round ratio to the first arm's.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch
import torch.nn.functional as F

from lgcnet_deploy.core.classes import CAMVID
from lgcnet_deploy.core.errors import EXIT_USER_INPUT, BadInputError
from lgcnet_deploy.model.genotype import load_genotype
from lgcnet_deploy.model.network import LGCNet
from lgcnet_research.base.machine import keep_freed_memory
from lgcnet_research.train.pretrained import VARIANTS
from lgcnet_research.train.teacher import teacher_net

NUM_CLASSES = CAMVID.num_classes  # the step's cost, not its labels, is what is measured


class Arm:
    """One timed configuration: a net, its optimiser and whether the step runs in bf16."""

    def __init__(self, spec: str) -> None:
        name, _, precision = spec.partition(":")
        if precision not in ("", "bf16"):
            raise BadInputError(f"arm {spec!r}: the precision after ':' can only be bf16")
        self.bf16 = precision == "bf16"
        if name in VARIANTS:
            net: torch.nn.Module = teacher_net(NUM_CLASSES, pretrained=False, variant=name)
        else:
            try:
                net = LGCNet(load_genotype(name), NUM_CLASSES)
            except BadInputError as e:
                raise BadInputError(f"arm {spec!r}: neither a teacher ({' '.join(VARIANTS)}) "
                                    f"nor a genotype: {e}") from None
        self.net = net.to(memory_format=torch.channels_last)
        self.opt = torch.optim.SGD(self.net.parameters(), lr=0.01, momentum=0.9)

    def step_seconds(self, x: torch.Tensor, y: torch.Tensor) -> float:
        """One training step's wall time."""
        start = time.perf_counter()
        with torch.autocast("cpu", torch.bfloat16, enabled=self.bf16):
            loss = F.cross_entropy(self.net(x).float(), y)
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m experiments.train_speed", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arms", nargs="+", default=["lite0", "lite2"],
                   help="teachers (lite0 lite1 lite2) or genotype names, each optionally :bf16")
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--crop", type=int, nargs=2, default=[256, 320], metavar=("H", "W"))
    args = p.parse_args(argv)
    if len(set(args.arms)) < len(args.arms):
        p.error("each arm once: a repeated arm would be timed against itself")
    torch.set_num_threads(args.threads)
    keep_freed_memory()
    torch.manual_seed(0)
    try:
        arms = {spec: Arm(spec) for spec in args.arms}
    except BadInputError as e:
        print(f"train_speed: error: {e}", file=sys.stderr)
        return EXIT_USER_INPUT
    x = torch.randn(args.batch, 3, *args.crop).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, NUM_CLASSES, (args.batch, *args.crop))
    for arm in arms.values():  # warm-up: first steps allocate and pick kernels
        arm.step_seconds(x, y)
    times: dict[str, list[float]] = {spec: [] for spec in arms}
    for r in range(args.rounds):
        for spec in args.arms if r % 2 == 0 else args.arms[::-1]:
            times[spec].append(statistics.median(arms[spec].step_seconds(x, y)
                                                 for _ in range(3)))
    first = args.arms[0]
    for spec, seconds in times.items():
        ratios = [t / f for t, f in zip(seconds, times[first])]
        print(f"{spec}: {statistics.median(seconds):.3f} s a step, "
              f"{statistics.median(ratios):.2f}x {first} "
              f"(rounds {min(ratios):.2f}-{max(ratios):.2f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
