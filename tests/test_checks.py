"""`lgcnet checks` on this GPU-less machine, and the GPU smoke's steps on a fake toolbox whose
engines are the real TensorRTBackend on fake CUDA objects (trt_fakes.py) and whose builds
load their timing cache through the build's own `_attach_timing_cache`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from lgcnet_deploy.cli import EXIT_MISSING_DEPENDENCY, main
from lgcnet_deploy.core import cuda
from lgcnet_deploy.export.engine.build import _attach_timing_cache
from lgcnet_deploy.measure import gpu_smoke
from tests.test_tensorrt_runtime import _Config
from tests.trt_fakes import FakeGraph, FakeRuntime, H, W, fake_backend, frames


def test_checks_on_the_base_install_names_what_is_missing(tmp_path, capsys):
    out = tmp_path / "report.json"
    assert main(["checks", "-o", str(out)]) == 0
    report = json.loads(out.read_text())
    assert {"python", "packages", "onnxruntime_providers", "cuda", "cpu", "extras"} <= set(
        report)
    assert "CPUExecutionProvider" in report["onnxruntime_providers"]
    assert report["packages"]["onnxruntime"] and report["cpu"]["bf16"] is not None
    if report["tensorrt"]["version"] is None:  # this machine: which extra brings it
        trt = report["extras"]["tensorrt"]
        assert not trt["installed"] and "tensorrt" in trt["missing"]
        assert trt["install"] == "pip install 'lgcnet-deploy[tensorrt]'"
        assert "[tensorrt] no (missing tensorrt" in capsys.readouterr().out


def test_gpu_smoke_without_tensorrt_and_gpu_is_one_line_exit_4(tmp_path, capsys, monkeypatch):
    from lgcnet_deploy.measure import checks

    monkeypatch.setattr(checks, "tensorrt_module", lambda: {"version": None})
    out = tmp_path / "report.json"
    assert main(["checks", "-o", str(out), "--gpu-smoke"]) == EXIT_MISSING_DEPENDENCY
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--gpu-smoke needs TensorRT" in err
    assert "gpu_smoke" not in json.loads(out.read_text())  # the report is still written


# --- the smoke's steps on fakes ---------------------------------------------------------------

class FakeToolbox:
    """The smoke's GPU calls: engines are fake_backend()s computing input + 1, ONNX Runtime's
    reference computes the same, builds attach their timing cache through the real code."""

    def __init__(self, workdir: Path, rt: FakeRuntime, **faults: bool) -> None:
        self.workdir, self.rt, self.faults = workdir, rt, faults

    def device_count(self) -> int:
        return self.rt.devices

    def versions(self) -> dict:
        return cuda.versions()

    def static_onnx(self) -> Path:
        return self.workdir / "static.onnx"

    def dynamic_onnx(self) -> Path:
        return self.workdir / "dynamic.onnx"

    def input_size(self) -> tuple[int, int]:
        return H, W

    def build(self, onnx_path: Path, engine: Path, **options) -> Path:
        cache = options.get("timing_cache")
        if cache is not None and not self.faults.get("cache_ignored"):
            corrupt = cache.is_file() and cache.read_bytes() != b"cache"
            _attach_timing_cache(_Config(create=None if corrupt else "cache"), cache)
            cache.write_bytes(b"cache")  # what Polygraphy saves after the build
        engine.write_bytes(b"engine")
        return engine

    def engine_io(self, engine: Path) -> list[dict]:
        return [{"mode": "INPUT", "dtype": "UINT8", "shape": [1, H, W, 3]},
                {"mode": "OUTPUT", "dtype": "INT32", "shape": [1, H, W]}]

    def load(self, engine: Path, device: str = "cuda", cuda_graph: bool = True):
        backend = fake_backend(self.rt, device=int(device.rpartition(":")[2] or 0)
                               if ":" in device else 0, cuda_graph=cuda_graph)
        if self.faults.get("graph_differs") and cuda_graph:
            FakeGraph.launch = lambda g: g.context.out.host.fill(0)  # a stale replay
        return backend

    def frames(self, n: int) -> np.ndarray:
        return frames(n)

    def calibration(self, n: int) -> list[Path]:
        return [self.workdir / f"{i}.png" for i in range(n)]

    def reference(self, onnx_path: Path, x: np.ndarray) -> np.ndarray:
        return x[..., 0].astype(np.int32) + 1

    def quantize(self, onnx_path: Path, out: Path, paths: list[Path]) -> Path:
        assert len(paths) == 8
        return out

    def int8_layers(self, engine: Path) -> int:
        return 12

    def ort_session_providers(self, onnx_path: Path) -> list[str]:
        raise gpu_smoke.SmokeSkip("no TensorRT provider in this onnxruntime")

    def failed_capture(self) -> None:
        pass


@pytest.fixture
def rt(monkeypatch) -> FakeRuntime:
    fake = FakeRuntime(devices=2)
    monkeypatch.setattr(cuda, "runtime", lambda: fake)
    monkeypatch.setattr(cuda, "Graph", FakeGraph)
    monkeypatch.setattr(FakeGraph, "launch", FakeGraph.launch)  # undone after a fault test
    return fake


def _status(results: list[dict]) -> dict[str, str]:
    return {r["step"]: r["status"] for r in results}


def test_every_step_passes_on_a_working_engine_path(rt, tmp_path):
    results = gpu_smoke.run_smoke(FakeToolbox(tmp_path, rt), log=lambda line: None)
    assert [r["step"] for r in results] == [s[0] for s in gpu_smoke.STEPS]
    assert _status(results) == {**{s[0]: "pass" for s in gpu_smoke.STEPS},
                                "ort_tensorrt": "skip"}
    by = {r["step"]: r for r in results}
    assert by["driver"]["gpus"] == 2 and by["driver"]["driver_cuda"] == "12.4"
    assert by["timing_cache"]["corrupt_cache"] == "warned, moved aside, built"
    assert by["dynamic_batch"]["agreement"] == 1.0 and by["int8"]["int8_layers"] == 12
    assert set(by["threads"]) >= {"cuda:0", "cuda:1"}  # a second GPU is tried too
    assert {"fp16_graph_ms", "fp16_plain_ms", "int8_graph_ms", "int8_plain_ms"} <= set(
        by["latency"])


def test_a_stale_graph_replay_fails_the_dynamic_batch_step(rt, tmp_path):
    results = gpu_smoke.run_smoke(FakeToolbox(tmp_path, rt, graph_differs=True),
                                  log=lambda line: None)
    failed = next(r for r in results if r["step"] == "dynamic_batch")
    assert failed["status"] == "fail" and "differ on changing batch sizes" in failed["error"]
    # the INT8 step needs the frames and reference the failed step would have left
    assert _status(results)["int8"] == "skip"


def test_a_timing_cache_that_is_not_checked_fails_its_step(rt, tmp_path):
    results = gpu_smoke.run_smoke(FakeToolbox(tmp_path, rt, cache_ignored=True),
                                  log=lambda line: None)
    assert _status(results)["timing_cache"] == "fail"
    assert "saved no timing cache" in results[1]["error"]


def test_no_gpu_stops_the_smoke_after_the_driver_step(monkeypatch, tmp_path):
    fake = FakeRuntime(count_error=35, driver=12040, runtime=13000)  # a CUDA 12 driver
    monkeypatch.setattr(cuda, "runtime", lambda: fake)

    class Tb(FakeToolbox):
        def device_count(self) -> int:
            return cuda.device_count()

    results = gpu_smoke.run_smoke(Tb(tmp_path, fake), log=lambda line: None)
    assert results[0]["status"] == "fail" and "CudaDriverError" in results[0]["error"]
    assert "supports CUDA 12.4" in results[0]["error"]
    assert all(r["status"] == "skip" for r in results[1:])
