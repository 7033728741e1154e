"""TensorRT layer: no-GPU messages, sidecar checks, engine I/O derivation and the FP16 ONNX run
here (pure Python, no stand-in `tensorrt`); engine builds, parity and CUDA-graph checks are
marked trt/gpu and skipped without them. The TensorRT gate has its own file
(test_trt_rules.py)."""

from __future__ import annotations

import json
import re
import sys
import types
import warnings

import numpy as np
import onnxruntime as ort
import pytest
import torch

from lgcnet_deploy.artifact.engine import cuda, import_tensorrt
from lgcnet_deploy.artifact.engine.engine_io import check_io_matches, default_meta, derive_io
from lgcnet_deploy.artifact.engine.sidecar import (
    EngineMismatchError,
    check_sidecar,
    read_sidecar,
    sidecar_meta,
    write_sidecar,
)
from lgcnet_deploy.cli import EXIT_MISSING_DEPENDENCY, EXIT_USER_INPUT, main
from lgcnet_deploy.core.classes import CAMVID
from lgcnet_deploy.core.metadata import (
    INPUT_FLOAT_NCHW_RGB,
    INPUT_UINT8_NHWC_BGR,
    OUTPUT_ARGMAX,
    OUTPUT_LOGITS,
    ModelMeta,
    file_sha256,
)
from lgcnet_deploy.export.engine import (
    PrecisionError,
    build_command,
    build_engine,
    resolve_shapes,
)
from lgcnet_deploy.export.fp16 import convert_fp16
from lgcnet_deploy.export.pipeline import (
    ArtifactSpec,
    Work,
    export_onnx,
    make_engine,
    plan_artifact,
    run_steps,
)
from lgcnet_deploy.model.fold_bn import fold_batchnorm
from lgcnet_deploy.model.io_wrapper import wrap_io
from lgcnet_deploy.runtime.backends import BackendError, load_backend
from lgcnet_deploy.runtime.backends.tensorrt_engine import checked

GPU = {"name": "NVIDIA Jetson AGX Orin", "compute_capability": "8.7", "total_memory_mib": 30000}


@pytest.fixture(scope="module")
def frames(real_frames) -> np.ndarray:
    return np.stack(real_frames)  # (3, 360, 480, 3) BGR uint8, the model's input size


@pytest.fixture(scope="module")
def net(trained_like_net):
    return trained_like_net


@pytest.fixture(scope="module")
def meta() -> ModelMeta:
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
    code = main(["build", str(onnx_path), "-o", str(tmp_path / "x.engine")])
    assert code == EXIT_MISSING_DEPENDENCY
    err = capsys.readouterr().err
    assert "TensorRT's Python package `tensorrt` is not installed" in err
    assert "pip install 'lgcnet-deploy[tensorrt-cu12]'" in err and "JetPack" in err
    assert not (tmp_path / "x.engine").exists()


def test_engine_without_tensorrt_says_what_to_install(no_tensorrt, meta, tmp_path):
    with pytest.raises(BackendError) as e:
        load_backend(_fake_engine(tmp_path, meta))
    msg = str(e.value)
    assert ("x.engine is a TensorRT engine (built with TensorRT 10.3.0.30 for a NVIDIA Jetson "
            "AGX Orin), but") in msg
    assert "`tensorrt` is not installed" in msg and "'[tensorrt-cu13]'" in msg
    assert "Segmenter('model.onnx')" in msg


