"""The GPU sprint (experiments.gpu_sprint): its plan (every config it names loads, the stages
in order, the payload within its budget), the time boxes of its stage runner, a dry search,
and (gpu) the CUDA runner's modes. The full CPU dry run of every stage, trainings included,
runs on demand before a GPU run: LGCNET_SPRINT_DRY_RUN=1 pytest tests/test_gpu_sprint.py."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from experiments.gpu_sprint import runner
from experiments.gpu_sprint.__main__ import main
from experiments.gpu_sprint.config import STAGES, SprintConfig
from experiments.gpu_sprint.context import StageContext, StageSkipped
from experiments.gpu_sprint.runner import Summary, run_stage
from lgcnet_deploy.model.checkpoint import read_checkpoint
from lgcnet_research.latency.lut import LatencyTable

ROOT = Path(__file__).resolve().parent.parent
HAS_TORCHVISION = importlib.util.find_spec("torchvision") is not None
# a plan of the campaign's queue that stays whatever its records: the adopted recipe and its
# rare-crop screen, seed 0, in its order (the default, `next`, moves on as records come in)
ADOPTED, SCREEN = "trunk+w16+exposure+lovasz", "trunk+w16+exposure+lovasz+rare"
PAIR = ["--train-arms", ADOPTED, SCREEN]
PAIR_RUNS = ["fold_a_trunk_w16_exposure_lovasz", "fold_b_trunk_w16_exposure_lovasz",
                "fold_a_trunk_w16_exposure_lovasz_rare", "fold_b_trunk_w16_exposure_lovasz_rare"]


def _sprint_configs() -> list[str]:
    names = ("peer_gpu.json", "gpu_sprint.json") if HAS_TORCHVISION else ("gpu_sprint.json",)
    return [str(ROOT / "configs" / "train" / f) for f in names]


def test_plan_checks_every_config_and_the_payload_without_running_a_stage(
        tmp_path, camvid_val, monkeypatch):
    from experiments.gpu_sprint import plan

    monkeypatch.chdir(ROOT)  # the configs name the shipped weights relative to the root
    monkeypatch.setattr(plan, "CARRY", tmp_path / "no_carry")
    out = tmp_path / "out"
    base = ["--out", str(out), "--plan", "--stages", *STAGES,
            "--sanity-config", "experiments/configs/sanity/camvid_gpu.json"]
    assert main([*base, *PAIR, "--train-configs", *_sprint_configs()]) == 0
    assert [f.name for f in out.iterdir()] == ["summary.json"]  # nothing ran
    summary = json.loads((out / "summary.json").read_text())
    head, stages = summary["sprint"], summary["stages"]
    assert head["plan"] and head["problems"] == [] and head["payload"]["carry"] is None
    assert head["groups"] == [["env"], ["tests"], ["speed"], ["lut"], ["train", "search"]]
    assert head["boxes_s"] == 30 + 90 + 150 + 90 + 475 and not head["fits_budget"]
    assert {k: v["status"] for k, v in stages.items()} == dict.fromkeys(STAGES, "planned")
    peer = ["peer_gpu"] if HAS_TORCHVISION else []
    runs = stages["train"]["runs"]
    assert list(runs) == [*PAIR_RUNS, *peer, "gpu_sprint", "sanity-searched",
                          *(f"sanity-random-{i}" for i in range(3))]
    assert [(runs[n]["arm"], runs[n]["fold"], runs[n]["seed"]) for n in PAIR_RUNS] == [
        (ADOPTED, "A", 0), (ADOPTED, "B", 0), (SCREEN, "A", 0), (SCREEN, "B", 0)]
    assert stages["search"]["seeds"] == [0, 1] and stages["search"]["config"].endswith(
        "camvid_gpu_soft.json")
    # the pair alone fits its budget; a plan naming targets not carried or one run folder
    # twice, ImageNet weights missing and a payload over its budget are problems, named
    assert main(["--out", str(out), "--plan", *PAIR]) == 0
    assert json.loads((out / "summary.json").read_text())["sprint"]["fits_budget"]
    queue = tmp_path / "plan.json"
    queue.write_text(json.dumps({"runs": [
        {"config": "configs/train/fold_a_trunk.json", "arm": "trunk+kd", "out": "runs/x",
         "teacher_targets": str(tmp_path / "targets")},
        {"config": "configs/train/fold_b_trunk.json", "arm": "trunk", "out": "runs/x"}]}))
    monkeypatch.setattr(plan, "CARRY", tmp_path)
    monkeypatch.setattr(plan, "travel_bytes", lambda repo, carried: {
        "tree": 31 * 2**20, ".carry/camvid": 35 * 2**20})
    monkeypatch.setattr(runner, "imagenet_for_sprint", lambda: "none (run make gpu-carry)")
    assert main([*base, "--train-plan", str(queue), "--train-arms", "--train-seeds"]) == 1
    problems = json.loads((out / "summary.json").read_text())["sprint"]["problems"]
    assert any(f"teacher_targets {tmp_path / 'targets'} is missing" in p for p in problems)
    assert any("two of its steps write one run folder" in p for p in problems)
    assert any(p.startswith("train run x starts from ImageNet weights: none") for p in problems)
    assert any(p.startswith("payload: ") and "over the budget" in p for p in problems)


@pytest.mark.skipif(not os.environ.get("LGCNET_SPRINT_DRY_RUN"),
                    reason="on demand (minutes): LGCNET_SPRINT_DRY_RUN=1")
def test_dry_run_runs_every_stage_and_returns_at_most_8_files(tmp_path, camvid_val,
                                                              monkeypatch):
    monkeypatch.chdir(ROOT)  # the configs name the shipped weights relative to the root
    out = tmp_path / "out"
    assert main(["--out", str(out), "--dry-run", "--device", "cpu", "--note", "ci",
                 "--stages", *STAGES, *PAIR, "--train-configs", *_sprint_configs(),
                 "--sanity-config", "experiments/configs/sanity/camvid_gpu.json",
                 "--train-schedule", "time"]) == 0
    files = list(out.iterdir())
    assert len(files) <= 8 and all(f.is_file() for f in files)  # what a GPU run returns
    summary = json.loads((out / "summary.json").read_text())
    stages = summary["stages"]
    assert {k: v["status"] for k, v in stages.items()} == dict.fromkeys(STAGES, "done")
    assert summary["sprint"]["note"] == "ci" and summary["sprint"]["seconds"] > 0
    assert stages["env"]["camvid"]["val"] == 101
    assert stages["tests"]["returncode"] == 0 and "gpu" in stages["tests"]["command"]
    timed = [r for r in stages["speed"]["rows"] if "network" in r]
    assert {r["model"] for r in timed} >= {"default", "handwritten"}
    assert all(r["network"]["p50"] > 0 for r in timed)
    assert {r["skipped"] for r in stages["speed"]["rows"] if r["mode"] != "eager"} == {
        "graph needs CUDA", "compile needs CUDA"}
    assert [p["pixel_agreement_mean"] for p in stages["speed"]["parity"]] == [1.0, 1.0, 1.0]
    table = LatencyTable.load(out / stages["lut"]["file"])
    assert table.backend == "torch-cpu" and len(table.entries) == stages["lut"]["entries"]
    assert -1.0 <= stages["lut"]["spearman_rho"] <= 1.0
    _check_trainings(stages["train"], out)
    search = json.loads((out / "search.json").read_text())
    assert set(search["seeds"]) == {"seed0", "seed1"}
    assert all(s["log"][-1]["step"] == 2 for s in search["seeds"].values())
    assert 0 <= stages["search"]["seed_agreement"]["cell_edges"] <= 1
    assert -1 <= stages["search"]["seed_agreement"]["alpha_correlation"] <= 1  # states kept
    assert search["agreement"] == stages["search"]["seed_agreement"]
    assert (out / "train_curves.png").is_file() and (out / "search_curves.png").is_file()


def _check_trainings(train: dict, out: Path) -> None:
    """Every run of the plan trained in its own process and came back in a tar; the fold runs
    to their last epoch whatever the schedule, each scored into the campaign's record."""
    runs = train["runs"]
    peer = ["peer_gpu"] if HAS_TORCHVISION else []  # the image has it; CI's venv does not
    assert list(runs) == [*PAIR_RUNS, *peer, "gpu_sprint", "sanity-searched",
                          "sanity-random-0"]
    assert all(r["status"] == "done" and r["epochs"] == 2 for r in runs.values())
    assert not peer or runs["peer_gpu"]["model"] == "lraspp_mbv3_large"
    assert 0 < runs["gpu_sprint"]["init_val_miou"] <= 1  # the warm start, validated first
    assert runs["gpu_sprint"]["recipe"]["time_limit"]  # --train-schedule time ...
    assert all(runs[n]["recipe"]["time_limit"] is None for n in PAIR_RUNS)  # ... not these
    assert set(runs["sanity-searched"]["best_val_iou"]) >= {"pole", "bicyclist"}
    own = ("genotype", "out", "time_limit")  # time_limit: each to the one deadline
    recipes = [{k: v for k, v in runs[n]["recipe"].items() if k not in own}
               for n in ("sanity-searched", "sanity-random-0")]
    assert recipes[0] == recipes[1]  # the sanity check's one recipe
    sanity = train["sanity"]
    assert [r["name"] for r in sanity["rows"]] == ["sanity-searched", "sanity-random-0"]
    assert sanity["summary"]["of"] == 2 and "| sanity-searched |" in sanity["markdown"]
    for row in sanity["rows"]:  # the CPU check's row form: per-class IoU and val history
        assert set(row["final_val_iou"]) >= {"pole", "bicyclist"}
        assert [e for e, _ in row["val_history"]][-1] == 2
        assert row["val_history"][-1][1] == row["final_val_miou"]
    name = next(n for n in runs if runs[n]["returned_in"])  # first fit, in plan order
    with tarfile.open(out / runs[name]["returned_in"]) as tar:
        names = set(tar.getnames())
        tar.extract(f"{name}/best.pt", out / "x", filter="data")
    assert {f"{name}/best.pt", f"{name}/log.txt", f"{name}/curves.png"} <= names
    best = read_checkpoint(out / "x" / name / "best.pt")
    assert best["provenance"]["recipe"]["device_data"] and best["provenance"]["recipe"]["fold"]
    assert best["provenance"]["sprint_note"] == "ci"
    _check_fold_records(train, runs, out)


