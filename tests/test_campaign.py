"""The accuracy campaign's queue: training steps resume, targets steps cache, status says
where each stands (no training here: the steps' commands and states only)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from experiments import campaign
from experiments.campaign import QUEUE, Run, Targets, queue, status
from experiments.fold_table import BASELINE, reference
from lgcnet_research.train.config import TrainConfig
from lgcnet_research.train.fold_eval import FoldReport
from lgcnet_research.train.folds import FOLDS, POOLED_FOLDS
from lgcnet_research.train.peer import PEER_FORMAT


def test_every_step_of_the_shipped_queue_loads(tmp_path):
    steps = queue(QUEUE)
    assert steps and all(isinstance(s, Run | Targets) for s in steps)
    for step in steps:  # every config exists and every override is a field
        if isinstance(step, Run):
            assert step.settings().epochs > 0
            # every arm's run is scored on the drive its fold held out
            assert step.arm is None or step.settings().fold in FOLDS
    arms = {s.arm for s in steps if isinstance(s, Run) and s.arm}
    for arm in arms:  # and is paired with an arm the queue trains (or is the baseline)
        assert reference(arm, BASELINE) in arms | {arm}
    # a step written back as a queue entry (the GPU sprint's fold_run.json) is the same step
    again = tmp_path / "again.json"
    again.write_text(json.dumps({"runs": [s.entry() for s in steps if isinstance(s, Run)]}))
    assert queue(again) == [s for s in steps if isinstance(s, Run)]
    outs = [str(s.out) for s in steps]
    assert len(outs) == len(set(outs))  # no two steps write one folder


def test_steps_command_resume_and_report_their_state(tmp_path, camvid_val):
    path = tmp_path / "queue.json"
    path.write_text(json.dumps({"runs": [
        {"config": "configs/train/fold_a_trunk.json", "seed": 1, "out": str(tmp_path / "r")},
        {"targets": {"teacher": str(tmp_path / "t.pt"), "fold": "A",
                     "out": str(tmp_path / "targets")}}]}))
    run, targets = queue(path)
    assert run.command()[:3] == ["lgcnet_research.train", "--config",
                                 "configs/train/fold_a_trunk.json"]
    assert "--seed=1" in run.command() and run.command()[-1] == "--resume"
    assert not run.done() and run.settings().seed == 1
    assert targets.command() == ["lgcnet_research.train.targets", str(tmp_path / "t.pt"),
                                 "--fold", "A", "-o", str(tmp_path / "targets")]
    assert not targets.done() and targets.expected() == 367  # fold A's training frames
    lines = status(path)
    assert lines[0].endswith(f"0/80 epochs, val mIoU - ({tmp_path / 'r'})")
    assert lines[1] == (f"targets of {tmp_path / 't.pt'} for fold A: 0/367 frames cached "
                        f"({tmp_path / 'targets'})")


def test_a_targets_step_is_done_only_under_a_current_manifest(tmp_path, monkeypatch):
    """Every frame cached is not enough: a manifest that does not record the teacher's
    exposure (what a student checks) sends the step back to its command, which keeps the
    frames and rewrites the manifest."""
    from lgcnet_research.train.targets import MANIFEST

    step = Targets(tmp_path / "t.pt", "A", tmp_path / "targets")
    monkeypatch.setattr(Targets, "expected", lambda self: 2)
    step.out.mkdir()
    for name in ("f1", "f2"):
        (step.out / f"{name}.npy").write_bytes(b"")
    manifest = {"format": "lgcnet-teacher-targets/1", "teacher": "t.pt"}
    (step.out / MANIFEST).write_text(json.dumps(manifest))
    assert not step.done()
    (step.out / MANIFEST).write_text(json.dumps({**manifest, "exposure_target": None}))
    assert step.done()


def _finished_teacher(path, epochs):
    """A checkpoint shaped like a finished teacher run's last.pt (tiny tensors)."""
    torch.save({"format": PEER_FORMAT, "model": "effnet_lite0_seg",
                "state_dict": {"w": torch.randn(4, 3), "n": torch.tensor(7)},
                "train_state": {"optimizer": {"state": {0: torch.zeros(4, 3)}},
                                "raw_state_dict": {"w": torch.zeros(4, 3)},
                                "history": [{"epoch": e + 1, "seconds": 900.0}
                                            for e in range(epochs)]}}, path)


