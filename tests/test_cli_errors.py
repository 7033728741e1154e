"""A user's mistake gets one line naming the file and the problem and a distinct exit code,
never a traceback; --debug shows it; Ctrl-C exits 130. Installed-package facts: shipped models
by short name, CamVid from --data/$LGCNET_CAMVID, the calibration list as package data."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import onnx
import pytest
from conftest import ctrl_c_reaches_python
from onnx import TensorProto, helper

from lgcnet_deploy import Segmenter
from lgcnet_deploy.cli import (
    EXIT_INTERRUPTED,
    EXIT_MISSING_DEPENDENCY,
    EXIT_RUNTIME,
    EXIT_USER_INPUT,
    exit_code,
    one_line,
)
from lgcnet_deploy.core.data import CamVid, DatasetNotFoundError, require_camvid
from lgcnet_deploy.core.errors import DamagedFileError, LgcnetError
from lgcnet_deploy.core.formats import MissingExtraError
from lgcnet_deploy.export.int8 import DEFAULT_LIST
from lgcnet_deploy.model.shipped import SHIPPED_MODELS, resolve_model

LGCNET = str(Path(sys.executable).parent / "lgcnet")


def lgcnet(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([LGCNET, *args], capture_output=True, text=True, timeout=300, **kw)


def assert_one_line_error(proc: subprocess.CompletedProcess, code: int, *needles: str) -> None:
    assert proc.returncode == code, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    for needle in needles:
        assert needle in lines[0]


def onnx_with_props(path: Path, props: dict[str, str]) -> Path:
    """A tiny valid ONNX (Identity) carrying the given metadata_props."""
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 4, 4])
    y = helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 3, 4, 4])
    graph = helper.make_graph([helper.make_node("Identity", ["input"], ["output"])], "g", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    helper.set_model_props(model, props)
    onnx.save(model, str(path))
    return path


def test_missing_and_corrupt_files_are_one_line_errors(tmp_path):
    assert_one_line_error(lgcnet("info", str(tmp_path / "none.onnx")), EXIT_USER_INPUT,
                          "none.onnx", "not found")
    corrupt = tmp_path / "cut.onnx"
    corrupt.write_bytes(b"\x08\x07garbage")
    assert_one_line_error(lgcnet("info", str(corrupt)), EXIT_USER_INPUT, "cut.onnx",
                          "damaged or truncated ONNX model", "re-export it")
    assert_one_line_error(lgcnet("info", str(tmp_path / "model.tflite")), EXIT_USER_INPUT)


def test_metadata_of_the_wrong_type_names_file_and_field(tmp_path):
    bad = onnx_with_props(tmp_path / "bad.onnx", {
        "lgcnet.classes": '"road"', "lgcnet.palette_rgb": "[[0, 0, 0]]"})
    assert_one_line_error(lgcnet("info", str(bad)), EXIT_USER_INPUT, "bad.onnx", "'classes'")
    not_json = onnx_with_props(tmp_path / "nj.onnx", {"lgcnet.classes": "[road"})
    assert_one_line_error(lgcnet("info", str(not_json)), EXIT_USER_INPUT, "nj.onnx",
                          "not JSON")


def test_debug_shows_the_traceback_and_keeps_the_exit_code(tmp_path):
    proc = lgcnet("info", str(tmp_path / "cut.onnx"), "--debug")
    assert proc.returncode == EXIT_USER_INPUT and "Traceback" in proc.stderr


def test_a_model_name_typo_lists_the_shipped_models_and_the_closest(capsys):
    from lgcnet_deploy.cli import main

    assert main(["info", "lgcnet-camvd"]) == EXIT_USER_INPUT
    line = capsys.readouterr().err.strip()
    assert "did you mean 'lgcnet-camvid'?" in line and all(n in line for n in SHIPPED_MODELS)
    with pytest.raises(FileNotFoundError, match="did you mean 'lgcnet-camvid'"):
        Segmenter("lgcnet-camvd")


def test_every_error_class_of_the_sdk_derives_from_lgcnet_error():
    """Each exception class the SDK defines is an LgcnetError with its exit code."""
    import ast

    root = Path(__file__).resolve().parent.parent / "lgcnet_deploy"
    names = {(path, node.name) for path in root.rglob("*.py")
             for node in ast.walk(ast.parse(path.read_text()))
             if isinstance(node, ast.ClassDef) and node.name.endswith("Error")}
    assert len(names) > 15
    for path, name in names:
        module = ".".join(path.relative_to(root.parent).with_suffix("").parts)
        try:
            cls = getattr(__import__(module, fromlist=[name]), name)
        except ImportError:  # a module of an extra that is not installed (rclpy, tensorrt)
            continue
        assert issubclass(cls, LgcnetError), f"{module}.{name}"


def test_exit_codes_tell_kinds_of_failure_apart():
    assert exit_code(KeyboardInterrupt()) == EXIT_INTERRUPTED == 130
    assert exit_code(MissingExtraError("x")) == EXIT_MISSING_DEPENDENCY
    assert exit_code(DamagedFileError("x")) == exit_code(FileNotFoundError()) == EXIT_USER_INPUT
    assert exit_code(RuntimeError("device lost")) == EXIT_RUNTIME
    assert len({EXIT_USER_INPUT, EXIT_MISSING_DEPENDENCY, EXIT_RUNTIME, EXIT_INTERRUPTED}) == 4
    missing = ModuleNotFoundError("No module named 'onnx'", name="onnx")
    assert one_line(missing) == ("this needs the Python package 'onnx': pip install "
                                 "'lgcnet-deploy[onnx]'")


# `lgcnet` that says on stdout when bench starts timing (its model prepared and loaded): the
# Ctrl-C then lands in the timing loop, as a user's would, however slowly the CLI started.
ANNOUNCED_BENCH = """
import sys
import lgcnet_deploy.measure.bench as bench
time_calls = bench.time_calls
def announced(*args, **kw):
    print("timing", flush=True)
    return time_calls(*args, **kw)
