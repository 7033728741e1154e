"""What this machine has for lgcnet-deploy (`lgcnet checks`): Python and package versions,
ONNX Runtime's providers, the NVIDIA driver's and the CUDA wheels' CUDA versions, GPUs and
their compute capability, CPU instructions. Every probe answers; nothing here raises for a
missing package or GPU (those are what the report is for)."""

from __future__ import annotations

import importlib.util
import platform
import shutil
import subprocess
import sys
from importlib import metadata
from typing import Any

from lgcnet_deploy.core import host

# distribution names to report; TensorRT's wheel is one of several, by CUDA major
PACKAGES = ("lgcnet-deploy", "numpy", "opencv-python-headless", "onnxruntime",
            "onnxruntime-gpu", "onnx", "onnxsim", "onnxconverter-common", "torch",
            "torchvision", "polygraphy", "cuda-python", "cuda-bindings", "tensorrt",
            "tensorrt-cu12", "tensorrt-cu13", "tqdm")


def package_versions() -> dict[str, str | None]:
    """Installed version of each of PACKAGES (None: not installed)."""
    found: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def tensorrt_module() -> dict[str, Any]:
    """`import tensorrt`'s version and which CUDA major its wheel is for (cu12/cu13 by the
    distribution's name; JetPack's system package has none)."""
    if importlib.util.find_spec("tensorrt") is None:
        return {"version": None}
    try:
        import tensorrt

        version = tensorrt.__version__
    except Exception as e:  # a broken install (missing libraries) is what to report
        return {"version": None, "error": f"{type(e).__name__}: {e}"}
    wheels = [d for d in ("tensorrt-cu13", "tensorrt-cu12") if _installed(d)]
    return {"version": version, "wheel_cuda": wheels[0][-2:] if wheels else None}


def _installed(dist: str) -> bool:
    try:
        metadata.version(dist)
    except metadata.PackageNotFoundError:
        return False
    return True


def onnxruntime_providers() -> list[str]:
    import onnxruntime as ort

    return list(ort.get_available_providers())


def nvidia_smi() -> dict[str, Any] | None:
    """The driver version and GPU names as `nvidia-smi` prints them; None without it."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    try:
        out = subprocess.run([exe, "--query-gpu=driver_version,name,compute_cap",
                              "--format=csv,noheader"], capture_output=True, text=True,
                             timeout=30, check=True).stdout
    except (OSError, subprocess.SubprocessError) as e:
        return {"error": str(e)}
    rows = [[c.strip() for c in line.split(",")] for line in out.splitlines() if line.strip()]
    return {"driver": rows[0][0] if rows else None,
            "gpus": [{"name": r[1], "compute_capability": r[2]} for r in rows if len(r) > 2]}


def cuda_state() -> dict[str, Any]:
    """Through cuda-python: the driver's and the runtime's CUDA versions, the GPUs, and the
    error that stops CUDA here (not installed, driver too old), if any."""
    try:
        from lgcnet_deploy.core import cuda

        versions = cuda.versions()
    except ImportError as e:
        return {"error": str(e).splitlines()[0]}
    state: dict[str, Any] = {**versions, "gpus": []}
    try:
        state["gpus"] = [cuda.device_info(i) for i in range(cuda.device_count())]
    except cuda.CudaError as e:
        state["error"] = str(e)
    return state


def cpu() -> dict[str, Any]:
    return {"name": host.cpu_label(), "machine": platform.machine(),
            "int8_dot_product": host.int8_instructions(), "bf16": host.bf16_instructions(),
            "physical_cores": host.physical_cores()}


def environment() -> dict[str, Any]:
    """Everything above, as one JSON-ready dict."""
    try:
        providers = onnxruntime_providers()
    except ImportError as e:
        providers = [f"error: {e}"]
    return {"python": sys.version.split()[0], "platform": platform.platform(),
            "packages": package_versions(), "tensorrt": tensorrt_module(),
            "onnxruntime_providers": providers, "nvidia_smi": nvidia_smi(),
            "cuda": cuda_state(), "cpu": cpu()}