def test_engine_without_cuda_python_says_what_to_install(no_cuda_python, meta, tmp_path,
                                                         monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", types.SimpleNamespace(__version__="10.3.0"))
    with pytest.raises(BackendError, match=r"cuda-python is not installed: pip install "
                                           r"'lgcnet-deploy\[tensorrt-cu12\]'"):
        load_backend(_fake_engine(tmp_path, meta), device="cuda")


def test_tensorrt_9_is_refused(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", types.SimpleNamespace(__version__="8.6.2"))
    with pytest.raises(ImportError, match=r"TensorRT 8.6.2 is too old.*>= 10"):
        import_tensorrt()


def test_engine_without_sidecar_goes_on_to_tensorrt(no_tensorrt, tmp_path):
    engine = tmp_path / "foreign.engine"  # built by trtexec elsewhere: no sidecar
    engine.write_bytes(b"\x00" * 64)
    with pytest.raises(BackendError, match=r"^foreign.engine is a TensorRT engine, but "
                                           r"TensorRT's Python package"):
        load_backend(engine)


def test_corrupt_engine_is_refused_before_tensorrt(meta, tmp_path):
    engine = _fake_engine(tmp_path, meta)
    engine.write_bytes(b"truncated")
    with pytest.raises(EngineMismatchError, match=r"does not match the hash.*\n  lgcnet build "
                                                  r"m.onnx -o engines/x.engine"):
        load_backend(engine)


@pytest.mark.parametrize("content,match", [
    ('{"format": "something/else"}', "not an lgcnet engine sidecar"),
    ("[1, 2]", "holds a JSON list, not an object"),
    ('"x"', "holds a JSON str, not an object"),
    ("{not json", "damaged or truncated JSON"),
])
def test_broken_sidecar_is_an_error_naming_it(content, match, meta, tmp_path, no_tensorrt):
    engine = _fake_engine(tmp_path, meta)
    (tmp_path / "x.engine.json").write_text(content)
    for load in (read_sidecar, load_backend):  # refused before TensorRT is even imported
        with pytest.raises(EngineMismatchError, match=match) as e:
            load(engine)
        assert str(tmp_path / "x.engine.json") in str(e.value)


@pytest.mark.parametrize("field,value,match", [
    ("gpu", "Orin", "gpu is a str, not a dict"),
    ("tensorrt", 10.3, "tensorrt is a float, not a str"),
    ("meta", [], "meta is a list, not a dict"),
    ("build", None, "build is a NoneType, not a dict"),
    ("gpu", {"name": "Orin", "compute_capability": 8.7}, "gpu.compute_capability is not a"),
])
def test_sidecar_with_wrong_field_types_is_an_error(field, value, match, meta, tmp_path):
    engine = _fake_engine(tmp_path, meta)
    side = json.loads((tmp_path / "x.engine.json").read_text())
    (tmp_path / "x.engine.json").write_text(json.dumps({**side, field: value}))
    with pytest.raises(EngineMismatchError, match=f"x.engine.json: malformed sidecar.*{match}"):
        load_backend(engine)


def test_sidecar_with_invalid_meta_names_the_file(meta, tmp_path):
    engine = _fake_engine(tmp_path, meta)
    with pytest.raises(EngineMismatchError, match=r"x.engine.json: its `meta` is not valid"):
        sidecar_meta({**read_sidecar(engine), "meta": {"classes": ["a"]}}, engine)


# --- engine I/O from (name, is_input, shape, dtype) tuples (pure Python) ----------------------

UINT8_IO = [("input", True, (1, 360, 480, 3), "UINT8"), ("output", False, (1, 360, 480), "INT32")]


def test_io_of_a_uint8_classmap_engine(meta):
    io = derive_io(UINT8_IO)
    assert (io.input_name, io.output_name, io.input_format, io.output_kind, io.input_size) == (
        "input", "output", INPUT_UINT8_NHWC_BGR, OUTPUT_ARGMAX, (360, 480))
    assert io.num_classes is None and not io.dynamic_batch
    check_io_matches(io, meta)  # what our sidecar says of it
    with pytest.raises(EngineMismatchError, match="does not match its metadata"):
        check_io_matches(io, meta.replace(output_kind=OUTPUT_LOGITS))
    with pytest.raises(EngineMismatchError, match="does not match its metadata"):
        check_io_matches(io, meta.replace(input_size=(720, 960)))


def test_io_of_a_dynamic_float_logits_engine_gives_class_count():
    io = derive_io([("images", True, (-1, 3, 512, 1024), "FLOAT"),
                    ("logits", False, (-1, 19, 512, 1024), "HALF")])
    assert io.dynamic_batch and io.num_classes == 19 and io.output_kind == OUTPUT_LOGITS
    assert io.input_format == INPUT_FLOAT_NCHW_RGB and io.input_size == (512, 1024)


@pytest.mark.parametrize("tensors,match", [
    (UINT8_IO[:1], "1 input.*0 output"),
    ([*UINT8_IO, ("aux", False, (1, 360, 480), "INT32")], "1 input.*2 output"),
    ([("input", True, (1, 360, 480, 3), "FLOAT"), UINT8_IO[1]], "expected UINT8 .N, H, W, 3."),
    ([("input", True, (1, -1, -1, 3), "UINT8"), UINT8_IO[1]], "dynamic height/width"),
    ([UINT8_IO[0], ("output", False, (1, 180, 240), "INT32")], "expected an INT32 class map"),
    ([UINT8_IO[0], ("output", False, (1, 11, 360, 480), "INT8")], "FLOAT/HALF logits"),
])
def test_io_that_is_not_lgcnet_shaped_is_refused(tensors, match):
    with pytest.raises(EngineMismatchError, match=match):
        derive_io(tensors, "x.engine")


def test_engine_without_sidecar_gets_default_classes_with_one_warning():
    logits = derive_io([("input", True, (1, 360, 480, 3), "UINT8"),
                        ("output", False, (1, 11, 360, 480), "FLOAT")])
    with pytest.warns(UserWarning) as record:
        meta = default_meta(logits, "foreign.engine")
    assert len(record) == 1 and "\n" not in str(record[0].message)
    assert "foreign.engine has no sidecar" in str(record[0].message)
    assert meta.classes == CAMVID.classes and meta.palette_rgb == CAMVID.palette_rgb
    assert meta.output_kind == OUTPUT_LOGITS and meta.input_size == (360, 480)
    with pytest.warns(UserWarning, match="256 classes"):
        classmap = default_meta(derive_io(UINT8_IO))
    # class ids of a class map are unknown in number: every uint8 id gets a colour
    assert classmap.dataset_info.palette_bgr().shape == (256, 3)


def test_false_from_a_tensorrt_call_raises():
    checked(True, "set_input_shape")
    with pytest.raises(BackendError, match=r"TensorRT set_tensor_address\('input'\) failed"):
        checked(False, "set_tensor_address('input')")


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
                 "1x360x480"]) == EXIT_USER_INPUT
    assert "needs all of --min, --opt and --max" in capsys.readouterr().err


