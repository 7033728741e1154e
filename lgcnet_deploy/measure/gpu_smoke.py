"""`lgcnet checks --gpu-smoke`: a few minutes on a GPU that prove the engine path end to end.

Each step is a function of a Toolbox (the GPU-touching calls: build, load, ONNX Runtime
reference, quantize, the engine inspector) and the state earlier steps left; it returns
what it measured or raises SmokeFailure saying which check failed. The steps' own logic
(what is compared, what counts as a pass) is tested on a fake toolbox; the Toolbox is the
SDK's own build, runtime and quantiser. Steps, in order: the driver; FP16 builds with and
without the timing cache and with a corrupt one; engine I/O; a dynamic 1..4 engine on
batches [1, 4, 1, 3, 4] with CUDA graphs on and off vs ONNX Runtime on the CPU; INT8 from 8
calibration frames; latency; another thread (and cuda:1); ONNX Runtime's TensorRT provider
on the Q/DQ model; a failed CUDA-graph capture, then close().
"""

from __future__ import annotations

import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

BATCHES = (1, 4, 1, 3, 4)
MIN_FP16_AGREEMENT, MIN_INT8_AGREEMENT = 0.98, 0.90
LATENCY_CALLS = 50


class SmokeFailure(AssertionError):
    """A smoke check failed; the message says which and by how much."""


class SmokeSkip(Exception):
    """A step that cannot run here (e.g. no second GPU part, no ORT TensorRT provider)."""


def require(ok: bool, message: str) -> None:
    if not ok:
        raise SmokeFailure(message)


def agreement(a: np.ndarray, b: np.ndarray) -> float:
    return float((np.asarray(a) == np.asarray(b)).mean())


def step_driver(tb: Any, state: dict) -> dict:
    """1. A CUDA GPU through cuda-python (a too-old driver raises, saying so)."""
    n = tb.device_count()
    require(n > 0, "no CUDA GPU is visible to cuda-python")
    state["gpus"] = n
    return {**tb.versions(), "gpus": n}


def step_timing_cache(tb: Any, state: dict) -> dict:
    """2. FP16 batch 1 twice (the second with the cache the first saved), then with a
    corrupt cache: a warning and a build, not a failure."""
    engine, cache = tb.workdir / "fp16_b1.engine", tb.workdir / "timing.cache"
    seconds = []
    for _ in range(2):
        t0 = time.perf_counter()
        tb.build(tb.static_onnx(), engine, precision="fp16", timing_cache=cache)
        seconds.append(round(time.perf_counter() - t0, 2))
        require(cache.is_file(), f"the build saved no timing cache at {cache}")
    cache.write_bytes(b"not a timing cache")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tb.build(tb.static_onnx(), engine, precision="fp16", timing_cache=cache)
    require(any("timing cache" in str(w.message) for w in caught),
            "a corrupt timing cache gave no warning")
    require(cache.with_name(cache.name + ".refused").is_file(),
            "the corrupt timing cache was not moved aside")
    state["fp16"] = engine
    return {"build_seconds": seconds, "corrupt_cache": "warned, moved aside, built"}


def step_engine_io(tb: Any, state: dict) -> dict:
    """3. UINT8 NHWC in, INT32 (N, H, W) out, as the engine itself says."""
    io = tb.engine_io(state["fp16"])
    inp = next(t for t in io if t["mode"] == "INPUT")
    out = next(t for t in io if t["mode"] == "OUTPUT")
    require(inp["dtype"] == "UINT8" and len(inp["shape"]) == 4 and inp["shape"][3] == 3,
            f"engine input is {inp['dtype']} {inp['shape']}, not UINT8 NHWC")
    require(out["dtype"] == "INT32" and len(out["shape"]) == 3,
            f"engine output is {out['dtype']} {out['shape']}, not INT32 (N, H, W)")
    return {"input": inp, "output": out}


def step_dynamic_batch(tb: Any, state: dict) -> dict:
    """4. A 1/2/4 engine on batches BATCHES, graphs on and off: identical outputs, and
    agreement with ONNX Runtime on the CPU."""
    h, w = tb.input_size()
    engine = tb.build(tb.dynamic_onnx(), tb.workdir / "fp16_b1-4.engine", precision="fp16",
                      profile=((1, h, w), (2, h, w), (4, h, w)))
    frames = tb.frames(max(BATCHES))
    reference = tb.reference(tb.static_onnx(), frames)
    outs: dict[bool, list[np.ndarray]] = {}
    for graph in (True, False):
        backend = tb.load(engine, cuda_graph=graph)
        try:
            outs[graph] = [backend.infer(frames[:n]) for n in BATCHES]
        finally:
            backend.close()
    same = all(np.array_equal(a, b) for a, b in zip(outs[True], outs[False]))
    require(same, "CUDA-graph and plain runs differ on changing batch sizes")
    worst = min(agreement(o, reference[:len(o)]) for o in outs[True])
    require(worst >= MIN_FP16_AGREEMENT,
            f"FP16 agrees with ONNX Runtime on {worst:.2%} of pixels (< 98 %)")
    state["frames"], state["reference"] = frames, reference
    return {"batches": list(BATCHES), "graph_equals_plain": same, "agreement": worst}


def _masks(tb: Any, engine: Path, frames: np.ndarray, **load: Any) -> np.ndarray:
    backend = tb.load(engine, **load)
    try:
        return np.concatenate([backend.infer(f[None]) for f in frames])
    finally:
        backend.close()