def _check_fold_records(train: dict, runs: dict, out: Path) -> None:
    """The fold records and their pooled table came back in one tar, as the campaign's are."""
    from experiments.fold_table import load_results

    assert [runs[n]["fold_record"]["arm"] for n in PAIR_RUNS] == [ADOPTED] * 2 + [SCREEN] * 2
    assert train["fold_table"]["records"] == PAIR_RUNS
    assert f"vs `{ADOPTED}` (1 paired)" in train["fold_table"]["markdown"]
    with tarfile.open(out / train["fold_table"]["file"]) as tar:
        assert sorted(tar.getnames()) == sorted([
            "fold_runs", *(f"fold_runs/{n}.json" for n in PAIR_RUNS), "fold_table",
            "fold_table/fold_table.md", "fold_table/fold_table.json"])
        tar.extractall(out / "y", filter="data")
    results = load_results(out / "y" / "fold_runs")  # what fold_table --results reads
    assert {r.key for r in results} == {(a, 0, f) for a in (ADOPTED, SCREEN) for f in "AB"}
    record = json.loads((out / "y" / "fold_runs" / f"{PAIR_RUNS[3]}.json").read_text())
    assert record["run"] == f"runs/{PAIR_RUNS[3]}" and record["report"]["epoch"] == 2
    assert record["command"].startswith(
        "python -m lgcnet_research.train --config configs/train/fold_b_trunk.json "
        "--device-data --amp=bf16 --channels-last ")
    assert record["eval_command"].startswith(f"lgcnet folds eval runs/{PAIR_RUNS[3]}/last.pt "
                                             "--fold B --data ")
    assert "lgcnet_sprint_" not in json.dumps(record)  # no trace of the sprint's scratch