def test_int8_needs_a_qdq_onnx(onnx_path, tmp_path, capsys):
    assert main(["build", str(onnx_path), "-o", str(tmp_path / "x.engine"), "--precision",
                 "int8"]) == EXIT_USER_INPUT
    assert re.search(r"no Q/DQ nodes.*`lgcnet quantize .*TensorRT 11 has no implicit INT8",
                     capsys.readouterr().err)
    assert not list(tmp_path.iterdir())  # nothing converted, nothing built


def test_the_engine_builder_converts_nothing(no_tensorrt, onnx_path, tmp_path):
    """An ONNX not in the precision asked for is refused before TensorRT, naming the
    `lgcnet build` that converts it (the export chain decides precision, not the builder)."""
    engine = tmp_path / "x.engine"
    with pytest.raises(PrecisionError, match=rf"is an fp32 ONNX, .*`lgcnet build "
                                             rf"{re.escape(f'{onnx_path} -o {engine}')} "
                                             rf"--precision fp16`"):
        build_engine(onnx_path, engine, precision="fp16")
    assert not list(tmp_path.iterdir())


@pytest.fixture
def fake_builder(monkeypatch):
    pytest.importorskip("polygraphy", reason="pip install polygraphy")  # its logger is real
    from lgcnet_deploy.export import engine as engine_module
    from tests.trt_fakes import FakeBuilder

    fake = FakeBuilder()
    monkeypatch.setattr(engine_module, "import_tensorrt", lambda: fake)
    monkeypatch.setattr(engine_module, "_import_polygraphy", lambda: fake)
    monkeypatch.setattr(cuda, "set_device", lambda device: None)
    monkeypatch.setattr(cuda, "device_info", lambda device: dict(GPU))
    return fake


