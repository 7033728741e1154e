"""Which device a measurement or a training ran on: the name a latency table's header and a
checkpoint's provenance record."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def device_name(backend: str) -> str:
    """The GPU's name for a CUDA backend, else the CPU's model name and its thread count."""
    if backend.endswith("cuda"):
        import torch

        return torch.cuda.get_device_name()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()} x{os.cpu_count()}"
    except OSError:
        pass
    return platform.processor() or platform.machine()