def test_targets_whose_readers_are_all_recorded_are_not_cached_again(tmp_path, monkeypatch):
    # a new checkout has the students' records but no cache: caching would feed nothing
    monkeypatch.setattr(campaign, "RESULTS", tmp_path / "results")
    monkeypatch.setattr(campaign, "MILESTONES", tmp_path / "milestones")
    targets = Targets(tmp_path / "t.pt", "A", tmp_path / "targets")
    monkeypatch.setattr(Targets, "expected", lambda self: 2)
    fold_a = Path("configs/train/fold_a_trunk.json")
    student = Run(fold_a, {"teacher_targets": str(targets.out), "out": str(tmp_path / "kd")},
                  "kd")
    later = Run(fold_a, {"out": str(tmp_path / "later")})
    path = tmp_path / "queue.json"
    entries = [{"targets": {"teacher": str(targets.teacher), "fold": "A",
                            "out": str(targets.out)}}, student.entry(), later.entry()]
    path.write_text(json.dumps({"runs": entries}))
    assert campaign.next_step(path) == targets  # its student still has to train
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "kd.json").write_text("{}")
    assert campaign.next_step(path) == later and not targets.done()
    assert status(path)[0].endswith(": not needed: every run that reads them is done")
    alone = tmp_path / "alone.json"  # targets no step reads are cached as asked
    alone.write_text(json.dumps({"runs": entries[:1]}))
    assert campaign.next_step(alone) == targets


def test_a_teachers_milestone_is_kept_and_restores_its_step(tmp_path, monkeypatch):
    monkeypatch.setattr(campaign, "MILESTONES", tmp_path / "milestones")
    monkeypatch.setattr(campaign, "RESULTS", tmp_path / "results")
    step = Run(Path("configs/train/teacher_fold_a.json"), {"out": str(tmp_path / "t"),
                                                           "epochs": 3}, "teacher", True)
    step.out.mkdir()
    _finished_teacher(step.out / "last.pt", 3)
    monkeypatch.setattr(campaign, "write_fold_record", lambda run, dest: dest.write_text("{}"))
    (tmp_path / "results").mkdir()
    written = step.keep()
    assert written == [tmp_path / "milestones" / "t.pt", tmp_path / "results" / "t.json"]
    kept = torch.load(written[0], weights_only=True)
    assert kept["state_dict"]["w"].dtype == torch.float16 and kept["state_dict"]["n"] == 7
    assert "optimizer" not in kept["train_state"] and "raw_state_dict" not in kept["train_state"]
    assert step.keep() == []  # written once
    (step.out / "last.pt").unlink()  # a new checkout: the record, no run folder
    assert step.done()  # its record says so, but the targets step still needs its weights:
    assert step.restore() == written[0] and (step.out / "last.pt").is_file()
    assert step.restore() is None  # the run folder is there now


def test_a_run_stopped_part_way_is_snapshot_whole_and_resumed_from_it(tmp_path, monkeypatch):
    monkeypatch.setattr(campaign, "MILESTONES", tmp_path / "milestones")
    monkeypatch.setattr(campaign, "RESULTS", tmp_path)
    step = Run(Path("configs/train/teacher_fold_a.json"), {"out": str(tmp_path / "t"),
                                                           "epochs": 3}, "teacher")
    assert step.snapshot() is None  # not started: nothing to keep
    step.out.mkdir()
    _finished_teacher(step.out / "last.pt", 1)
    assert step.snapshot() == step.snapshot_path == tmp_path / "milestones" / "t.resume.pt"
    assert step.snapshot_path.read_bytes() == (step.out / "last.pt").read_bytes()
    (step.out / "last.pt").unlink()  # a new checkout resumes at epoch 1, optimizer and all
    assert step.restore() == step.snapshot_path and step.state().startswith(
        "1/3 epochs, val mIoU -, about 30 min left at 900 s an epoch")
    _finished_teacher(step.out / "last.pt", 3)
    assert step.snapshot() is None  # finished: a milestone's business, not a snapshot's
    monkeypatch.setattr(campaign, "write_fold_record", lambda run, dest: dest.write_text("{}"))
    step.keep()
    assert not step.snapshot_path.exists()  # deleted once the run finished


def test_time_left_prices_the_full_frame_finish_at_its_pixels_then_at_its_own_epochs():
    cfg = TrainConfig(epochs=10, finish_epochs=2, crop=(256, 320), finish_crop=(512, 640))
    crop_epochs = [{"epoch": e, "seconds": 100.0} for e in range(1, 5)]
    # 4 crop epochs left at 100 s, then 2 on 4x the pixels, at 400 s: 1200 s
    assert campaign.time_left(crop_epochs, cfg) == ", about 20 min left at 100 s an epoch"
    finishing = [*crop_epochs, *({"epoch": e, "seconds": 100.0} for e in range(5, 9)),
                 {"epoch": 9, "seconds": 300.0}]  # its own finish epoch, once measured
    assert campaign.time_left(finishing, cfg) == ", about 5 min left at 300 s an epoch"
    assert campaign.time_left([{"epoch": 1}], cfg) == ""  # no epoch timed
    assert campaign.time_left([{"epoch": 10, "seconds": 1.0}], cfg) == ""  # finished