bench.time_calls = announced
from lgcnet_deploy.cli import main
sys.exit(main())
"""


@pytest.mark.skipif(os.name != "posix", reason="SIGINT delivery")
def test_ctrl_c_exits_130_without_a_traceback():
    proc = subprocess.Popen([sys.executable, "-c", ANNOUNCED_BENCH, "bench", "handwritten",
                             "--imgsz", "64x64", "--iters", "1000000", "--warmup", "0"],
                            stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            preexec_fn=ctrl_c_reaches_python)
    assert proc.stdout.readline() == "timing\n"  # waits for the loop (EOF: the run ended)
    for _ in range(40):  # again until it stops: C code (onnxsim, ORT) can swallow one Ctrl-C
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=5)
            break
        except subprocess.TimeoutExpired:
            continue
    else:
        proc.kill()  # a hang guard: never leave a timing loop running after the test
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == EXIT_INTERRUPTED, err
    assert "Traceback" not in err and err.strip().endswith("interrupted")


def test_shipped_models_by_short_name(camvid_val):
    assert set(SHIPPED_MODELS) == {"lgcnet-camvid", "lgcnet-camvid-searched",
                                   "lgcnet-camvid-handwritten"}
    path = resolve_model("lgcnet-camvid")
    assert Path(path).is_file() and Path(path).suffix == ".pt"
    assert resolve_model("x.onnx") == "x.onnx"
    with Segmenter("lgcnet-camvid") as seg:
        assert seg.predict(camvid_val[0][0]).mask.shape == camvid_val[0][1].shape


def test_camvid_location_errors_say_how_to_point_at_it(tmp_path, monkeypatch):
    monkeypatch.delenv("LGCNET_CAMVID")  # the package knows no default location
    with pytest.raises(DatasetNotFoundError, match=r"not set: pass --data DIR.*LGCNET_CAMVID"):
        require_camvid()
    assert not CamVid.available()
    monkeypatch.setenv("LGCNET_CAMVID", str(tmp_path))
    with pytest.raises(DatasetNotFoundError, match=r"--data DIR.*LGCNET_CAMVID"):
        require_camvid()
    proc = lgcnet("eval", "lgcnet-camvid", "--limit", "1", env={**os.environ,
                                                                "LGCNET_CAMVID": str(tmp_path)})
    assert_one_line_error(proc, EXIT_USER_INPUT, "--data")


def test_calibration_list_ships_inside_the_package():
    import lgcnet_deploy

    package = Path(lgcnet_deploy.__file__).parent
    assert DEFAULT_LIST.is_relative_to(package) and DEFAULT_LIST.is_file()
