"""TensorRT layer: no-GPU messages, sidecar checks and FP16 ONNX run here; engine builds,
parity and CUDA-graph checks are marked trt/gpu and skipped without them."""

from __future__ import annotations

import json
import sys
import types
import warnings

import numpy as np
import onnxruntime as ort
import pytest
import torch

from lgcnet_deploy.cli import main
from lgcnet_deploy.core import cuda
from lgcnet_deploy.core.metadata import (
    INPUT_UINT8_NHWC_BGR,
    OUTPUT_ARGMAX,
    OUTPUT_LOGITS,
    ModelMeta,
    file_sha256,
)
from lgcnet_deploy.export.engine import import_tensorrt
from lgcnet_deploy.export.engine.build import build_command, prepare_onnx, resolve_shapes
from lgcnet_deploy.export.engine.sidecar import (
    EngineMismatchError,
    check_sidecar,
    read_sidecar,
    write_sidecar,
)
from lgcnet_deploy.export.fp16 import convert_fp16
from lgcnet_deploy.export.io_wrapper import wrap_io
from lgcnet_deploy.export.to_onnx import export_onnx
from lgcnet_deploy.runtime.backends.base import BackendError, load_backend

GPU = {"name": "NVIDIA Jetson AGX Orin", "compute_capability": "8.7", "total_memory_mib": 30000}


@pytest.fixture(scope="module")
def frames(real_frames) -> np.ndarray:
    return np.stack(real_frames)  # (3, 360, 480, 3) BGR uint8, the model's input size


@pytest.fixture(scope="module")
def net(trained_like_net):
    return trained_like_net


@pytest.fixture(scope="module")
def meta() -> ModelMeta:
    from lgcnet_deploy.core.classes import CAMVID

    return ModelMeta.for_dataset(CAMVID, input_format=INPUT_UINT8_NHWC_BGR,
                                 output_kind=OUTPUT_ARGMAX)


@pytest.fixture(scope="module")
def onnx_path(net, meta, tmp_path_factory):
    return export_onnx(net, meta, tmp_path_factory.mktemp("onnx") / "lgcnet.onnx")


def _side(**kw) -> dict:
    side = {"tensorrt": "10.3.0.30", "gpu": dict(GPU), "precision": "fp16", "io": [],
            "meta": {}, "engine_sha256": "", "build": {
                "command": "lgcnet build m.onnx -o engines/x.engine --precision fp16 --batch 1 "
                           "--workspace 2048"}}
    side.update(kw)
    return side


def _fake_engine(tmp_path, meta) -> object:
    engine = tmp_path / "x.engine"
    engine.write_bytes(b"not really an engine")
    write_sidecar(engine, _side(meta=meta.to_dict(), engine_sha256=file_sha256(engine)))
    return engine


