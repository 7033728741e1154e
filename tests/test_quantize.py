import re

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import numpy_helper

from lgcnet_deploy.cli import main
from lgcnet_deploy.cli.commands import quantize as quantize_cmd
from lgcnet_deploy.core import host
from lgcnet_deploy.core.classes import CAMVID
from lgcnet_deploy.core.metadata import INPUT_UINT8_NHWC_BGR, OUTPUT_ARGMAX, ModelMeta
from lgcnet_deploy.export.calibration.frames import (
    MIN_FRAMES,
    CalibrationError,
    check_resolution,
    find_frames,
    spread,
)
from lgcnet_deploy.export.int8 import calibration_frames, frames_digest, quantize_int8
from lgcnet_deploy.export.pipeline import export_onnx
from lgcnet_deploy.model.checkpoint import load_checkpoint
from lgcnet_deploy.model.shipped import shipped_file

SIZE = (120, 160)


@pytest.fixture(scope="module")
def fp32(tmp_path_factory):
    # A trained model (a random net's near-tied logits make argmax agreement noise): the
    # hand-written one, for which INT8 is recommended. The narrow default's INT8 cost is
    # measured by `experiments.parity` (README), not tested here.
    net, _, _ = load_checkpoint(shipped_file("lgcnet-camvid-handwritten"))
    meta = ModelMeta.for_dataset(CAMVID, input_size=SIZE, input_format=INPUT_UINT8_NHWC_BGR,
                                 output_kind=OUTPUT_ARGMAX)
    return export_onnx(net, meta, tmp_path_factory.mktemp("q") / "fp32.onnx")


@pytest.fixture(scope="module", params=["tensorrt", "cpu"])
def int8(request, fp32, tmp_path_factory, camvid_val):
    d = tmp_path_factory.mktemp("int8")
    out = quantize_int8(fp32, d / f"{request.param}.onnx", calibration_frames(limit=4),
                        target=request.param, cache_dir=d / "cache")
    return out, request.param


def _run(path, frames):
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return [sess.run(None, {"input": cv2.resize(f, SIZE[::-1])[None]})[0] for f in frames]


def test_qdq_placement_and_metadata(int8):
    path, target = int8
    model = onnx.load(str(path))
    ops = [n.op_type for n in model.graph.node]
    assert ops.count("QuantizeLinear") > 50 and ops.count("DequantizeLinear") > 50
    producers = {o: n for n in model.graph.node for o in n.output}
    argmax = next(n for n in model.graph.node if n.op_type == "ArgMax")
    resize = producers[argmax.input[0]]  # logits upsampling and ArgMax stay float
    classifier = producers[resize.input[0]]
    assert resize.op_type == "Resize" and classifier.op_type == "Conv"
    assert classifier.input[1] not in producers  # a float weight, not a DequantizeLinear
    assert model.graph.node[0].op_type not in ("QuantizeLinear", "DequantizeLinear")
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    act_zps = [inits[n.input[2]] for n in model.graph.node
               if n.op_type == "QuantizeLinear" and len(n.input) > 2 and n.input[2] in inits]
    if target == "tensorrt":  # TensorRT's explicit quantisation: int8, zero point 0
        assert all(z.dtype == np.int8 and not z.any() for z in act_zps)
    else:
        assert all(z.dtype == np.uint8 for z in act_zps)
    meta = ModelMeta.from_props({p.key: p.value for p in model.metadata_props})
    assert meta.precision == "int8" and meta.extra["calibration"]["target"] == target
    assert meta.classes == CAMVID.classes


def test_int8_agrees_with_fp32_on_real_frames(int8, fp32, real_frames):
    ref, out = _run(fp32, real_frames), _run(int8[0], real_frames)
    agree = np.mean([(a == b).mean() for a, b in zip(ref, out)])
    assert agree >= 0.9, f"int8 vs fp32 argmax agreement {agree:.3f}"


def test_bad_requests(fp32, int8, tmp_path):
    frames = calibration_frames(limit=1)
    with pytest.raises(ValueError, match="unknown target"):
        quantize_int8(fp32, tmp_path / "x.onnx", frames, target="tpu")
    with pytest.raises(ValueError, match="quantise the fp32 export"):
        quantize_int8(int8[0], tmp_path / "x.onnx", frames)
    with pytest.raises(FileNotFoundError, match="calibration list"):
        calibration_frames(tmp_path / "none.txt")
    bad = tmp_path / "list.txt"
    bad.write_text("train/images/nope.jpg\n")
    with pytest.raises(FileNotFoundError, match="missing"):
        calibration_frames(bad)


@pytest.fixture()
def user_frames(tmp_path, camvid_val):
    """A robot's folder: 20 frames in two subfolders, plus what calibration must skip."""
    d = tmp_path / "robot"
    for i, p in enumerate(camvid_val.images[:20]):
        sub = d / ("run1" if i < 10 else "run2")
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"{i:03d}{p.suffix}").symlink_to(p)
    (d / "notes.txt").write_text("not a frame")
    (d / ".thumbs").mkdir()
    (d / ".thumbs" / "x.jpg").symlink_to(camvid_val.images[0])
    return d


def test_user_folder_frames_are_found_and_spread(user_frames):
    found = find_frames(user_frames, 5)
    names = [p.relative_to(user_frames).as_posix() for p in found]
    assert names == ["run1/000.jpg", "run1/005.jpg", "run2/010.jpg", "run2/014.jpg",
                     "run2/019.jpg"]
    assert len(find_frames(user_frames, 100)) == 20  # hidden folder and .txt left out
    assert spread(list(range(31)), 32) == list(range(31))


