import json

import pytest

from lgcnet_deploy.cli import EXIT_USER_INPUT, build_parser, main

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