def test_a_fold_run_with_a_committed_record_is_done_without_its_folder(tmp_path, monkeypatch):
    # a new checkout has the records but no run folders: it must not train those arms again
    monkeypatch.setattr(campaign, "RESULTS", tmp_path / "results")
    monkeypatch.setattr(campaign, "MILESTONES", tmp_path / "milestones")
    arm = Run(Path("configs/train/fold_a_trunk.json"), {"out": str(tmp_path / "r")}, "trunk")
    unnamed = Run(Path("configs/train/fold_a_trunk.json"), {"out": str(tmp_path / "u")})
    (tmp_path / "results").mkdir()
    for step in (arm, unnamed):
        (tmp_path / "results" / f"{step.out.name}.json").write_text("{}")
    assert arm.done() and arm.state() == (f"done, recorded in {tmp_path / 'results' / 'r.json'}"
                                          " (its run folder is not here)")
    assert not unnamed.done()  # a record counts for the arm it was written for only
    assert arm.keep() == [] and not arm.out.exists()  # nothing to write, nothing trained
    path = tmp_path / "queue.json"
    path.write_text(json.dumps({"runs": [arm.entry(), unnamed.entry()]}))
    assert campaign.next_step(path) == unnamed


def test_a_fold_runs_record_names_its_arm_seed_and_commands(tmp_path, monkeypatch):
    report = FoldReport("x", "A", "0006R0", 2, 80, 80, True, 0.5, {c: 0.5 for c in "ab"},
                        [[1, 1], [1, 1]])
    read = []  # the checkpoint is read once: its weights scored, its history kept
    payload = {"train_state": {"history": [
        {"epoch": 10, "val_miou": 0.4, "val_iou": [0.3, 0.5]}, {"epoch": 11},
        {"epoch": 20, "val_miou": 0.45, "val_iou": [0.4, 0.5]}]}}
    monkeypatch.setattr(campaign, "load_net", lambda path: read.append(path) or (None, payload))
    monkeypatch.setattr(campaign, "score_fold",
                        lambda net, loaded, path, fold, root: read.append(root) or report)
    step = Run(Path("configs/train/fold_a_trunk.json"), {"seed": 1, "out": str(tmp_path / "r")},
               "trunk")
    campaign.write_fold_record(step, tmp_path / "r.json")
    record = json.loads((tmp_path / "r.json").read_text())
    assert (record["arm"], record["fold"], record["seed"]) == ("trunk", "A", 1)
    assert record["curve"] == [[10, 0.4], [20, 0.45]]  # the evaluated epochs only
    assert record["class_curve"] == [[10, [0.3, 0.5]], [20, [0.4, 0.5]]]
    assert record["command"] == ("python -m lgcnet_research.train --config "
                                 f"configs/train/fold_a_trunk.json --seed=1 --out={tmp_path / 'r'}")
    assert record["eval_command"] == f"lgcnet folds eval {tmp_path / 'r' / 'last.pt'} --fold A"
    assert record["report"]["miou"] == 0.5 and read == [tmp_path / "r" / "last.pt", None]
    assert "trade" not in record  # an arm meant to gain accuracy
    campaign.write_fold_record(step._replace(trade="latency"), tmp_path / "t.json")
    assert json.loads((tmp_path / "t.json").read_text())["trade"] == "latency"
    # a GPU run of the same recipe: its switches and its CamVid, scored on that CamVid
    gpu = Run(Path("configs/train/fold_a_trunk.json"), {
        "device_data": True, "channels_last": False, "limit": [4, 2], "data": "camvid85",
        "out": str(tmp_path / "g")}, "trunk")
    campaign.write_fold_record(gpu, tmp_path / "g.json")
    record = json.loads((tmp_path / "g.json").read_text())
    assert record["command"].endswith("--device-data --no-channels-last --limit 4 2 "
                                      f"--data=camvid85 --out={tmp_path / 'g'}")
    assert record["eval_command"].endswith("--fold A --data camvid85") and read[-1] == "camvid85"
    # the same run as the campaign names it: scored where it is, recorded under those paths
    shown = gpu._replace(overrides={**gpu.overrides, "out": "runs/g", "data": "up/camvid"})
    campaign.write_fold_record(gpu, tmp_path / "s.json", shown)
    record = json.loads((tmp_path / "s.json").read_text())
    assert read[-2:] == [tmp_path / "g" / "last.pt", "camvid85"]
    assert (record["run"], record["report"]["checkpoint"]) == ("runs/g", "runs/g/last.pt")
    assert record["eval_command"] == "lgcnet folds eval runs/g/last.pt --fold A --data up/camvid"
    assert str(tmp_path) not in json.dumps(record)
    teacher_all = Run(Path("configs/train/teacher_all.json"), {}, "teacher")
    with pytest.raises(campaign.CampaignError, match="fold 'all'"):
        campaign.write_fold_record(teacher_all, tmp_path / "all.json")


