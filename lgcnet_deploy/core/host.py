"""What this machine offers: the CPU's name, its threads and int8 dot-product instructions
(read from /proc/cpuinfo), and whether TensorRT has a CUDA GPU to run on."""

from __future__ import annotations

import os
import platform
from functools import cache
from importlib.util import find_spec
from pathlib import Path

CPUINFO = Path("/proc/cpuinfo")
# The instructions that make int8 convolutions faster than fp32 on a CPU, as /proc/cpuinfo
# names them (x86 "flags", Arm "Features"; Linux calls Arm's dotprod "asimddp").
INT8_DOT_PRODUCT = {"avx512_vnni": "AVX512-VNNI", "avx_vnni": "AVX-VNNI", "amx_int8": "AMX",
                    "asimddp": "Arm dotprod", "i8mm": "Arm i8mm"}


@cache
def _cpuinfo() -> dict[str, str]:
    """The first processor's fields of /proc/cpuinfo ({} where there is none)."""
    try:
        text = CPUINFO.read_text()
    except OSError:
        return {}
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields.setdefault(key.strip(), value.strip())
    return fields


def cpu_threads() -> int:
    """Logical CPUs this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def physical_cores() -> int:
    """Physical cores (distinct socket/core ids in /proc/cpuinfo; else the logical count):
    the threads ONNX Runtime's CPU provider uses by default."""
    try:
        text = CPUINFO.read_text()
    except OSError:
        return os.cpu_count() or 1
    cores, socket = set(), "0"
    for line in text.splitlines():
        key, _, value = (part.strip() for part in line.partition(":"))
        if key == "physical id":
            socket = value
        elif key == "core id":
            cores.add((socket, value))
    return len(cores) or os.cpu_count() or 1


def cpu_label() -> str:
    """'<model name> x<logical CPUs>', e.g. 'AMD EPYC x2'."""
    info = _cpuinfo()
    name = info.get("model name") or platform.processor() or platform.machine()
    return f"{name} x{cpu_threads()}"


# bf16 arithmetic (x86 AVX512-BF16 and AMX tiles, Arm's bf16 extension)
BF16 = {"avx512_bf16": "AVX512-BF16", "amx_bf16": "AMX-BF16", "bf16": "Arm bf16"}


def _instructions(table: dict[str, str]) -> list[str] | None:
    info = _cpuinfo()
    if not info:
        return None
    flags = set((info.get("flags") or info.get("Features") or "").split())
    return [label for flag, label in table.items() if flag in flags]


def int8_instructions() -> list[str] | None:
    """The CPU's int8 dot-product instructions (empty: none), or None where they cannot be
    read (no /proc/cpuinfo: macOS, Windows)."""
    return _instructions(INT8_DOT_PRODUCT)


def bf16_instructions() -> list[str] | None:
    """The CPU's bf16 instructions, as int8_instructions."""
    return _instructions(BF16)


def tensorrt_gpu() -> bool:
    """TensorRT is installed and cuda-python sees a CUDA GPU (what engines need)."""
    if find_spec("tensorrt") is None:
        return False
    try:
        from lgcnet_deploy.core import cuda

        return cuda.device_count() > 0
    except (ImportError, RuntimeError, OSError):
        return False