def test_camvid_layout_still_calibrates_on_the_shipped_list(camvid_val):
    assert find_frames(camvid_val.root, 4) == spread(calibration_frames(), 4)
    assert find_frames(None, 4) == find_frames(camvid_val.root, 4)  # $LGCNET_CAMVID
    assert all(p.parent.name == "images" and p.parent.parent.name == "train"
               for p in find_frames(camvid_val.root))


def test_calibration_input_errors_say_what_to_give(user_frames, tmp_path, monkeypatch):
    few = tmp_path / "few"
    few.mkdir()
    for p in sorted(user_frames.rglob("*.jpg"))[:MIN_FRAMES - 1]:
        (few / p.name).symlink_to(p)
    with pytest.raises(CalibrationError, match=rf"15 image\(s\).*at least {MIN_FRAMES}.*ffmpeg"):
        find_frames(few)
    with pytest.raises(CalibrationError, match="not a folder"):
        find_frames(tmp_path / "none")
    with pytest.raises(CalibrationError, match=">= 1"):
        find_frames(user_frames, 0)
    monkeypatch.delenv("LGCNET_CAMVID", raising=False)
    with pytest.raises(CalibrationError, match=r"--calib DIR.*LGCNET_CAMVID is not set"):
        find_frames(None)
    frames = find_frames(user_frames)
    check_resolution(frames, (360, 480))
    check_resolution(frames, (720, 960))  # upscaled 2x at most: still camera frames
    with pytest.raises(CalibrationError, match=r"360x480, under half the model's 769x1537.*"
                                               r"--imgsz 360x480"):
        check_resolution(frames, (769, 1537))
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image")
    with pytest.raises(CalibrationError, match=r"broken\.png.*remove it"):
        check_resolution([*frames, broken], (360, 480))


def test_calibration_cache_is_keyed_on_the_frames(int8, user_frames):
    path, target = int8
    cache = ModelMeta.from_props({p.key: p.value for p in onnx.load(str(path)).metadata_props}
                                 ).extra["calibration"]["cache"]
    frames = calibration_frames(limit=4)
    assert frames_digest(frames) in cache and target in cache
    other = find_frames(user_frames, 4)  # four other frames: another calibration
    assert frames_digest(other) != frames_digest(frames)
    assert frames_digest(other) == frames_digest(list(other))


@pytest.fixture()
def fake_cpuinfo(monkeypatch, tmp_path):
    """Point the host probe at a /proc/cpuinfo of the test's making (its read is cached)."""
    def write(text: str) -> None:
        (tmp_path / "cpuinfo").write_text(text)
        host._cpuinfo.cache_clear()

    monkeypatch.setattr(host, "CPUINFO", tmp_path / "cpuinfo")
    yield write
    host._cpuinfo.cache_clear()


def test_cpu_int8_instructions_and_cores_from_cpuinfo(fake_cpuinfo):
    x86 = "".join(f"processor\t: {i}\nmodel name\t: Xeon\nphysical id\t: {i // 4}\n"
                  f"core id\t: {i % 4 // 2}\nflags\t\t: fpu avx2 avx512_vnni\n\n"
                  for i in range(8))  # 2 sockets x 2 cores x 2 hyper-threads
    fake_cpuinfo(x86)
    assert host.int8_instructions() == ["AVX512-VNNI"] and host.physical_cores() == 4
    assert host.cpu_label().startswith("Xeon x")
    fake_cpuinfo("processor\t: 0\nFeatures\t: fp asimd asimddp i8mm\n")
    assert host.int8_instructions() == ["Arm dotprod", "Arm i8mm"]
    fake_cpuinfo("processor\t: 0\nmodel name\t: AMD EPYC\nflags\t: fpu avx2 fma\n")
    assert host.int8_instructions() == []


@pytest.mark.parametrize("flags, gpu, target, says", [
    ([], False, "cpu", "INT8 will not be faster than fp32 here"),
    (["AVX-VNNI"], False, "cpu", None),
    (None, False, "cpu", None),  # no /proc/cpuinfo: cannot tell, says nothing
    (["AVX-VNNI"], False, "tensorrt", "ONNX Runtime on this CPU runs it slower"),
    ([], True, "tensorrt", None),
])
def test_quantize_says_when_int8_will_not_pay_here(monkeypatch, flags, gpu, target, says):
    monkeypatch.setattr(quantize_cmd, "int8_instructions", lambda: flags)
    monkeypatch.setattr(quantize_cmd, "tensorrt_gpu", lambda: gpu)
    assert quantize_cmd.default_target() == ("tensorrt" if gpu else "cpu")
    note = quantize_cmd.speed_note(target)
    assert note == says if says is None else (says in note and "\n" not in note)


def test_cli_quantize_calibrates_on_a_users_folder(fp32, user_frames, tmp_path, monkeypatch,
                                                  capsys):
    monkeypatch.setenv("LGCNET_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(quantize_cmd, "tensorrt_gpu", lambda: False)
    out = tmp_path / "m.int8.onnx"
    assert main(["quantize", str(fp32), "-o", str(out), "--calib", str(user_frames),
                 "--calib-frames", "16"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("target: cpu") and "16 calibration frames" in text
    assert re.search(r"speed on this CPU .*: fp32 [\d.]+ ms, int8 [\d.]+ ms: (use the "
                     r"(fp32|int8) model on this machine|no real difference)", text), text
    meta = ModelMeta.from_props({p.key: p.value for p in onnx.load(str(out)).metadata_props})
    assert meta.precision == "int8" and meta.extra["calibration"]["target"] == "cpu"
    assert meta.extra["calibration"]["frames"] == 16
    (tmp_path / "empty").mkdir()
    assert main(["quantize", str(fp32), "-o", str(out), "--calib", str(tmp_path / "empty")]) == 3
    assert "calibration needs at least" in capsys.readouterr().err
