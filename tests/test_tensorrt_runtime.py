"""The engine backend's and the build's own logic on fake TensorRT/CUDA objects (trt_fakes.py):
the GPU made current on every thread, one inference at a time per backend, CUDA graphs
dropped when the batch changes, the profile call that raises, a timing cache TensorRT will
not take, a driver too old for the wheels, and the per-CUDA-major extras."""

from __future__ import annotations

import threading
import warnings
from pathlib import Path

import numpy as np
import pytest

from lgcnet_deploy.core import cuda
from lgcnet_deploy.runtime.backends.base import BackendError
from tests.trt_fakes import FakeGraph, FakeRuntime, ObservedLock, fake_backend, frames

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def rt(monkeypatch) -> FakeRuntime:
    fake = FakeRuntime()
    monkeypatch.setattr(cuda, "runtime", lambda: fake)
    monkeypatch.setattr(cuda, "Graph", FakeGraph)
    return fake


def _expected(batch: np.ndarray) -> np.ndarray:
    return batch[..., 0].astype(np.int32) + 1


def test_a_worker_thread_runs_on_the_engines_gpu(rt):
    """cudaSetDevice is per host thread: a backend made for cuda:1 on the main thread must
    set it again on the worker that predicts (the fake context asserts the device)."""
    backend = fake_backend(rt, device=1)
    x, out = frames(2), {}
    worker = threading.Thread(target=lambda: out.setdefault("y", backend.infer(x)))
    worker.start()
    worker.join()
    np.testing.assert_array_equal(out["y"], _expected(x))
    assert (worker.ident, 1) in rt.set_calls
    backend.close()
    assert rt.set_calls[-1] == (threading.get_ident(), 1)  # close, too, on its own thread


@pytest.mark.parametrize("cuda_graph", [True, False])
def test_batches_of_changing_size_give_the_right_masks(rt, cuda_graph):
    """A graph captured at one batch is never replayed after the context was reshaped: the
    fake graph fails if it is. Batches [1, 4, 1, 3, 4] as the GPU smoke runs them."""
    backend = fake_backend(rt, cuda_graph=cuda_graph)
    for i, n in enumerate([1, 4, 1, 3, 4]):
        x = frames(n, seed=i)
        np.testing.assert_array_equal(backend.infer(x), _expected(x))
    if cuda_graph:
        assert len(FakeGraph.made) == 5 and all(g.closed for g in FakeGraph.made[:-1])
        backend.infer(frames(4))  # same batch again: the graph is replayed, not recaptured
        assert len(FakeGraph.made) == 5
    backend.close()
    assert all(g.closed for g in FakeGraph.made)
    assert backend.stream.closed and all(b.closed for b in (backend.inp, backend.out))


def test_one_inference_at_a_time_per_backend(rt):
    """Two threads share one backend: the second waits for the first to leave the execution
    context, and each gets its own frames' masks."""
    backend = fake_backend(rt, cuda_graph=False)
    backend._lock = lock = ObservedLock()
    backend.context.wait_for_second = True
    backend.context.second = lock.contended  # the first stays inside until the second waits
    xs, out = [frames(2, seed=s) for s in (1, 2)], {}
    first = threading.Thread(target=lambda: out.setdefault(0, backend.infer(xs[0])))
    first.start()
    assert backend.context.entered.wait(timeout=10)
    second = threading.Thread(target=lambda: out.setdefault(1, backend.infer(xs[1])))
    second.start()
    first.join()
    second.join()
    assert backend.context.overlaps == 0 and lock.contended.is_set()
    for i in (0, 1):
        np.testing.assert_array_equal(out[i], _expected(xs[i]))


def test_profile_selection_that_raises_is_a_backend_error(rt):
    backend = fake_backend(rt)
    backend.context.profile_error = "Error in set optimization profile async."
    with pytest.raises(BackendError, match=r"set_optimization_profile_async\(0\) failed for "
                                           r"fake.engine \(Error in set optimization"):
        backend._select_profile()