def _reports_then_hangs(ctx: StageContext) -> None:
    ctx.report(first=1, pid=os.getpid())
    time.sleep(600)


def _fails(ctx: StageContext) -> None:
    ctx.report(before=True)
    raise RuntimeError("broken on purpose")


def _needs_something(ctx: StageContext) -> None:
    raise StageSkipped("needs the table of stage lut")


def test_stage_runner_kills_at_the_box_and_keeps_what_was_reported(tmp_path, monkeypatch,
                                                                    fake_clock):
    clock = fake_clock(runner)  # stands still, however slowly a stage starts on a busy machine
    summary = Summary(tmp_path / "summary.json", {})
    record = summary.stage

    def stage(name: str, **fields):
        entry = record(name, **fields)
        if "pid" in fields:  # the hanging stage has reported: then its box runs out
            clock.now += 3600
        return entry

    monkeypatch.setattr(summary, "stage", stage)
    log = runner.Log(tmp_path / "sprint.log")
    cfg = SprintConfig(out=str(tmp_path))

    def ctx(name: str, box: float) -> StageContext:
        return StageContext(name, cfg, tmp_path, tmp_path, tmp_path, clock.now + box)

    assert run_stage(_reports_then_hangs, ctx("hang", 1.0), summary, log) == "timeout"
    assert run_stage(_fails, ctx("fail", 30), summary, log) == "failed (exit 1)"
    assert run_stage(_needs_something, ctx("skip", 30), summary, log) == "skipped"
    stages = json.loads((tmp_path / "summary.json").read_text())["stages"]
    assert stages["hang"]["first"] == 1
    with pytest.raises(ProcessLookupError):  # killed at its box, not left to sleep on
        os.kill(stages["hang"]["pid"], 0)
    assert stages["fail"]["before"] and "broken on purpose" in stages["fail"]["error"]
    assert stages["skip"]["reason"] == "needs the table of stage lut"
    assert "broken on purpose" in (tmp_path / "sprint.log").read_text()  # the child's output