@pytest.fixture
def no_tensorrt(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # import raises ImportError


@pytest.fixture
def no_cuda_python(monkeypatch):
    for name in ("cuda", "cuda.bindings", "cuda.bindings.runtime", "cuda.cudart"):
        monkeypatch.setitem(sys.modules, name, None)
    cuda.runtime.cache_clear()
    yield
    cuda.runtime.cache_clear()


# --- clean failure without TensorRT / CUDA -------------------------------------------------

def test_build_without_tensorrt_says_what_to_install(no_tensorrt, onnx_path, tmp_path, capsys):
    assert main(["build", str(onnx_path), "-o", str(tmp_path / "x.engine")]) == 2
    err = capsys.readouterr().err
    assert "TensorRT's Python package `tensorrt` is not installed" in err
    assert "pip install 'lgcnet-deploy[tensorrt]'" in err and "JetPack" in err
    assert not (tmp_path / "x.engine").exists()


def test_engine_without_tensorrt_says_what_to_install(no_tensorrt, meta, tmp_path):
    with pytest.raises(BackendError) as e:
        load_backend(_fake_engine(tmp_path, meta))
    msg = str(e.value)
    assert ("x.engine is a TensorRT engine (built with TensorRT 10.3.0.30 for a NVIDIA Jetson "
            "AGX Orin), but") in msg
    assert "`tensorrt` is not installed" in msg and "pip install 'lgcnet-deploy[tensorrt]'" in msg
    assert "Segmenter('model.onnx')" in msg


def test_engine_without_cuda_python_says_what_to_install(no_cuda_python, meta, tmp_path,
                                                         monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", types.SimpleNamespace(__version__="10.3.0"))
    with pytest.raises(BackendError, match=r"cuda-python is not installed: pip install "
                                           r"cuda-python"):
        load_backend(_fake_engine(tmp_path, meta), device="cuda")


def test_tensorrt_9_is_refused(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", types.SimpleNamespace(__version__="8.6.2"))
    with pytest.raises(ImportError, match=r"TensorRT 8.6.2 is too old.*>= 10"):
        import_tensorrt()


def test_engine_without_sidecar_is_refused(tmp_path):
    engine = tmp_path / "foreign.engine"
    engine.write_bytes(b"\x00" * 64)
    with pytest.raises(EngineMismatchError, match=r"no sidecar foreign.engine.json.*lgcnet "
                                                  r"build MODEL.onnx -o"):
        load_backend(engine)


def test_corrupt_engine_is_refused_before_tensorrt(meta, tmp_path):
    engine = _fake_engine(tmp_path, meta)
    engine.write_bytes(b"truncated")
    with pytest.raises(EngineMismatchError, match=r"does not match the hash.*\n  lgcnet build "
                                                  r"m.onnx -o engines/x.engine"):
        load_backend(engine)


def test_bad_sidecar_is_refused(meta, tmp_path):
    engine = _fake_engine(tmp_path, meta)
    (tmp_path / "x.engine.json").write_text(json.dumps({"format": "something/else"}))
    with pytest.raises(EngineMismatchError, match="not an lgcnet engine sidecar"):
        read_sidecar(engine)


# --- sidecar mismatch logic (pure Python) ---------------------------------------------------

def test_sidecar_accepts_same_version_and_gpu():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_sidecar(_side(), "10.3.0.30", GPU)
        check_sidecar(_side(), "10.3.0.26", GPU)  # build number is not part of compatibility


def test_sidecar_refuses_other_tensorrt_with_rebuild_command():
    with pytest.raises(EngineMismatchError) as e:
        check_sidecar(_side(), "11.4.0.106", GPU)
    msg = str(e.value)
    assert "TensorRT 10.3.0.30 (this machine has 11.4.0.106)" in msg
    assert msg.endswith("\n  lgcnet build m.onnx -o engines/x.engine --precision fp16 --batch 1 "
                        "--workspace 2048")


def test_sidecar_refuses_other_gpu_architecture():
    rtx = {"name": "NVIDIA GeForce RTX 4090", "compute_capability": "8.9"}
    with pytest.raises(EngineMismatchError, match=r"compute capability 8.7; this machine has a "
                                                  r"NVIDIA GeForce RTX 4090, 8.9"):
        check_sidecar(_side(), "10.3.0.30", rtx)


def test_sidecar_warns_for_same_architecture_other_model():
    with pytest.warns(UserWarning, match="same architecture"):
        check_sidecar(_side(), "10.3.0.30", {**GPU, "name": "NVIDIA Jetson Orin Nano"})


# --- build planning (no TensorRT needed) ----------------------------------------------------

def test_build_command_reproduces_shapes():
    static = ((1, 360, 480),) * 3
    assert build_command("m.onnx", "e.engine", "fp16", static, 1024).endswith(
        "--precision fp16 --batch 1 --workspace 1024")
    prof = ((1, 360, 480), (4, 360, 480), (8, 360, 480))
    assert "--min 1x360x480 --opt 4x360x480 --max 8x360x480" in build_command(
        "m.onnx", "e.engine", "int8", prof, 1024)


def test_shapes_are_checked_against_the_onnx(onnx_path, meta):
    import onnx

    model = onnx.load(str(onnx_path))
    assert resolve_shapes(model, meta, None, None) == ((1, 360, 480),) * 3
    with pytest.raises(ValueError, match="static batch of 1, asked for 4; re-export"):
        resolve_shapes(model, meta, 4, None)
    with pytest.raises(ValueError, match="static height of 360, asked for 720"):
        resolve_shapes(model, meta, None, ((1, 720, 480),) * 3)
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "batch"
    with pytest.raises(ValueError, match="dynamic axes: pass --batch N"):
        resolve_shapes(model, meta, None, None)
    prof = ((1, 360, 480), (2, 360, 480), (4, 360, 480))
    assert resolve_shapes(model, meta, None, prof) == prof
    with pytest.raises(ValueError, match="min <= opt <= max"):
        resolve_shapes(model, meta, None, prof[::-1])


def test_build_cli_rejects_half_a_profile(onnx_path, tmp_path, capsys):
    assert main(["build", str(onnx_path), "-o", str(tmp_path / "x.engine"), "--min",
                 "1x360x480"]) == 2
    assert "needs all of --min, --opt and --max" in capsys.readouterr().err


def test_int8_needs_a_qdq_onnx(onnx_path, tmp_path):
    with pytest.raises(ValueError, match=r"no Q/DQ nodes.*TensorRT 11 has no implicit INT8"):
        prepare_onnx(onnx_path, "int8", tmp_path / "x.engine")


def test_build_help_explains_precision(capsys):
    with pytest.raises(SystemExit):
        main(["build", "--help"])
    out = capsys.readouterr().out
    assert "Precision lives in the ONNX" in out and "--opt BxHxW" in out


def test_cuda_helpers_without_cuda_python(no_cuda_python):
    with pytest.raises(ImportError, match=r"pip install cuda-python"):
        cuda.runtime()


def test_cuda_check_turns_error_codes_into_exceptions(monkeypatch):
    codes = types.SimpleNamespace(cudaSuccess=0, cudaErrorMemoryAllocation=2,
                                  cudaErrorInsufficientDriver=35, cudaErrorNoDevice=100)
    rt = types.SimpleNamespace(cudaError_t=codes,
                               cudaGetErrorName=lambda e: (0, b"cudaErrorMemoryAllocation"),
                               cudaGetErrorString=lambda e: (0, b"out of memory"),
                               cudaGetDeviceCount=lambda: (100, 0))
    monkeypatch.setattr(cuda, "runtime", lambda: rt)
    assert cuda.check((0, 7)) == 7 and cuda.check((0,)) is None and cuda.check((0, 1, 2)) == (1, 2)
    with pytest.raises(cuda.CudaError, match="cudaErrorMemoryAllocation: out of memory"):
        cuda.check((2, None))
    assert cuda.device_count() == 0  # no device is a count, not an exception
    with pytest.raises(cuda.CudaError, match="CUDA device 1 requested but 0 device"):
        cuda.set_device(1)


# --- FP16 on ONNX Runtime / PyTorch CPU ------------------------------------------------------
# A random-init net (even BN-calibrated) has near-ties everywhere: its logits spread ~0.7 and
# fp16 moves them by up to ~0.08, so ~1 % of pixels flip. A trained net is confident, so the
# 99.5 % criterion is applied where the fp32 top-2 margin (0.1) exceeds fp16's error, plus a
# looser bound on all pixels; the GPU tests apply it to engines the same way.

def _agreement(ref: np.ndarray, out: np.ndarray, margin: float = 0.1) -> tuple[float, float]:
    """(all-pixel, confident-pixel) argmax agreement of (N, C, H, W) logits."""
    top2 = np.sort(ref, axis=1)[:, -2:]
    same = ref.argmax(1) == out.argmax(1)
    return float(same.mean()), float(same[top2[:, 1] - top2[:, 0] >= margin].mean())


@pytest.fixture(scope="module")
def logits_onnx(net, meta, tmp_path_factory):
    return export_onnx(net, meta.replace(output_kind=OUTPUT_LOGITS),
                       tmp_path_factory.mktemp("onnx") / "lgcnet_logits.onnx")


def test_fp16_onnx_keeps_io_and_agrees_with_fp32(onnx_path, logits_onnx, frames, tmp_path):
    pytest.importorskip("onnxconverter_common", reason="pip install onnxconverter-common")
    fp16_path, meta16 = prepare_onnx(onnx_path, "fp16", tmp_path / "lgcnet.engine")
    assert fp16_path == tmp_path / "lgcnet.fp16.onnx" and meta16.precision == "fp16"
    s16 = ort.InferenceSession(str(fp16_path), providers=["CPUExecutionProvider"])
    io = [(i.name, i.type) for i in s16.get_inputs() + s16.get_outputs()]
    assert io == [("input", "tensor(uint8)"), ("output", "tensor(int32)")]
    assert ModelMeta.from_props(s16.get_modelmeta().custom_metadata_map).precision == "fp16"
    s32 = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    classes = [s32.run(None, {"input": f[None]})[0] for f in frames]
    assert len(np.unique(classes)) >= 5  # the class map follows the image
    assert np.mean([(s16.run(None, {"input": f[None]})[0] == c).mean()
                    for f, c in zip(frames, classes)]) >= 0.97

    l16 = convert_fp16(logits_onnx, tmp_path / "logits.fp16.onnx")
    r32, r16 = (ort.InferenceSession(str(p), providers=["CPUExecutionProvider"])
                for p in (logits_onnx, l16))
    for f in frames:
        overall, confident = _agreement(r32.run(None, {"input": f[None]})[0],
                                        r16.run(None, {"input": f[None]})[0])
        # all pixels include the random-init net's near-ties; confident ones carry 99.5 %
        assert overall >= 0.97 and confident >= 0.995
    with pytest.raises(ValueError, match="model precision is 'fp16'"):
        convert_fp16(fp16_path, tmp_path / "again.onnx")


def test_torch_fp16_runner_agrees_with_fp32(net, meta, frames):
    from lgcnet_deploy.runtime.backends.pytorch_cuda import CudaRunner

    module = wrap_io(net, meta.replace(output_kind=OUTPUT_LOGITS))
    with torch.inference_mode():
        ref = module(torch.from_numpy(frames)).numpy()
    runner = CudaRunner(module, "cpu")  # the same fp16/channels_last module, eager on CPU
    assert runner.precision == "fp16" and not runner.use_cuda_graph
    out = runner(frames)
    assert out.dtype == np.float32
    overall, confident = _agreement(ref, out)
    assert overall >= 0.98 and confident >= 0.995


# --- on a GPU with TensorRT (skipped here) --------------------------------------------------

@pytest.fixture(scope="module")
def fp16_engine(onnx_path, tmp_path_factory):
    from lgcnet_deploy.export.engine.build import build_engine

    return build_engine(onnx_path, tmp_path_factory.mktemp("eng") / "lgcnet_fp16.engine",
                        precision="fp16", progress=False)


@pytest.mark.trt
def test_fp16_engine_matches_onnxruntime(fp16_engine, onnx_path, logits_onnx, frames, tmp_path):
    from lgcnet_deploy.export.engine.build import build_engine

    side = read_sidecar(fp16_engine)
    assert side["precision"] == "fp16" and side["io"][0]["dtype"] == "UINT8"
    ref = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    with load_backend(fp16_engine, "cuda") as engine:
        for f in frames:
            assert (engine.infer(f[None]) == ref.run(None, {"input": f[None]})[0]).mean() >= 0.98
    logits_engine = build_engine(logits_onnx, tmp_path / "logits.engine", progress=False)
    ref = ort.InferenceSession(str(logits_onnx), providers=["CPUExecutionProvider"])
    with load_backend(logits_engine, "cuda") as engine:
        for f in frames:
            overall, confident = _agreement(ref.run(None, {"input": f[None]})[0],
                                            engine.infer(f[None]))
            # all pixels include the random-init net's near-ties; confident ones carry 99.5 %
        assert overall >= 0.97 and confident >= 0.995


@pytest.mark.trt
def test_cuda_graph_path_equals_plain_path(fp16_engine, frames):
    from lgcnet_deploy.runtime.backends.tensorrt_engine import TensorRTBackend

    with TensorRTBackend(fp16_engine, "cuda", cuda_graph=True) as g, \
            TensorRTBackend(fp16_engine, "cuda", cuda_graph=False) as p:
        for f in frames:
            assert np.array_equal(g.infer(f[None]), p.infer(f[None]))
        assert g.use_cuda_graph and g._graphs


@pytest.mark.trt
def test_real_engine_with_foreign_sidecar_is_refused(fp16_engine, tmp_path):
    engine = tmp_path / fp16_engine.name
    engine.write_bytes(fp16_engine.read_bytes())
    side = read_sidecar(fp16_engine)
    write_sidecar(engine, {**side, "tensorrt": "9.9.9"})
    with pytest.raises(EngineMismatchError, match="Rebuild it on this machine"):
        load_backend(engine, "cuda")


@pytest.mark.trt
def test_int8_engine_builds_from_qdq_onnx(onnx_path, frames, tmp_path):
    # ONNX Runtime's QDQ quantiser with TensorRT's conventions (symmetric int8), independent of
    # lgcnet_deploy.quantize, so this checks the builder rather than the calibration.
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    from lgcnet_deploy.export.engine.build import build_engine

    class Frames(CalibrationDataReader):
        def __init__(self) -> None:
            self.it = iter([{"input": f[None]} for f in frames])

        def get_next(self):
            return next(self.it, None)

    qdq = tmp_path / "qdq.onnx"
    quantize_static(str(onnx_path), str(qdq), Frames(), quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                    per_channel=True, extra_options={"ActivationSymmetric": True,
                                                     "WeightSymmetric": True})
    import onnx

    model = onnx.load(str(qdq))
    onnx.helper.set_model_props(model, {p.key: p.value for p in onnx.load(
        str(onnx_path)).metadata_props})
    onnx.save(model, str(qdq))
    engine = build_engine(qdq, tmp_path / "lgcnet_int8.engine", precision="int8",
                          progress=False)
    assert read_sidecar(engine)["precision"] == "int8"
    with load_backend(engine, "cuda") as b:
        assert b.infer(frames[:1]).shape == (1, 360, 480)


@pytest.mark.gpu
def test_torch_cuda_path_matches_cpu(net, meta, frames):
    from lgcnet_deploy.runtime.backends.pytorch_cuda import CudaRunner

    module = wrap_io(net, meta.replace(output_kind=OUTPUT_LOGITS))
    with torch.inference_mode():
        ref = module(torch.from_numpy(frames[:1])).numpy()
    runner = CudaRunner(module, "cuda")
    assert runner.use_cuda_graph
    out1, out2 = runner(frames[:1]), runner(frames[:1])  # capture, then replay
    assert np.array_equal(out1, out2)
    overall, confident = _agreement(ref, out1)
    assert overall >= 0.98 and confident >= 0.995


# --- the TensorRT code paths against a recording fake of tensorrt + cuda-python -------------
# No TensorRT can run here; these fakes implement only the documented calls our code makes,
# so the version logic (10.x vs 11.x flags), the sidecar contents and the runtime's shape/
# batch/CUDA-graph handling are exercised. Real behaviour is covered by the trt tests.

class _Enum:
    def __init__(self, name: str, np_dtype=None) -> None:
        self.name, self.np_dtype = name, np_dtype

    def __int__(self) -> int:
        return 3


def _fake_trt(version: str, batch: int = 1) -> types.SimpleNamespace:
    """tensorrt `version`; its engines have uint8 (batch, 360, 480, 3) in, int32 out; the
    test may edit `trt.io` {name: (mode, dtype, shape)}."""
    calls: list = []
    trt = types.SimpleNamespace(__version__=version, calls=calls)
    engine_io = trt.io = {}
    trt.uint8, trt.int32, trt.float32 = (_Enum(n, d) for n, d in (
        ("UINT8", np.uint8), ("INT32", np.int32), ("FLOAT", np.float32)))
    trt.nptype = lambda dt: dt.np_dtype
    trt.TensorIOMode = types.SimpleNamespace(INPUT=_Enum("INPUT"), OUTPUT=_Enum("OUTPUT"))
    trt.Logger = type("Logger", (), {"VERBOSE": 0, "WARNING": 2, "__init__": lambda s, lvl: None})
    trt.MemoryPoolType = types.SimpleNamespace(WORKSPACE="WORKSPACE")
    trt.NetworkDefinitionCreationFlag = types.SimpleNamespace(STRONGLY_TYPED=_Enum("ST"))
    trt.BuilderFlag = (types.SimpleNamespace(FP16="FP16", INT8="INT8")
                       if version.startswith("10.") else types.SimpleNamespace())

    class Config:
        def __getattr__(self, name):
            return lambda *a, **k: calls.append((name, a, k)) or name

        def get_timing_cache(self):
            return types.SimpleNamespace(serialize=lambda: b"CACHE")

    class Builder:
        def __init__(self, logger) -> None: ...

        def create_network(self, flags):
            calls.append(("create_network", flags))

        def create_builder_config(self):
            return Config()

        def create_optimization_profile(self):
            return Config()

        def build_serialized_network(self, network, config):
            return b"ENGINE"

    class Engine:
        @property
        def num_io_tensors(self):
            return len(engine_io)

        def get_tensor_name(self, i):
            return list(engine_io)[i]

        def get_tensor_mode(self, n):
            return getattr(trt.TensorIOMode, engine_io[n][0])

        def get_tensor_dtype(self, n):
            return engine_io[n][1]

        def get_tensor_shape(self, n):
            return engine_io[n][2]

        def get_tensor_format_desc(self, n):
            return "Row major linear format"

        def get_tensor_profile_shape(self, n, profile):
            return [(1, *engine_io[n][2][1:]), (2, *engine_io[n][2][1:]),
                    (4, *engine_io[n][2][1:])]

        def create_execution_context(self):
            return _FakeContext(engine_io)

    trt.Builder = Builder
    trt.OnnxParser = lambda network, logger: types.SimpleNamespace(
        parse_from_file=lambda path: True, num_errors=0)
    trt.Runtime = lambda logger: types.SimpleNamespace(
        deserialize_cuda_engine=lambda blob: Engine() if blob == b"ENGINE" else None)
    engine_io.update({"input": ("INPUT", trt.uint8, (batch, 360, 480, 3)),
                      "output": ("OUTPUT", trt.int32, (batch, 360, 480))})
    return trt


class _FakeContext:
    """Executes 'argmax' as (B channel of the uint8 frame) % 11 on fake device memory."""

    def __init__(self, engine_io: dict) -> None:
        self.io, self.shapes, self.addr = engine_io, {}, {}
        self.runs = 0

    def set_input_shape(self, name, shape):
        self.shapes[name] = tuple(shape)

    def get_tensor_shape(self, name):
        return self.shapes.get(name) or (self.shapes["input"][0], *self.io[name][2][1:])

    def set_tensor_address(self, name, ptr):
        self.addr[name] = ptr

    def execute_async_v3(self, stream):
        b = self.shapes["input"][0]
        x, y = _DEVICE[self.addr["input"]], _DEVICE[self.addr["output"]]
        y[:b] = x[:b, :, :, 0].astype(np.int32) % 11
        self.runs += 1
        return True


_DEVICE: dict[int, np.ndarray] = {}  # fake device memory: pointer -> array


class _FakeBuffer:
    def __init__(self, shape, dtype) -> None:
        self.shape, self.host = tuple(shape), np.zeros(shape, dtype)
        self.nbytes = self.host.nbytes
        self.device_ptr = id(self)
        _DEVICE[self.device_ptr] = np.zeros_like(self.host)

    def to_device(self, stream, nbytes=None):
        _DEVICE[self.device_ptr].reshape(-1).view(np.uint8)[:nbytes or self.nbytes] = \
            self.host.reshape(-1).view(np.uint8)[:nbytes or self.nbytes]

    def to_host(self, stream, nbytes=None):
        self.host.reshape(-1).view(np.uint8)[:nbytes or self.nbytes] = \
            _DEVICE[self.device_ptr].reshape(-1).view(np.uint8)[:nbytes or self.nbytes]

    def close(self) -> None:
        _DEVICE.pop(self.device_ptr)


class _FakeGraph:
    captured = 0

    def __init__(self, stream, enqueue) -> None:
        self.enqueue = enqueue
        _FakeGraph.captured += 1

    def launch(self) -> None:
        self.enqueue()

    def close(self) -> None: ...


@pytest.fixture
def fake_gpu(monkeypatch):
    """Fake cuda-python layer: one GPU (GPU above), numpy 'device' buffers, replaying graphs."""
    monkeypatch.setattr(cuda, "runtime", lambda: None)
    monkeypatch.setattr(cuda, "device_count", lambda: 1)
    monkeypatch.setattr(cuda, "set_device", lambda i: None)
    monkeypatch.setattr(cuda, "device_info", lambda i=0: dict(GPU))
    monkeypatch.setattr(cuda, "HostDeviceBuffer", _FakeBuffer)
    monkeypatch.setattr(cuda, "Graph", _FakeGraph)
    monkeypatch.setattr(cuda, "Stream", lambda: types.SimpleNamespace(
        ptr=1, synchronize=lambda: None, close=lambda: None))


@pytest.mark.parametrize("version,precision,flags,builder_flags", [
    ("10.3.0.30", "fp16", 1 << 3, []),               # strongly typed FP16 ONNX
    ("10.3.0.30", "int8", 0, ["INT8", "FP16"]),     # 10.x: weak typing + builder flags
    ("11.4.0.106", "fp16", 0, []),                   # 11.x: always strongly typed, no flags
])
def test_build_uses_the_right_flags_per_version(version, precision, flags, builder_flags,
                                                onnx_path, tmp_path, monkeypatch, fake_gpu):
    trt = _fake_trt(version)
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    from lgcnet_deploy.export.engine.build import build_engine

    src = onnx_path
    if precision == "int8":  # any Q/DQ node marks a quantised ONNX for the planner
        import onnx

        model = onnx.load(str(onnx_path))
        model.graph.node.append(onnx.helper.make_node("DequantizeLinear", ["q", "s"], ["dq"]))
        src = tmp_path / "qdq.onnx"
        onnx.save(model, str(src))
    engine = build_engine(src, tmp_path / "x.engine", precision=precision, progress=False,
                          workspace_mib=512)
    assert ("create_network", flags) in trt.calls
    assert [c[1][0] for c in trt.calls if c[0] == "set_flag"] == builder_flags
    assert ("set_memory_pool_limit", ("WORKSPACE", 512 << 20), {}) in trt.calls
    assert engine.read_bytes() == b"ENGINE"
    assert (tmp_path / f"timing-trt{version}-sm87.cache").read_bytes() == b"CACHE"
    side = read_sidecar(engine)
    assert side["tensorrt"] == version and side["gpu"]["compute_capability"] == "8.7"
    assert side["precision"] == precision and side["meta"]["precision"] == precision
    assert side["io"][0] == {"name": "input", "mode": "INPUT", "dtype": "UINT8",
                             "shape": [1, 360, 480, 3], "format": "Row major linear format"}
    assert side["shapes"]["opt"] == [1, 360, 480, 3]
    assert side["build"]["command"].endswith(f"--precision {precision} --batch 1 "
                                             f"--workspace 512")
    if precision == "fp16":
        assert side["built_onnx"]["path"].endswith("x.fp16.onnx")


@pytest.mark.parametrize("batch", [1, 2])
def test_runtime_static_engine_graph_equals_plain(batch, meta, frames, tmp_path, monkeypatch,
                                                  fake_gpu):
    from lgcnet_deploy.runtime.backends.tensorrt_engine import TensorRTBackend

    trt = _fake_trt("10.3.0.30", batch)
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    engine = tmp_path / "x.engine"
    engine.write_bytes(b"ENGINE")
    write_sidecar(engine, _side(meta=meta.to_dict(), engine_sha256=file_sha256(engine)))
    want = frames[:, :, :, 0].astype(np.int32) % 11
    _FakeGraph.captured = 0
    with TensorRTBackend(engine, "cuda", cuda_graph=True) as g, \
            TensorRTBackend(engine, "cuda", cuda_graph=False) as p:
        for i in range(len(frames)):
            x = frames[i:i + 1]
            assert np.array_equal(g.infer(x), want[i:i + 1])
            assert np.array_equal(p.infer(x), want[i:i + 1])
        assert not g.dynamic_batch and g.max_batch == batch
        with pytest.raises(ValueError, match=f"takes batches of {batch}..{batch} frames"):
            g.infer(np.concatenate([frames] * 2)[:batch + 1])
    assert _FakeGraph.captured == 1  # one capture, then replays


def test_runtime_dynamic_engine_checks_profile(meta, frames, tmp_path, monkeypatch, fake_gpu):
    from lgcnet_deploy.runtime.backends.tensorrt_engine import TensorRTBackend

    trt = _fake_trt("10.3.0.30", -1)
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    engine = tmp_path / "x.engine"
    engine.write_bytes(b"ENGINE")
    write_sidecar(engine, _side(meta=meta.to_dict(), engine_sha256=file_sha256(engine)))
    with TensorRTBackend(engine, "cuda:0") as b:
        assert b.dynamic_batch and (b.min_batch, b.max_batch) == (1, 4)
        assert b.inp.shape == (4, 360, 480, 3)
        out = b.infer(frames)
        assert np.array_equal(out, frames[:, :, :, 0].astype(np.int32) % 11)
        assert b.context.shapes["input"] == (3, 360, 480, 3)


def test_runtime_refuses_mismatched_io_and_null_engine(meta, tmp_path, monkeypatch, fake_gpu):
    from lgcnet_deploy.runtime.backends.tensorrt_engine import TensorRTBackend

    trt = _fake_trt("10.3.0.30")
    trt.io["output"] = ("OUTPUT", trt.float32, (1, 11, 360, 480))  # logits; meta says argmax
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    engine = tmp_path / "x.engine"
    engine.write_bytes(b"ENGINE")
    write_sidecar(engine, _side(meta=meta.to_dict(), engine_sha256=file_sha256(engine)))
    with pytest.raises(EngineMismatchError, match="does not match its metadata"):
        TensorRTBackend(engine, "cuda")
    engine.write_bytes(b"GARBAGE")  # deserialize_cuda_engine returns None for it
    write_sidecar(engine, _side(meta=meta.to_dict(), engine_sha256=file_sha256(engine)))
    with pytest.raises(EngineMismatchError, match="could not deserialise"):
        TensorRTBackend(engine, "cuda")
    with pytest.raises(BackendError, match="unknown device 'gpu'"):
        TensorRTBackend(engine, "gpu")