def test_build_converts_in_the_chain_and_builds_what_it_made(fake_builder, onnx_path, tmp_path):
    """`lgcnet build` of an fp32 ONNX: the chain's precision step writes the FP16 ONNX beside
    the engine, the builder parses that file strongly typed, and the sidecar names both (the
    rebuild command starts from the fp32 ONNX); the FP16 ONNX itself is built as it is."""
    pytest.importorskip("onnxconverter_common", reason="pip install onnxconverter-common")
    engine, fp16 = tmp_path / "x.engine", tmp_path / "x.fp16.onnx"
    assert main(["build", str(onnx_path), "-o", str(engine), "--no-progress"]) == 0
    assert fake_builder.networks == [(str(fp16), True)]
    side = read_sidecar(engine)
    assert (side["precision"], side["onnx"]["path"], side["built_onnx"]["path"]) == (
        "fp16", str(onnx_path), str(fp16))
    assert side["build"]["command"].startswith(
        f"lgcnet build {onnx_path} -o {engine} --precision fp16 --batch 1")
    assert main(["build", str(fp16), "-o", str(tmp_path / "y.engine"), "--no-progress"]) == 0
    assert fake_builder.networks[-1] == (str(fp16), True)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "x.engine", "x.engine.json", "x.fp16.onnx", "y.engine", "y.engine.json"]


def test_build_help_explains_precision(capsys):
    with pytest.raises(SystemExit):
        main(["build", "--help"])
    out = capsys.readouterr().out
    assert "Precision lives in the ONNX" in out and "--opt BxHxW" in out


def test_timing_cache_argument_goes_through_polygraphys_lock_file(tmp_path):
    """What the build hands EngineFromNetwork as save_timing_cache, fed to Polygraphy's own
    util.LockFile / load_file / save_file exactly as EngineBytesFromNetwork.call_impl does
    after a build (a pathlib.Path there broke every build: LockFile does `path + ".lock"`)."""
    pg = pytest.importorskip("polygraphy.backend.trt", reason="pip install polygraphy")
    from polygraphy import util

    from lgcnet_deploy.export.engine import engine_loader

    cache = tmp_path / "engines" / "timing-trt10.3.0.30-sm87.cache"
    cache.parent.mkdir()
    loader = engine_loader(pg, network=None, config=None, cache_path=cache)
    arg = loader.timing_cache_path
    for blob in (b"first build", b"merged cache"):  # a fresh cache, then an existing one
        with util.LockFile(arg):
            util.save_file(blob, arg, description="tactic timing cache")
        assert util.load_file(arg) == blob and cache.read_bytes() == blob
    assert (tmp_path / "engines" / f"{cache.name}.lock").is_file()
    assert engine_loader(pg, None, None, cache_path=None).timing_cache_path is None


def test_precision_flags_by_tensorrt_version():
    from lgcnet_deploy.export.engine import precision_flags, weakly_typed

    # BuilderFlag.INT8/FP16 are deprecated from 10.12 and gone in 11: weak typing before only
    assert weakly_typed("int8", "10.3.0.30") and weakly_typed("int8", "10.11.0.33")
    assert not weakly_typed("int8", "10.12.0.36") and not weakly_typed("int8", "11.1.0.5")
    assert not any(weakly_typed(p, "10.3.0.30") for p in ("fp16", "fp32"))
    assert precision_flags(False) == {"tf32": True, "int8": False, "fp16": False}
    assert precision_flags(True) == {"tf32": True, "int8": True, "fp16": True}


def test_create_config_keeps_tf32_on():
    """Polygraphy's CreateConfig clears TF32 unless asked (trtexec keeps it on): the build
    asks, so fp32 layers of an fp32 engine may use TF32 tensor cores."""
    pg = pytest.importorskip("polygraphy.backend.trt", reason="pip install polygraphy")
    from lgcnet_deploy.export.engine import precision_flags

    assert pg.CreateConfig().tf32 is False  # Polygraphy's default, what the build overrides
    for weak in (False, True):
        config = pg.CreateConfig(**precision_flags(weak))
        assert config.tf32 is True and config.int8 is weak and config.fp16 is weak


def test_cuda_helpers_without_cuda_python(no_cuda_python):
    with pytest.raises(ImportError, match=r"\[tensorrt-cu13\]'"):
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