def test_dry_search_without_stage_lut_measures_its_own_table(tmp_path, camvid_val,
                                                             monkeypatch):
    """The default plan runs no lut stage; a dry run's tiny widths fit no committed table."""
    monkeypatch.chdir(ROOT)
    out = tmp_path / "out"
    assert main(["--out", str(out), "--dry-run", "--device", "cpu",
                 "--stages", "search", "--search-seeds", "0"]) == 0
    stages = json.loads((out / "summary.json").read_text())["stages"]
    assert stages["search"]["status"] == "done", stages["search"]
    assert stages["search"]["config"]["lut"].endswith("lut_torch-cpu_48x64.json")


def test_budget_and_switches(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["--out", str(out), "--dry-run", "--stages", "env", "lut", "--skip", "lut",
                 "--budget", "0.5"]) == 0  # nothing fits in half a second: nothing starts
    stages = json.loads((out / "summary.json").read_text())["stages"]
    assert stages["env"]["status"] == "not started: budget spent"
    assert stages["lut"]["status"] == stages["train"]["status"] == "off"
    assert main(["--out", str(out), "--skip", "warp"]) == 2
    assert "unknown warp; choose from env, tests" in capsys.readouterr().err


@pytest.mark.gpu
def test_cuda_runner_forward_and_graph_agree_with_eager(trained_like_net, real_frames):
    """(torch.compile is checked by the sprint's speed stage: its rows record each mode's
    agreement with eager; compiling here would cost the tests stage a minute.)"""
    from lgcnet_deploy.core.classes import CAMVID
    from lgcnet_deploy.core.metadata import INPUT_UINT8_NHWC_BGR, OUTPUT_ARGMAX, ModelMeta
    from lgcnet_deploy.model.fold_bn import fold_batchnorm
    from lgcnet_deploy.model.io_wrapper import wrap_io
    from lgcnet_deploy.runtime.backends.pytorch_cuda import CudaRunner

    meta = ModelMeta.for_dataset(CAMVID, input_format=INPUT_UINT8_NHWC_BGR,
                                 output_kind=OUTPUT_ARGMAX)
    module = wrap_io(fold_batchnorm(trained_like_net), meta)
    batch = np.stack(real_frames[:1])
    x = torch.from_numpy(batch).cuda()
    eager = CudaRunner(module, "cuda", use_cuda_graph=False)
    graph = CudaRunner(module, "cuda")
    assert (eager.mode, graph.mode) == ("eager", "cuda-graph")
    masks = [eager(batch), graph(batch)]
    assert np.array_equal(eager.forward(x).cpu().numpy(), masks[0])
    assert np.array_equal(graph.forward(x).cpu().numpy(), masks[1])  # replay of the capture
    assert (masks[0] == masks[1]).mean() > 0.999