def test_a_missing_dataset_is_one_line_and_exit_3(monkeypatch, capsys):
    monkeypatch.delenv("LGCNET_CAMVID", raising=False)
    assert campaign.main(["--status", "--queue", str(QUEUE)]) == 3
    err = capsys.readouterr().err.strip()
    assert err.startswith("campaign: error: CamVid's location is not set") and "\n" not in err


def test_a_queue_naming_a_missing_config_is_one_line_and_exit_3(tmp_path, capsys):
    path = tmp_path / "queue.json"
    path.write_text(json.dumps({"runs": [{"config": "configs/train/nowhere.json"}]}))
    assert campaign.main(["--status", "--queue", str(path)]) == 3
    assert "nowhere.json" in capsys.readouterr().err


class _Step:
    """A queue step that trains nothing: done once its command ran (unless `stalls`)."""

    def __init__(self, name: str, root: Path, stalls: bool = False) -> None:
        self.name, self.out, self.stalls, self.finished = name, root / name, stalls, False

    def done(self) -> bool:
        return self.finished

    def command(self) -> list[str]:
        return ["step", self.name]

    def state(self) -> str:
        return "not done"

    def __str__(self) -> str:
        return self.name


def test_the_campaign_reads_its_queue_afresh_before_each_step(tmp_path, monkeypatch, capsys):
    steps = [_Step("a", tmp_path)]
    ran = []

    def call(args, stdout, stderr):  # the step "trains"; meanwhile the queue is edited
        step = next(s for s in steps if s.name == args[-1])
        ran.append(step.name)
        step.finished = not step.stalls
        if step.name == "a":
            steps.append(_Step("b", tmp_path))
        return 0

    monkeypatch.setattr(campaign, "queue", lambda path: list(steps))
    monkeypatch.setattr(campaign.subprocess, "call", call)
    assert campaign.run() == 0 and ran == ["a", "b"]
    steps.append(_Step("c", tmp_path, stalls=True))  # exits 0 but stays unfinished
    assert campaign.run() == 3 and ran == ["a", "b", "c"]  # run once, not again and again
    assert "c exited without finishing" in capsys.readouterr().out


def test_the_campaign_goes_on_in_a_fresh_interpreter_between_steps(tmp_path, monkeypatch):
    # a training setting added while a step runs must be known to the next step's check, so
    # the queue is walked by a process that imported the code as it stands after each step
    steps = [_Step("a", tmp_path), _Step("b", tmp_path)]
    ran, restarts = [], []

    def call(args, stdout, stderr):
        step = next(s for s in steps if s.name == args[-1])
        ran.append(step.name)
        step.finished = True
        return 0

    monkeypatch.setattr(campaign, "queue", lambda path: list(steps))
    monkeypatch.setattr(campaign.subprocess, "call", call)
    assert campaign.run(between_steps=lambda: restarts.append(list(ran))) == 0
    assert restarts == [["a"], ["a", "b"]]
    execs = []
    monkeypatch.setattr(campaign.os, "execv", lambda exe, argv: execs.append((exe, argv)))
    monkeypatch.setattr(campaign.sys, "orig_argv", ["python", "-m", "experiments.campaign"])
    campaign.restart_with_new_code()
    assert execs == [(campaign.sys.executable, ["python", "-m", "experiments.campaign"])]


def _record(folder: Path, arm: str, fold: str, seed: int, errors: int) -> None:
    """A fold record as the campaign writes it: 100 right pixels per class and `errors` sky
    pixels taken for building."""
    matrix = torch.eye(11, dtype=torch.int64) * 100
    matrix[0, 1] = errors
    out = f"runs/{arm}_{fold}_{seed}"
    (folder / f"{arm}_{fold}_{seed}.json").write_text(json.dumps({
        "arm": arm, "fold": fold, "seed": seed, "run": out, "config": "c.json",
        "overrides": {}, "command": "python -m lgcnet_research.train", "eval_command": "lgcnet",
        "report": {"fold": fold, "epoch": 80, "epochs_planned": 80, "miou": 0.0,
                   "confusion": matrix.tolist()}}))


