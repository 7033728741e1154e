"""TensorRT layer: no-GPU messages, sidecar checks and FP16 ONNX run here; engine builds,
parity and CUDA-graph checks are marked trt/gpu and skipped without them."""

from __future__ import annotations

import copy
import json
import sys
import types
import warnings

import numpy as np
import onnxruntime as ort
import pytest
import torch

from lgcnet_deploy import cuda
from lgcnet_deploy.backends.base import BackendError, load_backend
from lgcnet_deploy.cli import main
from lgcnet_deploy.deploy import DeployModel, deploy_model
from lgcnet_deploy.engine import import_tensorrt
from lgcnet_deploy.engine.build import build_command, prepare_onnx, resolve_shapes
from lgcnet_deploy.engine.sidecar import (
    EngineMismatchError,
    check_sidecar,
    file_sha256,
    read_sidecar,
    write_sidecar,
)
from lgcnet_deploy.export import export_onnx
from lgcnet_deploy.fp16 import convert_fp16
from lgcnet_deploy.metadata import INPUT_UINT8_NHWC_BGR, OUTPUT_ARGMAX, OUTPUT_LOGITS, ModelMeta

GPU = {"name": "NVIDIA Jetson AGX Orin", "compute_capability": "8.7", "total_memory_mib": 30000}


@pytest.fixture(scope="module")
def frames(real_frames) -> np.ndarray:
    return np.stack(real_frames)  # (3, 360, 480, 3) BGR uint8, the model's input size


@pytest.fixture(scope="module")
def net(trained_like_net, frames):
    """trained_like_net with BN statistics measured on real frames: its random-init weights
    with made-up statistics predict one class everywhere, which makes argmax agreement
    trivially 100 %; calibrated, its class map follows the image."""
    net = copy.deepcopy(trained_like_net)
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None
    with torch.no_grad():
        DeployModel(net.train(), uint8_input=True, argmax_output=False)(torch.from_numpy(frames))
    return net.eval()


@pytest.fixture(scope="module")
def meta() -> ModelMeta:
    from lgcnet_deploy.classes import CAMVID

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
                    for f, c in zip(frames, classes)]) >= 0.98

    l16 = convert_fp16(logits_onnx, tmp_path / "logits.fp16.onnx")
    r32, r16 = (ort.InferenceSession(str(p), providers=["CPUExecutionProvider"])
                for p in (logits_onnx, l16))
    for f in frames:
        overall, confident = _agreement(r32.run(None, {"input": f[None]})[0],
                                        r16.run(None, {"input": f[None]})[0])
        assert overall >= 0.98 and confident >= 0.995
    with pytest.raises(ValueError, match="model precision is 'fp16'"):
        convert_fp16(fp16_path, tmp_path / "again.onnx")


def test_torch_fp16_runner_agrees_with_fp32(net, meta, frames):
    from lgcnet_deploy.backends.torch_cuda import CudaRunner

    module = deploy_model(net, meta.replace(output_kind=OUTPUT_LOGITS))
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
    from lgcnet_deploy.engine.build import build_engine

    return build_engine(onnx_path, tmp_path_factory.mktemp("eng") / "lgcnet_fp16.engine",
                        precision="fp16", progress=False)


@pytest.mark.trt
def test_fp16_engine_matches_onnxruntime(fp16_engine, onnx_path, logits_onnx, frames, tmp_path):
    from lgcnet_deploy.engine.build import build_engine

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
            assert overall >= 0.98 and confident >= 0.995


@pytest.mark.trt
def test_cuda_graph_path_equals_plain_path(fp16_engine, frames):
    from lgcnet_deploy.backends.tensorrt import TensorRTBackend

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

    from lgcnet_deploy.engine.build import build_engine

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
    from lgcnet_deploy.backends.torch_cuda import CudaRunner

    module = deploy_model(net, meta.replace(output_kind=OUTPUT_LOGITS))
    with torch.inference_mode():
        ref = module(torch.from_numpy(frames[:1])).numpy()
    runner = CudaRunner(module, "cuda")
    assert runner.use_cuda_graph
    out1, out2 = runner(frames[:1]), runner(frames[:1])  # capture, then replay
    assert np.array_equal(out1, out2)
    overall, confident = _agreement(ref, out1)
    assert overall >= 0.98 and confident >= 0.995