def test_stages_of_together_form_one_group_and_train_runs_pack_within_the_limits(
        tmp_path, monkeypatch):
    from experiments.gpu_sprint import trainings

    cfg = SprintConfig(stages=STAGES)
    assert runner.stage_groups(cfg, STAGES) == [["env"], ["tests"], ["speed"], ["lut"],
                                                ["train", "search"]]
    cfg = SprintConfig(stages=("env", "train", "search"), together=("env", "search"))
    assert runner.stage_groups(cfg, STAGES)[:2] == [["env", "search"], ["tests"]]
    monkeypatch.setattr(trainings, "TAR_LIMIT", 60_000)
    monkeypatch.setattr(trainings, "LOG_TAIL", 1_000)
    for name, size in (("a", 40_000), ("b", 40_000), ("c", 10_000)):
        folder = tmp_path / trainings.RUNS / name
        folder.mkdir(parents=True)
        (folder / "best.pt").write_bytes(b"w" * size)
        (folder / "log.txt").write_text("x" * 5_000 + "the end")
    out = tmp_path / "out"
    out.mkdir()
    placed = trainings.pack(tmp_path, out, ["a", "b", "c"], tars=1)
    assert placed == {"a": "train_runs_1.tar", "b": None, "c": "train_runs_1.tar"}
    with tarfile.open(out / "train_runs_1.tar") as tar:
        assert sorted(tar.getnames()) == ["a/best.pt", "a/log.txt", "c/best.pt", "c/log.txt"]
        log = tar.extractfile("a/log.txt").read()
    assert len(log) == 1_000 and log.endswith(b"the end")  # the tail of the log travels
    assert [f.name for f in out.iterdir()] == ["train_runs_1.tar"]


def test_fold_records_and_their_pooled_table_come_back_in_one_tar(tmp_path):
    from experiments.gpu_sprint import trainings
    from lgcnet_deploy.core.classes import CAMVID

    for arm, right in (("today", 100), ("trunk", 150)):
        for fold in "AB":
            name = f"fold_{fold.lower()}_{arm}"
            folder = tmp_path / trainings.RUNS / name
            folder.mkdir(parents=True)
            confusion = np.eye(CAMVID.num_classes, dtype=int) * right
            confusion[0, 1] = 50  # sky taken for building: trunk's is the smaller share
            (folder / trainings.RECORD).write_text(json.dumps({
                "arm": arm, "fold": fold, "seed": 0, "run": f"runs/{name}", "config": "c.json",
                "overrides": {}, "command": "train", "eval_command": "eval",
                "report": {"fold": fold, "epoch": 80, "confusion": confusion.tolist()}}))
    (tmp_path / trainings.RUNS / "stopped_at_the_box").mkdir()  # no record: left out
    out = tmp_path / "out"
    out.mkdir()
    names = ["fold_a_trunk", "stopped_at_the_box", "fold_a_today", "fold_b_trunk", "fold_b_today"]
    got = trainings.collect_records(tmp_path, out, names)
    assert got["records"] == [n for n in names if n != "stopped_at_the_box"]
    assert "| `trunk` | 80 |" in got["markdown"] and "vs `today` (1 paired)" in got["markdown"]
    assert [f.name for f in out.iterdir()] == [trainings.FOLD_TAR]
    with tarfile.open(out / got["file"]) as tar:
        assert {"fold_runs/fold_a_trunk.json", "fold_table/fold_table.md"} <= set(tar.getnames())
    assert trainings.collect_records(tmp_path, out, ["stopped_at_the_box"]) == {}


