import json
import sys

import pytest

from lgcnet_deploy.cli import EXIT_MISSING_DEPENDENCY, main
from lgcnet_deploy.cli.commands.bench import _table
from lgcnet_deploy.core.host import physical_cores
from lgcnet_deploy.core.timing import MIN_CALLS_P99
from lgcnet_deploy.measure.bench import (
    PAPER,
    BenchResult,
    Stats,
    bench_source,
    benchmark,
    import_lraspp,
    paper_preset,
    peer_lraspp,
    save_json,
)
from lgcnet_deploy.model.shipped import shipped_file


def test_stats():
    s = Stats.of([1.0, 2.0, 3.0, 4.0, 100.0])
    assert s.p50 == 3.0 and s.p50 <= s.p90 <= s.p99 <= 100.0
    assert s.mean == pytest.approx(22.0) and s.fps == pytest.approx(1000 / 22.0)


def test_benchmark_genotype_tiny(tmp_path, camvid_val):
    r = benchmark("default", input_size=(64, 96), warmup=1, iters=4, throughput_batches=(2,),
                  frame_size=(128, 192))  # the input's aspect: no stretch
    assert r.input_size == (64, 96) and r.frame_size == (128, 192) and r.backend == "onnxruntime"
    for s in (r.network, r.end_to_end):
        assert len(s.samples) == 4 and 0 < s.p50 <= s.p90 <= s.p99
        assert s.fps == pytest.approx(1000 / s.mean)
    assert set(r.throughput_fps) == {2} and r.throughput_fps[2] > 0
    assert "cpu" in r.machine and "onnxruntime" in r.machine
    assert r.machine["providers"] == ["CPUExecutionProvider"] and r.threads == physical_cores()
    data = json.loads(save_json([r], tmp_path / "b.json").read_text())
    assert data["results"][0]["network"]["fps"] == pytest.approx(r.network.fps)


def _result(calls: int, threads: int | None = 2, providers=("CPUExecutionProvider",)):
    """A BenchResult from synthetic timings: 10 ms calls and one 50 ms outlier."""
    samples = [10.0] * (calls - 1) + [50.0]
    return BenchResult("LGCNet x", "onnxruntime", "cpu", "int8", 2, (360, 480),
                       Stats.of(samples), Stats.of(samples), (720, 1280), {4: 321.0},
                       {"cpu": "Some CPU x8", "onnxruntime": "1.0", "providers": providers},
                       threads)


def test_table_has_units_threads_providers_and_says_when_p99_is_missing():
    short = _table([_result(30)], None)
    head, _, row, *notes = short.splitlines()
    for col in ("providers", "threads", "input px", "calls", "mean ms", "p50 ms", "p90 ms",
                "p99 ms", "FPS", "e2e ms", "e2e FPS", "frame px"):
        assert col in head
    cells = row.split()
    assert cells[:7] == ["LGCNet", "x", "onnxruntime", "CPU", "int8", "2", "360x480"]
    assert cells[7:9] == ["2", "30"] and cells[12] == "-"  # batch, calls; no p99 from 30
    fps = 2 * 1000 / Stats.of([10.0] * 29 + [50.0]).mean  # batch 2: frames, not calls
    assert float(cells[13]) == pytest.approx(fps, abs=0.05)
    assert any("p99: needs >= 100 calls, this run timed 30" in n for n in notes)
    assert any("batch 4: 321.0 FPS" in n for n in notes)
    assert any("Some CPU x8" in n and "threads" in n for n in notes)
    full = _table([_result(MIN_CALLS_P99)], None)
    assert float(full.splitlines()[2].split()[12]) > 10 and "needs >=" not in full
    gpu = _table([_result(100, None, ("CUDAExecutionProvider", "CPUExecutionProvider"))], None)
    assert gpu.splitlines()[2].split()[3:6] == ["CUDA,CPU", "int8", "-"]