def test_a_step_waits_on_a_verdict_and_runs_only_if_it_goes_its_way(tmp_path, monkeypatch):
    """The shipped run takes an idea only if the pooled table adopts it: of two steps gated on
    the same arm one runs, the other is passed over, and while the verdict is not in both wait
    and the steps after them go first."""
    results = tmp_path / "results"
    results.mkdir()
    monkeypatch.setattr(campaign, "RESULTS", results)
    for fold in POOLED_FOLDS:
        _record(results, BASELINE, fold, 0, 100)
        _record(results, "idea", fold, 0, 0)  # one seed: the verdict on it is not in
    path = tmp_path / "queue.json"
    step = {"config": "configs/train/ship_trunk.json"}
    path.write_text(json.dumps({"runs": [
        {**step, "if_adopted": "idea", "out": str(tmp_path / "with")},
        {**step, "unless_adopted": "idea", "out": str(tmp_path / "without"), "milestone": True},
        {**step, "out": str(tmp_path / "after")}]}))
    taken, passed, after = queue(path)
    assert taken.condition == ("idea", "if_adopted")
    assert passed.condition == ("idea", "unless_adopted")
    assert str(taken).endswith("(if idea is adopted)")
    assert campaign.next_step(path) == after
    assert status(path)[0].endswith("waits for a verdict on idea (now: undecided, 1 seed); "
                                    "later steps go first")
    for fold in POOLED_FOLDS:
        _record(results, BASELINE, fold, 1, 80)
        _record(results, "idea", fold, 1, 0)  # two seeds, each far ahead: adopted
    assert campaign.verdict_of("idea") == ("adopt", "gain > 2×spread")
    assert campaign.next_step(path) == taken and passed.done() and not taken.done()
    monkeypatch.setattr(campaign, "MILESTONES", tmp_path / "milestones")
    monkeypatch.setattr(campaign, "history", lambda cfg: [{"epoch": 1}])  # begun, then judged
    (tmp_path / "without").mkdir()
    (tmp_path / "without" / "last.pt").write_bytes(b"epoch 1 of 250")
    assert passed.snapshot() is None  # passed over: nothing to resume, nothing to commit
    assert passed.keep() == [] and not (tmp_path / "milestones").exists()  # nor a milestone
    assert status(path)[1].endswith("passed over: the verdict on idea is adopt, gain > 2×spread")
    for fold in POOLED_FOLDS:  # a second seed far behind: judged, not adopted
        _record(results, "idea", fold, 1, 400)
    assert campaign.verdict_of("idea")[0] == "not adopted"
    assert campaign.next_step(path) == passed and taken.done()
    path.write_text(json.dumps({"runs": [{**step, "if_adopted": "idea",
                                          "unless_adopted": "idea"}]}))
    with pytest.raises(campaign.CampaignError, match="not several"):
        queue(path)


def test_a_confirmation_seed_waits_on_the_screen_and_is_passed_over_once_it_drops(
        tmp_path, monkeypatch):
    """A second seed queued beside a screen ("if_screened") waits while the screen has one fold,
    runs once both folds passed it (whatever the later verdict) and is passed over once the
    screen drops the idea."""
    results = tmp_path / "results"
    results.mkdir()
    monkeypatch.setattr(campaign, "RESULTS", results)
    path = tmp_path / "queue.json"
    path.write_text(json.dumps({"runs": [
        {"config": "configs/train/fold_a_trunk.json", "if_screened": "idea", "seed": 1,
         "out": str(tmp_path / "idea_s1")},
        {"config": "configs/train/ship_trunk.json", "out": str(tmp_path / "after")}]}))
    confirm, after = queue(path)
    assert str(confirm).endswith("(if idea passes its screen)")
    assert confirm.entry()["if_screened"] == "idea"
    assert confirm.gate() is None and campaign.next_step(path) == after  # no record yet
    _record(results, BASELINE, "A", 0, 100)
    _record(results, "idea", "A", 0, 0)
    assert confirm.gate() is None  # one fold of the seed: no pooled gain yet
    _record(results, BASELINE, "B", 0, 100)
    _record(results, "idea", "B", 0, 0)
    assert campaign.verdict_of("idea") == ("undecided", "1 seed")
    assert confirm.gate() is True and campaign.next_step(path) == confirm
    _record(results, "idea", "B", 0, 400)  # the same seed far behind instead: dropped
    assert campaign.verdict_of("idea")[0] == "drop"
    assert confirm.gate() is False and confirm.done()
    assert status(path)[0].endswith("passed over: the verdict on idea is drop, 1 seed, < +2")