def step_int8(tb: Any, state: dict) -> dict:
    """5. INT8 from 8 calibration frames: builds, agrees with FP32 on ONNX Runtime, and the
    engine inspector counts its INT8 layers."""
    qdq = tb.quantize(tb.static_onnx(), tb.workdir / "int8.onnx", tb.calibration(8))
    engine = tb.build(qdq, tb.workdir / "int8_b1.engine", precision="int8", detailed=True)
    got = agreement(_masks(tb, engine, state["frames"]), state["reference"])
    require(got >= MIN_INT8_AGREEMENT,
            f"INT8 agrees with ONNX Runtime on {got:.2%} of pixels (< 90 %)")
    layers = tb.int8_layers(engine)
    require(layers > 0, "the engine inspector shows no INT8 layer")
    state["int8"], state["qdq"] = engine, qdq
    return {"agreement": got, "int8_layers": layers}


def step_latency(tb: Any, state: dict) -> dict:
    """6. Median latency of one frame: fp16 vs int8, CUDA graph vs none."""
    frame = state["frames"][:1]
    found = {}
    for name in ("fp16", "int8"):
        for graph in (True, False):
            backend = tb.load(state[name], cuda_graph=graph)
            try:
                for _ in range(5):
                    backend.infer(frame)
                samples = []
                for _ in range(LATENCY_CALLS):
                    t0 = time.perf_counter()
                    backend.infer(frame)
                    samples.append((time.perf_counter() - t0) * 1e3)
            finally:
                backend.close()
            found[f"{name}_{'graph' if graph else 'plain'}_ms"] = round(float(
                np.median(samples)), 3)
    return found


def _on_worker(fn: Callable[[], Any]) -> Any:
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = fn()
        except BaseException as e:  # re-raised on the calling thread
            box["error"] = e

    worker = threading.Thread(target=run)
    worker.start()
    worker.join()
    if "error" in box:
        raise box["error"]
    return box["value"]


def step_threads(tb: Any, state: dict) -> dict:
    """7. Construct on this thread, predict on a worker: same masks (and on cuda:1)."""
    frame, found = state["frames"][:1], {}
    for device in ["cuda:0"] + (["cuda:1"] if state.get("gpus", 1) > 1 else []):
        backend = tb.load(state["fp16"], device=device)
        try:
            here = backend.infer(frame)
            there = _on_worker(lambda b=backend: b.infer(frame))
        finally:
            backend.close()
        require(np.array_equal(here, there), f"{device}: a worker thread got other masks")
        found[device] = "same masks on a worker thread"
    return found


def step_ort_tensorrt(tb: Any, state: dict) -> dict:
    """8. ONNX Runtime's TensorRT provider takes the Q/DQ model (not CUDA, not the CPU)."""
    providers = tb.ort_session_providers(state["qdq"])
    require(providers[:1] == ["TensorrtExecutionProvider"],
            f"ONNX Runtime runs the Q/DQ model on {providers}, not TensorRT")
    return {"providers": providers}


def step_capture_and_close(tb: Any, state: dict) -> dict:
    """9. A broken capture leaves its stream usable; then an engine closes cleanly."""
    tb.failed_capture()
    backend = tb.load(state["fp16"])
    backend.infer(state["frames"][:1])
    backend.close()
    backend.close()  # twice is harmless
    return {"failed_capture": "stream usable after", "close": "ok"}


# (name, function, state keys it needs)
STEPS: tuple[tuple[str, Callable[[Any, dict], dict], tuple[str, ...]], ...] = (
    ("driver", step_driver, ()),
    ("timing_cache", step_timing_cache, ()),
    ("engine_io", step_engine_io, ("fp16",)),
    ("dynamic_batch", step_dynamic_batch, ()),
    ("int8", step_int8, ("frames", "reference")),
    ("latency", step_latency, ("fp16", "int8", "frames")),
    ("threads", step_threads, ("fp16", "frames")),
    ("ort_tensorrt", step_ort_tensorrt, ("qdq",)),
    ("capture_and_close", step_capture_and_close, ("fp16", "frames")),
)


def run_smoke(tb: Any, steps=STEPS, log: Callable[[str], None] = print) -> list[dict]:
    """Run `steps` in order; each result is {"step", "status": pass|fail|skip, ...}. After a
    failed driver step nothing else runs; a step whose inputs an earlier failure did not
    make is skipped, saying which."""
    state: dict[str, Any] = {}
    results = []
    for name, fn, needs in steps:
        missing = [k for k in needs if k not in state]
        if missing or (results and results[0]["status"] == "fail"):
            result = {"step": name, "status": "skip",
                      "why": f"needs {', '.join(missing) or 'a working driver'} from an "
                             f"earlier step"}
        else:
            try:
                result = {"step": name, "status": "pass", **fn(tb, state)}
            except SmokeSkip as e:
                result = {"step": name, "status": "skip", "why": str(e)}
            except Exception as e:  # every other failure is this step's result
                result = {"step": name, "status": "fail", "error": f"{type(e).__name__}: {e}"}
        log(f"{result['status']:>4}  {name}: " + ", ".join(
            f"{k}={v}" for k, v in result.items() if k not in ("step", "status")))
        results.append(result)
    return results