# --- driver and wheels -----------------------------------------------------------------------

def test_a_driver_too_old_for_the_wheels_is_said_as_such(monkeypatch):
    fake = FakeRuntime(driver=12040, runtime=13000, count_error=35)
    monkeypatch.setattr(cuda, "runtime", lambda: fake)
    assert cuda.versions() == {"driver_cuda": "12.4", "runtime_cuda": "13.0"}
    with pytest.raises(cuda.CudaDriverError) as e:
        cuda.device_count()
    msg = str(e.value)
    assert "supports CUDA 12.4" in msg and "runtime is CUDA 13.0" in msg
    assert "lgcnet-deploy[tensorrt-cu12]" in msg and "no CUDA GPU" not in msg
    from lgcnet_deploy.runtime.backends.tensorrt_engine import _visible_devices

    with pytest.raises(BackendError, match="TensorRT engines cannot run here: the NVIDIA "
                                           "driver is too old"):
        _visible_devices()


def test_no_device_is_still_a_count(monkeypatch):
    monkeypatch.setattr(cuda, "runtime", lambda: FakeRuntime(count_error=100))
    assert cuda.device_count() == 0


def test_tensorrt_extras_follow_the_drivers_cuda_major():
    tomllib = pytest.importorskip("tomllib")
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]
    cu12, cu13 = extras["tensorrt-cu12"], extras["tensorrt-cu13"]
    assert "tensorrt-cu12>=10.0" in cu12 and "cuda-python>=12.2,<13" in cu12
    assert "tensorrt-cu13>=10.0" in cu13 and "cuda-python>=13,<14" in cu13
    # plain `tensorrt` and an unpinned cuda-python would pull CUDA 13 builds (R580+ drivers)
    assert not any(r.startswith(("tensorrt>", "tensorrt=", "cuda-python>=12.0"))
                   for r in cu12 + cu13 + extras["tensorrt"])
    assert extras["tensorrt"] == ["lgcnet-deploy[tensorrt-cu12]"]
    assert {r for r in cu12 if r.startswith("polygraphy")} == {
        r for r in cu13 if r.startswith("polygraphy")}


# --- timing cache ----------------------------------------------------------------------------

class _Config:
    """IBuilderConfig's timing-cache calls: `create` returns what TensorRT's binding would
    (None for a blob it cannot read), `accept` is set_timing_cache's bool."""

    def __init__(self, create: object, accept: bool = True) -> None:
        self.create, self.accept, self.attached = create, accept, []

    def create_timing_cache(self, blob: bytes) -> object:
        return self.create

    def set_timing_cache(self, cache: object, ignore_mismatch: bool) -> bool:
        if cache is None:  # the binding takes ITimingCache&: pybind11 refuses None
            raise TypeError("set_timing_cache(): incompatible function arguments")
        self.attached.append(cache)
        return self.accept


@pytest.mark.parametrize("config,why", [
    (_Config(create=None), r"does not load \(corrupt or truncated\)"),
    (_Config(create="cache", accept=False), "another GPU or TensorRT"),
])
def test_a_cache_tensorrt_will_not_take_is_moved_aside(config, why, tmp_path):
    from lgcnet_deploy.export.engine.build import _attach_timing_cache

    cache = tmp_path / "timing-trt10.3.0.30-sm87.cache"
    cache.write_bytes(b"\x00garbage")
    with pytest.warns(UserWarning, match=f"{why}; moved to .*cache.refused; building "
                                         f"without it"):
        _attach_timing_cache(config, cache)
    assert not cache.exists() and cache.with_name(cache.name + ".refused").read_bytes() == \
        b"\x00garbage"


def test_a_good_or_missing_cache_is_attached_quietly(tmp_path):
    from lgcnet_deploy.export.engine.build import _attach_timing_cache

    cache = tmp_path / "t.cache"
    for _ in range(2):  # missing (a fresh cache), then present
        config = _Config(create="cache")
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            _attach_timing_cache(config, cache)
        assert config.attached == ["cache"]
        cache.write_bytes(b"good")
