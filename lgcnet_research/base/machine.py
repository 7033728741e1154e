"""Which device a measurement or a training ran on: the name a latency table's header and a
checkpoint's provenance record."""

from __future__ import annotations

from lgcnet_deploy.core.host import cpu_label


def device_name(backend: str) -> str:
    """The GPU's name for a CUDA backend, else the CPU's (`core.host.cpu_label`: its model
    name and the threads this process may use), as `lgcnet bench` records it."""
    if backend.endswith("cuda"):
        import torch

        return torch.cuda.get_device_name()
    return cpu_label()