class _CaptureRuntime:
    """cuda-python's runtime calls a capture makes, recorded; `fail` names the ones that
    return an error (the CUDA graph code path without a GPU; the GPU test runs it for real)."""

    cudaError_t = types.SimpleNamespace(cudaSuccess=0, cudaErrorStreamCaptureInvalidated=901,
                                        cudaErrorInvalidValue=1)
    cudaStreamCaptureMode = types.SimpleNamespace(cudaStreamCaptureModeThreadLocal=1)

    def __init__(self, fail: dict[str, int]) -> None:
        self.fail, self.calls = fail, []

    def __getattr__(self, name: str):
        def call(*args):
            self.calls.append(name)
            err = self.fail.get(name, 0)
            if name == "cudaStreamEndCapture":
                return err, (None if err else 7)  # the captured graph's handle
            if name == "cudaGraphInstantiateWithFlags":
                return err, None if err else 8
            if name in ("cudaGetErrorName", "cudaGetErrorString"):
                return 0, f"cudaError{args[0]}".encode()
            return (err,)
        return call


@pytest.mark.parametrize("fail", [{}, {"cudaStreamEndCapture": 901}])
def test_failed_capture_ends_destroys_and_reports_its_own_error(fail, monkeypatch):
    rt = _CaptureRuntime(fail)
    monkeypatch.setattr(cuda, "runtime", lambda: rt)
    stream = types.SimpleNamespace(handle=3)

    def enqueue():
        raise BackendError("TensorRT execute_async_v3 failed")  # what _enqueue raises

    with pytest.raises(BackendError, match="execute_async_v3 failed"):  # not EndCapture's
        cuda.Graph(stream, enqueue)
    # trtexec's endCaptureOnError: end the capture, destroy the graph it returned (none
    # when the capture was invalidated), clear the sticky error
    destroyed = [] if fail else ["cudaGraphDestroy"]
    assert rt.calls == ["cudaStreamBeginCapture", "cudaStreamEndCapture", *destroyed,
                        "cudaGetLastError"]


def test_failed_instantiate_destroys_the_graph_and_reports_its_own_error(monkeypatch):
    rt = _CaptureRuntime({"cudaGraphInstantiateWithFlags": 1, "cudaGraphDestroy": 1})
    monkeypatch.setattr(cuda, "runtime", lambda: rt)
    with pytest.raises(cuda.CudaError, match="cudaError1"):
        cuda.Graph(types.SimpleNamespace(handle=3), lambda: None)
    assert rt.calls[-3:] == ["cudaGetErrorName", "cudaGetErrorString", "cudaGraphDestroy"]


def test_ort_tensorrt_provider_gets_int8_for_qdq_models(onnx_path, tmp_path):
    """ONNX Runtime's TensorRT provider sets BuilderFlag.INT8 only for trt_int8_enable;
    TensorRT refuses a weakly typed Q/DQ network without it."""
    import onnx

    from lgcnet_deploy.artifact.describe import has_qdq
    from lgcnet_deploy.export.int8 import calibration_frames, quantize_int8
    from lgcnet_deploy.runtime.backends.onnx_runtime import ORT_TENSORRT, provider_options

    qdq = quantize_int8(onnx_path, tmp_path / "qdq.onnx", calibration_frames(limit=1),
                        cache_dir=tmp_path / "cache")
    assert has_qdq(onnx.load(str(qdq))) and not has_qdq(onnx.load(str(onnx_path)))
    options = provider_options(ORT_TENSORRT, 0, qdq=True)
    assert options["trt_int8_enable"] is True and options["trt_fp16_enable"] is True
    assert "trt_int8_calibration_table_name" not in options  # the Q/DQ scales are the ranges
    assert provider_options(ORT_TENSORRT, 0)["trt_int8_enable"] is False


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
    plan = plan_artifact(onnx_path, tmp_path / "lgcnet.engine", ArtifactSpec(precision="fp16"))
    work = run_steps(Work(), plan, last="precision")  # what the engine step gets
    fp16_path, meta16 = work.path, work.meta
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

    module = wrap_io(fold_batchnorm(net), meta.replace(output_kind=OUTPUT_LOGITS))
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
    return make_engine(onnx_path, tmp_path_factory.mktemp("eng") / "lgcnet_fp16.engine",
                       precision="fp16", progress=False)


