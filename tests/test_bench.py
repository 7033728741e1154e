import json

import pytest

from lgcnet_deploy.cli import main
from lgcnet_deploy.measure.bench import (
    PAPER,
    Stats,
    _import_lraspp,
    benchmark,
    paper_preset,
    peer_lraspp,
    save_json,
)


def test_stats():
    s = Stats.of([1.0, 2.0, 3.0, 4.0, 100.0])
    assert s.p50 == 3.0 and s.p50 <= s.p90 <= s.p99 <= 100.0
    assert s.mean == pytest.approx(22.0) and s.fps == pytest.approx(1000 / 22.0)


def test_benchmark_genotype_tiny(tmp_path, camvid_val):
    r = benchmark("default", input_size=(64, 96), warmup=1, iters=4, throughput_batches=(2,),
                  frame_size=(120, 160))
    assert r.input_size == (64, 96) and r.frame_size == (120, 160) and r.backend == "onnxruntime"
    for s in (r.network, r.end_to_end):
        assert len(s.samples) == 4 and 0 < s.p50 <= s.p90 <= s.p99
        assert s.fps == pytest.approx(1000 / s.mean)
    assert set(r.throughput_fps) == {2} and r.throughput_fps[2] > 0
    assert "cpu" in r.machine and "onnxruntime" in r.machine
    data = json.loads(save_json([r], tmp_path / "b.json").read_text())
    assert data["results"][0]["network"]["fps"] == pytest.approx(r.network.fps)


def test_paper_preset_falls_back_loudly_without_tensorrt():
    kw = paper_preset("default")
    assert kw["input_size"] == (769, 1537) and kw["batch"] == 1 and kw["dataset"] == "cityscapes"
    assert PAPER["precision"] == "fp16" and PAPER["fps_tensorrt"] == 205.6
    assert kw["engine"] is False and "NOT the paper's setting" in kw["warning"]


def test_cli_bench_prints_table_and_json(tmp_path, capsys, camvid_val):
    out = tmp_path / "bench.json"
    assert main(["bench", "default", "--imgsz", "64x96", "--iters", "3", "--warmup", "1",
                 "--json", str(out), "--plot", str(tmp_path / "plots"), "--sizes", "48x64",
                 "64x96"]) == 0
    text = capsys.readouterr().out
    assert "p99" in text and "LGCNet default" in text
    assert json.loads(out.read_text())["latency_vs_resolution_ms"]
    assert (tmp_path / "plots" / "latency_hist.png").is_file()
    assert (tmp_path / "plots" / "latency_vs_resolution.png").is_file()


def test_compare_needs_torchvision(tmp_path):
    try:
        _import_lraspp()  # also imports a CUDA torchvision wheel beside the CPU torch
    except ImportError:
        with pytest.raises(ImportError, match="torchvision"):
            peer_lraspp((64, 96), 11, tmp_path)
    else:
        assert peer_lraspp((64, 96), 11, tmp_path).is_file()


@pytest.fixture(scope="module")
def static_onnx(tmp_path_factory):
    from lgcnet_deploy.export.pipeline import ArtifactSpec, make_artifact

    out = tmp_path_factory.mktemp("bench_models") / "s.onnx"
    return make_artifact("default", out, ArtifactSpec(input_size=(64, 96))).path


@pytest.mark.parametrize("args, words", [
    (["--imgsz", "96x128"], ["64x96", "--imgsz", "re-export"]),
    (["--sizes", "64x96", "96x128"], ["--sizes", "re-export"]),
    (["--dataset", "cityscapes"], ["--dataset applies to genotypes"]),
    (["--batches", "2"], ["static batch of 1", "dynamic-batch"]),
    (["--iters", "0"], ["iters >= 1"]),
])
def test_bench_refuses_what_an_exported_model_cannot_honour(static_onnx, tmp_path, args, words):
    from test_cli import assert_one_line_error, lgcnet

    r = lgcnet("bench", static_onnx, "--iters", "2", "--warmup", "0", *args, cwd=tmp_path)
    assert_one_line_error(r, *words)
    assert not list(tmp_path.iterdir())


def test_bench_writes_only_where_asked(static_onnx, tmp_path):
    from test_cli import lgcnet

    r = lgcnet("bench", static_onnx, "--imgsz", "64x96", "--sizes", "64x96", "--iters", "2",
               "--warmup", "0", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "p99" in r.stdout and "64x96" in r.stdout and "latency vs input size" in r.stdout
    assert not list(tmp_path.iterdir())  # no runs/bench/bench.json without --json
    out = tmp_path / "b.json"
    assert lgcnet("bench", static_onnx, "--iters", "2", "--warmup", "0", "--json", out,
                  cwd=tmp_path).returncode == 0
    assert json.loads(out.read_text())["results"][0]["input_size"] == [64, 96]
    assert sorted(tmp_path.iterdir()) == [out]
