"""The one timing loop, shared by the SDK's benchmarks and the research code's latency tables:
`time.perf_counter` around each call, after untimed warm-up calls."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from tqdm import tqdm

# A p99 from fewer calls is the slowest call or an interpolation towards it, not a percentile
# to compare: reports print "-" (JSON null) below this many calls.
MIN_CALLS_P99 = 100


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
