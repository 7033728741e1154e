"""The machine a measurement or a training runs on: the device name a latency table's header
and a checkpoint's provenance record, and how the process uses the host's memory."""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

from lgcnet_deploy.core.host import cpu_label

# glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4
_NEVER_TRIM = 2**31 - 1  # bytes: the largest value mallopt's int takes


def device_name(backend: str) -> str:
    """The GPU's name for a CUDA backend, else the CPU's (`core.host.cpu_label`: its model
    name and the threads this process may use), as `lgcnet bench` records it."""
    if backend.endswith("cuda"):
        import torch

        return torch.cuda.get_device_name()
    return cpu_label()


def keep_freed_memory() -> bool:
    """Ask glibc's malloc to serve every allocation from its heap and keep what is freed
    there, rather than map each large tensor fresh from the OS and unmap it when freed: a
    training step on the CPU allocates the same large activations every step, and with
    fresh mappings each one is page-faulted in again (measured on the trunk student at
    360x480 with distillation: 5.3 M page faults and 1.25x the time of a 6-step epoch).
    Numerics are unchanged. True where applied (Linux with glibc), False elsewhere."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    return bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, _NEVER_TRIM))