def test_a_plans_runs_are_the_campaigns_recipe_with_the_gpu_switches():
    """The adopted recipe against its rare-crop screen on folds A and B, seed 0; `--train-seeds
    1` takes the seed-1 steps the queue has (the adopted recipe's: a screen gets its second
    seed once it passes). Each run is the CPU campaign's config as it is but for the GPU
    switches."""
    from experiments.campaign import QUEUE
    from experiments.gpu_sprint.trainings import GPU_SWITCHES, gpu_step, plan_steps
    from lgcnet_research.train.config import TrainConfig

    cfg = SprintConfig(train_arms=(ADOPTED, SCREEN))
    assert cfg.train_plan == str(QUEUE.relative_to(ROOT)) and cfg.train_configs == ()
    assert cfg.train_schedule == "epochs" and cfg.sanity_config is None
    assert "search" not in cfg.selected()  # the GPU is the trainings' alone
    steps = plan_steps(cfg)
    assert [s.out.name for s in steps] == PAIR_RUNS
    for step in steps:
        gpu = gpu_step(step).settings().to_dict()
        cpu = TrainConfig.load(step.config, **step.overrides).to_dict()
        assert {k for k in gpu if gpu[k] != cpu[k]} <= set(GPU_SWITCHES)
        assert gpu["device_data"] and gpu["amp"] == "bf16" and gpu["epochs"] == 80
    second = plan_steps(SprintConfig(train_arms=(ADOPTED, SCREEN), train_seeds=(1,)))
    assert [s.out.name for s in second] == [f"{n}_s1" for n in PAIR_RUNS[:2]]
    assert [(s.config, s.arm) for s in second] == [(s.config, s.arm) for s in steps[:2]]
    assert {s.settings().seed for s in second} == {1}


def test_default_plan_is_the_queues_next_open_screen_beside_its_pair(tmp_path, monkeypatch):
    """`--train-arms next` (the default) skips a screen with its fold records committed (a
    fold-C check of it left to run opens none), one that distils from cached targets and one
    whose gate is not open, and takes the next screen's seed-0 runs on the pooled folds beside
    those of the arm it is paired with; with no screen open the plan is a problem that says
    what to do."""
    from experiments import campaign
    from experiments.gpu_sprint.config import NEXT_SCREEN
    from experiments.gpu_sprint.trainings import plan_steps

    assert SprintConfig().train_arms == (NEXT_SCREEN,)
    results = tmp_path / "results"
    results.mkdir()
    for name in ("fold_a_trunk_w16_detail", "fold_b_trunk_w16_detail"):  # a dropped screen
        shutil.copy(ROOT / "results" / "campaign" / f"{name}.json", results)
    monkeypatch.setattr(campaign, "RESULTS", results)
    folds = {"a": "configs/train/fold_a_trunk.json", "b": "configs/train/fold_b_trunk.json"}

    def steps(arm: str, name: str, **fields: object) -> list[dict]:
        return [{"config": str(ROOT / config), "arm": arm, "out": f"runs/fold_{f}_{name}",
                 **fields} for f, config in folds.items()]

    def check(arm: str, name: str) -> dict:
        return {"config": str(ROOT / "configs/train/fold_c_trunk.json"), "arm": arm,
                "out": f"runs/fold_c_{name}"}

    queue = tmp_path / "queue.json"
    runs = [*steps("trunk", "trunk"), *steps("trunk", "trunk_s1", seed=1),
            *steps("trunk+w16+detail", "trunk_w16_detail"),
            *steps("trunk+kd", "trunk_kd", teacher_targets="runs/targets"),
            check("trunk+w16+detail", "trunk_w16_detail"),
            *steps("trunk+late", "trunk_late", if_adopted="trunk+w16+detail"),
            *steps("trunk+open", "trunk_open"), *steps("trunk+open", "trunk_open_s1", seed=1),
            check("trunk+open", "trunk_open"), *steps("trunk+after", "trunk_after")]
    queue.write_text(json.dumps({"runs": runs}))
    planned = plan_steps(SprintConfig(train_plan=str(queue)))
    assert [s.out.name for s in planned] == [
        "fold_a_trunk", "fold_b_trunk", "fold_a_trunk_open", "fold_b_trunk_open"]
    queue.write_text(json.dumps({"runs": runs[:9]}))  # no open screen left
    assert plan_steps(SprintConfig(train_plan=str(queue))) == []
    out = tmp_path / "out"
    assert main(["--out", str(out), "--plan", "--train-plan", str(queue)]) == 1
    problems = json.loads((out / "summary.json").read_text())["sprint"]["problems"]
    assert any("no open screen a GPU run can carry" in p and "--train-arms" in p
               for p in problems)