def test_json_reports_calls_frames_per_second_and_no_p99_from_few_calls():
    short, full = _result(30).to_json(), _result(MIN_CALLS_P99).to_json()
    assert short["network"]["calls"] == 30 and short["network"]["p99"] is None
    assert full["network"]["p99"] == pytest.approx(Stats.of([10.0] * 99 + [50.0]).p99)
    assert full["network"]["fps"] == pytest.approx(2 * full["end_to_end"]["fps"])  # batch 2
    assert full["threads"] == 2


def test_compare_checks_its_extras_before_timing_anything(monkeypatch, capsys):
    import lgcnet_deploy.measure.bench as bench

    monkeypatch.setitem(sys.modules, "torchvision", None)  # import fails as if not installed
    monkeypatch.setattr(bench, "benchmark", lambda *a, **k: pytest.fail("timed before check"))
    assert main(["bench", "default", "--compare"]) == EXIT_MISSING_DEPENDENCY
    err = capsys.readouterr().err
    assert "torch and torchvision" in err and "pip install '.[export,compare]'" in err
    assert len(err.strip().splitlines()) == 1


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
        import_lraspp()  # also imports a CUDA torchvision wheel beside the CPU torch
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
    assert "\r" not in r.stderr and "it/s" not in r.stderr  # no progress bars in a log
    assert not list(tmp_path.iterdir())  # no runs/bench/bench.json without --json
    out = tmp_path / "b.json"
    assert lgcnet("bench", static_onnx, "--iters", "2", "--warmup", "0", "--json", out,
                  cwd=tmp_path).returncode == 0
    assert json.loads(out.read_text())["results"][0]["input_size"] == [64, 96]
    assert sorted(tmp_path.iterdir()) == [out]


def test_a_shipped_model_is_timed_from_its_onnx_unless_options_need_a_reexport():
    onnx, pt = shipped_file("lgcnet-camvid", ".onnx"), shipped_file("lgcnet-camvid")
    assert bench_source("lgcnet-camvid") == onnx
    assert bench_source("lgcnet-camvid", [("--imgsz", (360, 480)), ("--sizes", None)],
                        [("--batch", 1)]) == onnx  # its own size and batch
    assert bench_source("lgcnet-camvid", [("--imgsz", (64, 96))]) == pt
    assert bench_source("lgcnet-camvid", batches=[("--batches", 2)]) == pt  # static batch 1
    assert bench_source("x.onnx", [("--imgsz", (64, 96))]) == "x.onnx"  # not a short name


def test_bench_of_a_shipped_model_runs_without_torch(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "torch", None)  # import fails as if not installed
    assert main(["bench", "lgcnet-camvid", "--iters", "1", "--warmup", "0"]) == 0
    row = capsys.readouterr().out.splitlines()[2].split()
    assert row[:2] == ["LGCNet", "lgcnet-camvid"] and row[6] == "360x480"
    for args, asked in ((["--imgsz", "769x1537"], "--imgsz 769x1537"),
                        (["--batches", "2"], "--batches 2"),
                        (["--sizes", "360x480", "512x1024"], "--sizes 512x1024")):
        assert main(["bench", "lgcnet-camvid", *args]) == EXIT_MISSING_DEPENDENCY
        err = capsys.readouterr().err
        assert f"{asked} re-exports the checkpoint" in err and "pip install '.[export]'" in err
        assert len(err.strip().splitlines()) == 1


def test_bench_without_a_model_times_the_shipped_one_and_reports_the_spread(capsys):
    assert main(["bench", "--iters", "5", "--warmup", "1"]) == 0
    out = capsys.readouterr().out
    assert "LGCNet lgcnet-camvid" in out and "onnxruntime" in out
    assert "spread, LGCNet lgcnet-camvid network: " in out and "5 rounds" in out


def test_spread_flags_rounds_that_differ():
    from lgcnet_deploy.core.timing import Stats

    steady = Stats.of([10.0, 10.2, 9.9, 10.1, 10.0] * 4)
    assert len(steady.rounds()) == 5
    assert "NOISY" not in steady.spread()
    busy = Stats.of([10.0] * 10 + [25.0] * 10)
    assert "NOISY: rounds differ 2.5x" in busy.spread()
    assert Stats.of([5.0]).spread() is None
