"""The one timing loop, shared by the SDK's benchmarks and the research code's latency tables:
`time.perf_counter` around each call, after untimed warm-up calls."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from tqdm import tqdm

# A p99 from fewer calls is the slowest call or an interpolation towards it, not a percentile
# to compare: reports print "-" (JSON null) below this many calls.
MIN_CALLS_P99 = 100
ROUNDS = 5  # the timed calls are split into this many rounds to see the spread between them
# slowest round's median / fastest's above this: the machine was busy with something else
NOISY_SPREAD = 1.25


@dataclass
class Stats:
    """Latency statistics in milliseconds per call."""

    mean: float
    p50: float
    p90: float
    p99: float
    samples: list[float] = field(repr=False)

    @classmethod
    def of(cls, samples_ms: list[float]) -> Stats:
        a = np.asarray(samples_ms)
        p50, p90, p99 = np.percentile(a, [50, 90, 99])
        return cls(float(a.mean()), float(p50), float(p90), float(p99), list(map(float, a)))

    @property
    def fps(self) -> float:
        return 1000.0 / self.mean

    def rounds(self, n: int = ROUNDS) -> list[float]:
        """The median of each of `n` consecutive rounds of the calls (fewer with few calls)."""
        chunks = np.array_split(np.asarray(self.samples), min(n, len(self.samples)))
        return [float(np.median(c)) for c in chunks if len(c)]

    def spread(self) -> str | None:
        """'min/median/max of the round medians', and a warning when they differ by more than
        NOISY_SPREAD (other load on the machine); None for fewer than two rounds."""
        medians = self.rounds()
        if len(medians) < 2:
            return None
        lo, mid, hi = min(medians), float(np.median(medians)), max(medians)
        text = f"{lo:.1f}/{mid:.1f}/{hi:.1f} ms (min/median/max of {len(medians)} rounds)"
        if hi / lo > NOISY_SPREAD:
            text += (f"; NOISY: rounds differ {hi / lo:.1f}x, the machine is busy with other "
                     f"work (load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs): "
                     f"rerun on an idle machine before comparing")
        return text


def time_calls(fn: Callable[[], object], warmup: int, iters: int,
               desc: str | None = None) -> Stats:
    """Time `iters` calls after `warmup` untimed ones; with `desc`, a progress bar on stderr
    when it is a terminal (none in logs)."""
    for _ in range(warmup):
        fn()
    samples = []
    for _ in tqdm(range(iters), desc=desc, leave=False, unit="it", disable=None if desc else True):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1e3)
    return Stats.of(samples)