@pytest.mark.trt
def test_fp16_engine_matches_onnxruntime(fp16_engine, onnx_path, logits_onnx, frames, tmp_path):
    side = read_sidecar(fp16_engine)
    assert side["precision"] == "fp16" and side["io"][0]["dtype"] == "UINT8"
    ref = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    with load_backend(fp16_engine, "cuda") as engine:
        for f in frames:
            assert (engine.infer(f[None]) == ref.run(None, {"input": f[None]})[0]).mean() >= 0.98
    logits_engine = make_engine(logits_onnx, tmp_path / "logits.engine", progress=False)
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
        assert g.use_cuda_graph and g._graph is not None


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
    from lgcnet_deploy.export.int8 import calibration_frames, quantize_int8

    qdq = quantize_int8(onnx_path, tmp_path / "qdq.onnx", calibration_frames(limit=8),
                        cache_dir=tmp_path / "cache")
    engine = make_engine(qdq, tmp_path / "lgcnet_int8.engine", precision="int8",
                         progress=False)
    assert read_sidecar(engine)["precision"] == "int8"
    ref = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    with load_backend(engine, "cuda") as b:
        agree = np.mean([(b.infer(f[None]) == ref.run(None, {"input": f[None]})[0]).mean()
                         for f in frames])
    assert agree >= 0.9


@pytest.mark.trt
def test_engine_without_sidecar_loads_from_its_own_io(fp16_engine, frames, tmp_path):
    engine = tmp_path / "copied.engine"  # only the .engine copied, as from a Jetson build
    engine.write_bytes(fp16_engine.read_bytes())
    with pytest.warns(UserWarning, match="copied.engine has no sidecar"):
        b = load_backend(engine, "cuda")
    with b, load_backend(fp16_engine, "cuda") as ref:
        assert b.meta.input_format == INPUT_UINT8_NHWC_BGR and b.meta.output_kind == OUTPUT_ARGMAX
        assert np.array_equal(b.infer(frames[:1]), ref.infer(frames[:1]))


@pytest.mark.gpu
def test_torch_cuda_path_matches_cpu(net, meta, frames):
    from lgcnet_deploy.runtime.backends.pytorch_cuda import CudaRunner

    module = wrap_io(fold_batchnorm(net), meta.replace(output_kind=OUTPUT_LOGITS))
    with torch.inference_mode():
        ref = module(torch.from_numpy(frames[:1])).numpy()
    runner = CudaRunner(module, "cuda")
    assert runner.use_cuda_graph
    out1, out2 = runner(frames[:1]), runner(frames[:1])  # capture, then replay
    assert np.array_equal(out1, out2)
    overall, confident = _agreement(ref, out1)
    assert overall >= 0.98 and confident >= 0.995


@pytest.mark.gpu
def test_failed_capture_on_a_gpu_leaves_the_stream_usable():
    """A real capture broken two ways (enqueue raising; a call not allowed while capturing,
    which invalidates the capture): each raises its own error, the stream leaves capture
    mode, and the next capture and replay work."""
    try:
        rt = cuda.runtime()
    except ImportError:
        pytest.skip("cuda-python not installed")
    stream = cuda.Stream()
    a, b = cuda.HostDeviceBuffer((256,), np.float32), cuda.HostDeviceBuffer((256,), np.float32)
    try:
        def copy_then_fail():
            a.to_device(stream)
            raise ValueError("enqueue failed")

        with pytest.raises(ValueError, match="enqueue failed"):
            cuda.Graph(stream, copy_then_fail)
        with pytest.raises(cuda.CudaError) as e:
            cuda.Graph(stream, stream.synchronize)  # not permitted while capturing
        assert "cudaErrorStreamCaptureInvalidated" not in str(e.value)  # its own, not End's
        status = cuda.check(rt.cudaStreamIsCapturing(stream.handle))
        assert status == rt.cudaStreamCaptureStatus.cudaStreamCaptureStatusNone

        def round_trip():
            a.to_device(stream)
            cuda.check(rt.cudaMemcpyAsync(b.device, a.device, a.nbytes,
                                          rt.cudaMemcpyKind.cudaMemcpyDeviceToDevice,
                                          stream.handle))
            b.to_host(stream)

        graph = cuda.Graph(stream, round_trip)
        a.host[:] = np.arange(256, dtype=np.float32)
        graph.launch()
        stream.synchronize()
        assert np.array_equal(b.host, np.arange(256, dtype=np.float32))
        graph.close()
    finally:
        for buf in (a, b):
            buf.close()
        stream.close()
