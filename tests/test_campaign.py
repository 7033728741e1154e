"""The accuracy campaign's queue: training steps resume, targets steps cache, status says
where each stands (no training here: the steps' commands and states only)."""

from __future__ import annotations

import json

from experiments.campaign import QUEUE, Run, Targets, queue, status


def test_every_step_of_the_shipped_queue_loads():
    steps = queue(QUEUE)
    assert steps and all(isinstance(s, Run | Targets) for s in steps)
    for step in steps:  # every config exists and every override is a field
        if isinstance(step, Run):
            assert step.settings().epochs > 0
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
