import itertools
import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import ctrl_c_reaches_python

from lgcnet_deploy.cli import EXIT_USER_INPUT, build_parser, main
from lgcnet_deploy.model.checkpoint import read_checkpoint
from lgcnet_deploy.model.genotype import Genotype
from lgcnet_deploy.model.shipped import shipped_file

COMMANDS = ["export", "predict", "eval", "info"]


@pytest.mark.parametrize("cmd", COMMANDS)
def test_help_is_useful(cmd, capsys):
    with pytest.raises(SystemExit) as e:
        main([cmd, "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "usage: lgcnet " + cmd in out and len(out) > 300


def test_all_commands_registered():
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    assert set(COMMANDS) <= set(sub.choices)


def test_export_info_eval_predict(tmp_path, capsys, camvid_val):
    onnx = tmp_path / "g.onnx"
    assert main(["export", "default", "-o", str(onnx), "--imgsz", "96x128"]) == 0
    assert "RANDOM weights" in capsys.readouterr().out
    assert main(["info", str(onnx), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["input_size"] == [96, 128] and info["output_kind"] == "argmax"
    report = tmp_path / "r.json"
    assert main(["eval", str(onnx), "--limit", "2", "--json", str(report)]) == 0
    assert "mIoU" in capsys.readouterr().out
    assert json.loads(report.read_text())["frames"] == 2
    frame = camvid_val.images[0]
    assert main(["predict", "--model", str(onnx), str(frame), "-o", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / f"{frame.stem}_overlay.png").is_file()
    assert (tmp_path / "out" / f"{frame.stem}_mask.png").is_file()


def test_errors_are_one_line(tmp_path, capsys):
    assert main(["info", str(tmp_path / "nope.onnx")]) == EXIT_USER_INPUT
    err = capsys.readouterr().err
    assert err.startswith("lgcnet info: error:") and "not found" in err


# The installed entry point, as users run it: exit code, one line on stderr, no traceback.
LGCNET = Path(sys.executable).with_name("lgcnet")


def lgcnet(*args, cwd=None, timeout=300) -> subprocess.CompletedProcess:
    # bytes, decoded here: text mode would turn a progress bar's "\r" into line breaks
    r = subprocess.run([str(LGCNET), *map(str, args)], capture_output=True, cwd=cwd,
                       timeout=timeout)
    r.stdout, r.stderr = r.stdout.decode(), r.stderr.decode()
    return r


def visible_lines(text: str) -> list[str]:
    """What a terminal shows: a progress bar redraws its line after each carriage return."""
    return [v for ln in text.split("\n") if (v := ln.rsplit("\r", 1)[-1]).strip()]


def assert_one_line_error(r: subprocess.CompletedProcess, *words: str) -> str:
    lines = visible_lines(r.stderr)
    assert r.returncode != 0, r.stdout
    assert "Traceback" not in r.stderr and len(lines) == 1, r.stderr
    for w in words:
        assert w in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def small_onnx(tmp_path_factory):
    from lgcnet_deploy.export.pipeline import ArtifactSpec, make_artifact

    d = tmp_path_factory.mktemp("cli_models")
    return make_artifact("default", d / "g.onnx", ArtifactSpec(input_size=(64, 96))).path


@pytest.fixture()
def image_folder(tmp_path, camvid_val):
    d = tmp_path / "frames"
    d.mkdir()
    for p in camvid_val.images[:2]:
        (d / p.name).symlink_to(p)
    (d / "broken.png").write_bytes(b"not an image")
    return d


def test_predict_folder_skips_counts_and_warns_about_bad_images(small_onnx, image_folder,
                                                                tmp_path):
    out = tmp_path / "out"
    r = lgcnet("predict", "--model", small_onnx, image_folder, "-o", out)
    assert r.returncode == 0, r.stderr
    assert "wrote 2 result(s)" in r.stdout and "skipped 1 unreadable" in r.stdout
    assert "warning: skipped" in r.stderr and "broken.png" in r.stderr
    assert "warning: a 360x480 frame (aspect 1.33) is stretched" in r.stderr  # a 64x96 model
    assert len(list(out.glob("*_overlay.png"))) == 2 and len(list(out.glob("*_mask.png"))) == 2
    assert not [p for p in out.iterdir() if "partial" in p.name]
    strict = lgcnet("predict", "--model", small_onnx, image_folder, "-o", tmp_path / "s",
                    "--strict", "--resize", "stretch")
    assert_one_line_error(strict, "broken.png", "--strict")


def test_predict_never_reads_its_outputs_as_inputs(small_onnx, image_folder):
    before = sorted(image_folder.iterdir())
    assert_one_line_error(lgcnet("predict", "--model", small_onnx, image_folder, "-o",
                                 image_folder), "source folder", "subfolder")
    assert sorted(image_folder.iterdir()) == before
    sub = image_folder / "pred"
    for _ in range(2):  # a second run sees the same 3 inputs, not the first run's outputs
        r = lgcnet("predict", "--model", small_onnx, image_folder, "-o", sub)
        assert r.returncode == 0 and "wrote 2 result(s)" in r.stdout
    assert len(list(sub.iterdir())) == 4


@pytest.mark.parametrize("source, words", [
    ("97", ["camera 97"]),
    ("-1", ["out of range"]),
    ("missing.mp4", ["not found"]),
    ("dead-stream", ["cannot read stream", "127.0.0.1"]),
])
def test_predict_bad_sources_are_one_line_and_write_nothing(small_onnx, tmp_path, source,
                                                            words):
    from loopback_stream import closed_port_url

    source = closed_port_url() if source == "dead-stream" else source
    out = tmp_path / "out"
    assert_one_line_error(lgcnet("predict", "--model", small_onnx, source, "-o", out,
                                 "--timeout", "2", cwd=tmp_path), *words)
    assert not out.exists()


def test_predict_bad_model_creates_no_output_folder(tmp_path, camvid_val):
    out = tmp_path / "out"
    assert_one_line_error(lgcnet("predict", "--model", tmp_path / "nope.onnx",
                                 camvid_val.images[0], "-o", out), "not found")
    assert not out.exists()
    (tmp_path / "file").write_text("x")
    assert_one_line_error(lgcnet("predict", camvid_val.images[0], "-o", tmp_path / "file"),
                          "existing file")


def test_predict_stream_that_drops_ends_cleanly(small_onnx, tmp_path):
    from loopback_stream import mjpeg_stream

    with mjpeg_stream(frames=12) as url:
        r = lgcnet("predict", "--model", small_onnx, url, "-o", tmp_path / "out")
    assert r.returncode == 0, r.stderr
    assert "ended after 12 frames" in r.stdout and "Traceback" not in r.stderr
    video = tmp_path / "out" / "stream_cam_overlay.mp4"
    assert video.is_file() and not list((tmp_path / "out").glob("*partial*"))
    assert "frame" in r.stderr  # the progress bar: frame count and rate


def test_changed_onnx_is_refused_until_no_verify(small_onnx, tmp_path, camvid_val):
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(small_onnx))
    init = model.graph.initializer[0]
    w = numpy_helper.to_array(init).copy()
    w.flat[0] += 1.0
    init.CopyFrom(numpy_helper.from_array(w, init.name))
    changed = tmp_path / "changed.onnx"
    onnx.save(model, str(changed))
    frame = camvid_val.images[0]
    assert_one_line_error(lgcnet("predict", "--model", changed, frame, "-o", tmp_path / "o"),
                          "changed.onnx", "weights differ", "--no-verify")
    assert not (tmp_path / "o").exists()
    r = lgcnet("predict", "--model", changed, frame, "-o", tmp_path / "o", "--no-verify")
    assert r.returncode == 0, r.stderr
    assert "MISMATCH" in lgcnet("info", changed).stdout


def test_info_prints_for_people_and_json_for_machines(small_onnx):
    r = lgcnet("info", small_onnx)
    assert r.returncode == 0, r.stderr
    rows = [ln for ln in r.stdout.splitlines() if ln and not ln.startswith(" ")]
    labels = [ln.split()[0] for ln in rows]
    assert labels == ["model", "classes", "input", "output", "precision", "genotype",
                      "weights", "provenance"]
    column = {len(ln) - len(ln[len(lab):].lstrip()) for ln, lab in zip(rows, labels)}
    assert len(column) == 1  # values aligned in one column
    assert "11 (camvid): sky, building" in r.stdout and "verified" in r.stdout
    assert "64x96" in r.stdout and "class map" in r.stdout
    data = json.loads(lgcnet("info", small_onnx, "--json").stdout)
    assert data["weights_sha256"]["ok"] is True and data["input_size"] == [64, 96]


def test_info_names_the_genotype_and_how_decided_its_search_was(capsys):
    assert main(["info", "lgcnet-camvid-searched"]) == 0
    lines = capsys.readouterr().out.splitlines()
    at = next(i for i, ln in enumerate(lines) if ln.startswith("genotype"))
    wrapped = itertools.takewhile(lambda ln: ln.startswith(" "), lines[at + 1:])
    row = " ".join(ln.strip() for ln in [lines[at], *wrapped])
    assert ("217a4c530fff (searched-camvid-decided; search mean top-1 0.99; "
            "seed agreement 0.20, chance 0.14)") in row
    assert main(["info", "lgcnet-camvid"]) == 0
    genotype = Genotype.from_dict(read_checkpoint(shipped_file("lgcnet-camvid"))["genotype"])
    assert f"{genotype.hash} ({genotype.name})" in capsys.readouterr().out


def test_export_refuses_impossible_batch(tmp_path):
    out = tmp_path / "b0.onnx"
    assert_one_line_error(lgcnet("export", "default", "-o", out, "--batch", "0"), "batch")
    assert not out.exists() and not list(tmp_path.iterdir())


def test_predict_runs_never_overwrite_each_other(small_onnx, tmp_path, camvid_val, capsys,
                                                 monkeypatch):
    monkeypatch.chdir(tmp_path)
    frame = str(camvid_val.images[0])
    for _ in range(2):
        assert main(["predict", "--model", str(small_onnx), frame, "--no-mask"]) == 0
    assert main(["predict", "--model", str(small_onnx), frame, "--no-mask", "--exist-ok"]) == 0
    out = capsys.readouterr().out
    assert "to runs/predict;" in out and "to runs/predict2;" in out and "images/s" in out
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["predict", "predict2"]


def test_image_overlays_carry_the_legend(small_onnx, tmp_path, camvid_val):
    import cv2
    import numpy as np

    from lgcnet_deploy import Segmenter
    from lgcnet_deploy.core.data import read_image

    frame_path = camvid_val.images[0]
    assert main(["predict", "--model", str(small_onnx), str(frame_path), "-o",
                 str(tmp_path)]) == 0
    written = cv2.imread(str(tmp_path / f"{frame_path.stem}_overlay.png"))
    with Segmenter(small_onnx) as seg:
        plain = seg.predict(read_image(frame_path)).overlay(0.5)
    differs = np.argwhere((written != plain).any(2))
    (y0, x0), (y1, x1) = differs.min(0), differs.max(0)  # the legend: one box in a corner
    assert len(differs) and (y0 == 0 or y1 == plain.shape[0] - 1)
    assert (x0 == 0 or x1 == plain.shape[1] - 1)


def _interrupt_when(proc: subprocess.Popen, ready, timeout: float = 60) -> None:
    t0 = time.monotonic()
    while not ready():
        assert proc.poll() is None and time.monotonic() - t0 < timeout, "run ended too soon"
        time.sleep(0.05)
    for _ in range(4):  # again until it stops: C code (ORT, OpenCV) can swallow one Ctrl-C
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)  # a clean stop closes its recording first
            return
        except subprocess.TimeoutExpired:
            continue
    proc.kill()  # a hang guard; the assertions that follow then fail
    proc.wait(timeout=30)


def test_interrupted_video_leaves_no_file_under_its_final_name(small_onnx, tmp_path):
    import numpy as np

    from lgcnet_deploy.runtime.drawing import Mp4Writer

    video = tmp_path / "long.mp4"
    rng = np.random.default_rng(0)
    with Mp4Writer(video, 30) as w:
        for _ in range(1500):
            w.write(rng.integers(0, 256, (96, 128, 3), dtype=np.uint8))
    out = tmp_path / "out"
    proc = subprocess.Popen([str(LGCNET), "predict", "--model", str(small_onnx), str(video),
                             "-o", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=ctrl_c_reaches_python)
    _interrupt_when(proc, lambda: (out / "long_overlay.partial.mp4").exists())
    assert proc.returncode != 0
    assert not (out / "long_overlay.mp4").exists()
    assert not list(out.glob("*partial*"))


def test_interrupted_live_stream_keeps_its_recording(small_onnx, tmp_path):
    from loopback_stream import mjpeg_stream

    out = tmp_path / "out"
    with mjpeg_stream(frames=100_000, interval_s=0.02) as url:
        proc = subprocess.Popen([str(LGCNET), "predict", "--model", str(small_onnx), url,
                                 "-o", str(out)], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, preexec_fn=ctrl_c_reaches_python)
        lines = []  # read as they come: it says "recording" once its first frame is in
        reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
        reader.start()
        _interrupt_when(proc, lambda: any(b"recording" in line for line in lines))
    reader.join(timeout=30)
    stdout = b"".join(lines).decode()
    assert proc.returncode == 0, proc.stderr.read().decode()
    assert "Ctrl-C stops it and keeps the recording" in stdout
    assert "stopped by Ctrl-C after" in stdout
    assert (out / "stream_cam_overlay.mp4").is_file()


def test_log_level_holds_the_libraries_to_the_sdks_level(capsys):
    """`--log-level` sets the SDK's logger, and ONNX Runtime's and FFmpeg's own output follow
    it: their notices only from "info" on."""
    import logging
    import os

    from lgcnet_deploy.cli import main
    from lgcnet_deploy.core.logs import LOGGER, ort_severity

    try:
        assert main(["info", "lgcnet-camvid", "--log-level", "info"]) == 0
        assert LOGGER.level == logging.INFO and ort_severity() == 1
        assert os.environ["OPENCV_FFMPEG_LOGLEVEL"] == "32"
        assert main(["--log-level=warning", "info", "lgcnet-camvid"]) == 0
        assert ort_severity() == 3 and os.environ["OPENCV_FFMPEG_LOGLEVEL"] == "-8"
        capsys.readouterr()
        assert main(["info", "lgcnet-camvid", "--log-level", "loud"]) == 3
        assert "log level 'loud': choose one of debug, info, warning, error" in \
            capsys.readouterr().err
    finally:
        LOGGER.setLevel(logging.NOTSET)


def test_info_says_which_distillation_taught_a_model():
    from lgcnet_deploy.cli.commands.info import _lineage

    teacher = {"targets": "runs/t", "provenance": {"model": "effnet_lite2_seg", "epochs_run": 80,
                                                    "data": "CamVid fold A train"}}
    run = {"epochs_run": 3, "data": "CamVid fold A train", "teacher": teacher,
           "recipe": {"distill_kind": "channel"}}
    assert "distilled channel-wise from the cached logits of effnet_lite2_seg, 80 epochs" in \
        _lineage(run)
    del run["recipe"]["distill_kind"]  # recorded before the kind was a choice: pixel-wise
    assert "distilled pixel-wise from" in _lineage(run)
    # a teacher's record without its model: the targets' manifest names it
    teacher.update(model="effnet_lite1_seg", provenance={})
    assert "distilled pixel-wise from the cached logits of effnet_lite1_seg" in _lineage(run)
