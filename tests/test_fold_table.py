"""The pooled-fold table on synthetic fold results: pooling sums the folds' confusion matrices,
gains are paired by seed, the campaign's rule gives the verdicts, and a missing fold, a second
file of the same run or a malformed file are reported, never a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from experiments.fold_table import build, cost_verdict, load_results, main, main_row, verdict
from lgcnet_deploy.core.classes import CAMVID

N = CAMVID.num_classes
POLE, ROAD = CAMVID.classes.index("pole"), CAMVID.classes.index("road")


def confusion(errors: int = 0) -> np.ndarray:
    """100 right pixels per class, and `errors` sky pixels predicted as building."""
    m = np.eye(N, dtype=np.int64) * 100
    m[0, 1] = errors
    return m


def write(folder: Path, arm: str, fold: str, seed: int, matrix: np.ndarray,
          name: str | None = None, epoch: int = 60, curve: list | None = None,
          **extra: object) -> Path:
    """One fold result as the campaign writes it."""
    out = f"runs/fold_{fold.lower()}_{arm}_s{seed}"
    record = {
        "arm": arm, "fold": fold, "seed": seed, "run": out,
        "config": f"configs/train/fold_{fold.lower()}_{arm}.json",
        "overrides": {"seed": seed, "out": out},
        "command": f"python -m lgcnet_research.train --config c.json --seed={seed} --out={out}",
        "eval_command": f"lgcnet folds eval {out}/last.pt --fold {fold}",
        "report": {"fold": fold, "epoch": epoch, "epochs_planned": 60, "miou": 0.0,
                   "confusion": matrix.tolist()}, **({"curve": curve} if curve else {}), **extra}
    path = folder / (name or f"{arm}_{fold}_{seed}.json")
    path.write_text(json.dumps(record))
    return path


def write_both(folder: Path, arm: str, seed: int, errors: int, **extra: object) -> None:
    """Folds A and B of one seed, the sky errors split between them."""
    write(folder, arm, "A", seed, confusion(errors // 2), **extra)
    write(folder, arm, "B", seed, confusion(errors - errors // 2), **extra)


def pooled_miou(errors: int) -> float:
    """mIoU of two folds of `confusion` pooled, `errors` sky pixels taken for building."""
    return (N - 2 + 2 * 200 / (200 + errors)) / N


def test_pooling_sums_the_folds_matrices(tmp_path: Path) -> None:
    a, b = confusion(), confusion()
    a[POLE, POLE], a[POLE, ROAD] = 10, 10  # fold A: pole IoU 10 / 20 = 0.5
    b[POLE, POLE], b[ROAD, POLE] = 30, 10  # fold B: pole IoU 30 / 40 = 0.75
    write(tmp_path, "today", "A", 0, a)
    write(tmp_path, "today", "B", 0, b)
    arm = build(load_results(tmp_path), "today")["arms"][0]
    pooled = arm["seeds"][0]["per_class_iou"]
    assert pooled["pole"] == pytest.approx(40 / 60)  # not (0.5 + 0.75) / 2
    assert pooled["road"] == pytest.approx(200 / 220)
    assert arm["miou"] == pytest.approx((9 + 40 / 60 + 200 / 220) / N)
    assert arm["seeds"][0]["folds"]["A"]["miou"] == pytest.approx((9 + 0.5 + 100 / 110) / N)


@pytest.mark.parametrize(("gains", "spread", "said"), [
    ([], None, ("undecided", "no paired seed")),
    ([0.019], None, ("drop", "1 seed, < +2")),
    ([0.03], None, ("undecided", "1 seed")),
    ([0.03, 0.05], 0.019, ("adopt", "gain > 2×spread")),
    ([0.03, 0.05], 0.02, ("not adopted", "gain ≤ 2×spread")),
])
def test_the_campaign_rule(gains: list[float], spread: float | None,
                           said: tuple[str, str]) -> None:
    assert verdict(gains, spread) == said


@pytest.mark.parametrize(("gains", "said"), [
    ([], ("undecided", "no paired seed")),
    ([-0.009], ("keep", "1 seed, loss < 1 point")),
    ([0.01, -0.011], ("keep", "2 seeds, loss < 1 point")),
    ([-0.011], ("costs", "1 seed, loss ≥ 1 point")),
])
def test_an_arm_that_trades_accuracy_is_judged_by_its_cost(gains: list[float],
                                                           said: tuple[str, str]) -> None:
    assert cost_verdict(gains) == said


def test_gains_are_paired_by_seed_and_judged(tmp_path: Path, capsys: pytest.CaptureFixture
                                             ) -> None:
    write_both(tmp_path, "today", 0, 100)  # pooled sky and building IoU 200 / 300
    write_both(tmp_path, "today", 1, 80)
    for seed in (0, 1):
        write_both(tmp_path, "trunk", seed, 0)  # mIoU 1 for both seeds: spread 0
    write_both(tmp_path, "trunk+kd", 0, 0)
    write_both(tmp_path, "trunk+kd", 1, 400)  # a spread wider than its gain
    write_both(tmp_path, "wide", 0, 90)  # one seed, a little over today's seed 0
    write_both(tmp_path, "teacher", 0, 0)
    write_both(tmp_path, "teacher-lite2", 0, 0)  # a second teacher: also shown, not paired
    assert main(["--results", str(tmp_path), "--out", str(tmp_path / "table")]) == 0
    table = json.loads((tmp_path / "table" / "fold_table.json").read_text())
    arms = {arm["arm"]: arm for arm in table["arms"]}
    assert [a["arm"] for a in table["arms"]] == ["today", "trunk", "trunk+kd", "wide", "teacher",
                                                  "teacher-lite2"]
    today = [pooled_miou(100), pooled_miou(80)]
    assert arms["today"]["spread"] == pytest.approx(today[1] - today[0])
    fold_a = [(N - 2 + 2 * 100 / (100 + e // 2)) / N for e in (100, 80)]  # each seed's A
    assert arms["today"]["fold_miou"]["A"] == pytest.approx(sum(fold_a) / 2)
    assert [r["gain"] for r in arms["trunk"]["seeds"]] == pytest.approx([1 - t for t in today])
    assert (arms["trunk"]["verdict"], arms["trunk+kd"]["verdict"]) == ("adopt", "not adopted")
    # the idea kd is judged against the arm it was added to, not against today
    assert (arms["trunk"]["against"], arms["trunk+kd"]["against"]) == ("today", "trunk")
    assert [r["gain"] for r in arms["trunk+kd"]["seeds"]] == pytest.approx(
        [0, pooled_miou(400) - 1])
    assert arms["trunk+kd"]["reason"] == "gain ≤ 2×spread"
    assert arms["wide"]["mean_gain"] == pytest.approx(pooled_miou(90) - today[0])
    assert (arms["wide"]["verdict"], arms["wide"]["missing"]) == ("drop", ["seed 1 missing"])
    for teacher in ("teacher", "teacher-lite2"):
        assert arms[teacher]["verdict"] is None and arms[teacher]["miou"] == 1.0
        assert arms[teacher]["against"] is None and arms[teacher]["missing"] == []
    text = capsys.readouterr().out
    assert text.strip() == (tmp_path / "table" / "fold_table.md").read_text().strip()
    assert "| `trunk` | 60 | 100.00 | 0.00 (2 seeds) |" in text
    assert "| – | not paired |" in text.split("`teacher-lite2`")[1].splitlines()[0]
    assert "`lgcnet folds eval runs/fold_b_trunk+kd_s1/last.pt --fold B`" in text


def test_an_idea_that_passed_its_screen_is_confirmed_on_a_later_recipe(tmp_path: Path) -> None:
    """`trunk+loss` passed its screen (+2 or more); `trunk+exp+loss`, the idea on the recipe
    adopted since, gaining under +2 on one seed, is its confirmation, not a failed screen;
    `trunk+exp+other`, whose idea passed nowhere, is dropped."""
    write_both(tmp_path, "today", 0, 300)
    write_both(tmp_path, "trunk", 0, 300)
    write_both(tmp_path, "trunk+loss", 0, 0)  # +10.9 points: passes its screen
    write_both(tmp_path, "trunk+exp", 0, 100)
    write_both(tmp_path, "trunk+exp+loss", 0, 90)  # +0.4: under +2
    write_both(tmp_path, "trunk+exp+other", 0, 90)
    arms = {arm["arm"]: arm for arm in build(load_results(tmp_path), "today")["arms"]}
    assert (arms["trunk+loss"]["verdict"], arms["trunk+loss"]["reason"]) == ("undecided",
                                                                             "1 seed")
    assert (arms["trunk+exp+loss"]["verdict"], arms["trunk+exp+loss"]["reason"]) == (
        "undecided", "1 seed; confirms `trunk+loss`'s screen")
    assert arms["trunk+exp+other"]["verdict"] == "drop"


def test_an_arm_missing_a_fold_shows_what_it_has(tmp_path: Path) -> None:
    write_both(tmp_path, "today", 0, 100)
    write(tmp_path, "trunk", "A", 0, confusion(), epoch=40)
    table = build(load_results(tmp_path), "today")
    trunk = table["arms"][1]
    assert (trunk["miou"], trunk["missing"], trunk["verdict"]) == (
        None, ["seed 0: fold B missing"], "undecided")
    assert trunk["seeds"][0]["folds"]["A"]["miou"] == 1.0
    assert json.loads(json.dumps(table)) == table  # plain JSON, as the file keeps it
    assert table["notes"] == ["paired arms ran different lengths (epochs: trunk 40 against "
                              "today 60): compare at equal length"]


def test_fold_c_is_shown_beside_the_pool_and_left_out_of_it(tmp_path: Path) -> None:
    write_both(tmp_path, "today", 0, 100)
    write(tmp_path, "today", "C", 0, confusion(400))  # overlaps fold B: never pooled
    write(tmp_path, "trunk", "C", 0, confusion())  # a check alone is no pooled run
    arms = {a["arm"]: a for a in build(load_results(tmp_path), "today")["arms"]}
    assert arms["today"]["miou"] == pytest.approx(pooled_miou(100))
    assert arms["today"]["fold_miou"]["C"] == pytest.approx((N - 2 + 2 * 100 / 500) / N)
    assert arms["trunk"]["missing"] == ["seed 0: fold A missing", "seed 0: fold B missing"]
    assert main_row(arms["today"]).split(" | ")[4:7] == ["93.94", "93.94", "85.45"]


def test_arms_run_to_another_length_are_paired_within_their_group(tmp_path: Path) -> None:
    """`NAME@250` checks the 80-epoch proxy's ranking: trunk@250 against today@250, with the
    seeds of its own group only, and no note (each pair ran one length)."""
    for seed in (0, 1):
        write_both(tmp_path, "today", seed, 100)
        write_both(tmp_path, "trunk", seed, 0)
    for arm, errors in (("today@250", 50), ("trunk@250", 0)):
        write(tmp_path, arm, "A", 0, confusion(errors // 2), epoch=250)
        write(tmp_path, arm, "B", 0, confusion(errors - errors // 2), epoch=250)
    table = build(load_results(tmp_path), "today")
    arms = {arm["arm"]: arm for arm in table["arms"]}
    assert [a["arm"] for a in table["arms"]] == ["today", "trunk", "today@250", "trunk@250"]
    assert (arms["trunk@250"]["against"], arms["today@250"]["against"]) == ("today@250", None)
    assert arms["trunk@250"]["mean_gain"] == pytest.approx(1 - pooled_miou(50))
    assert arms["trunk@250"]["missing"] == [] and arms["trunk@250"]["verdict"] == "undecided"
    assert table["notes"] == []
    assert "| – | baseline |" in main_row(arms["today@250"])


def test_a_second_file_of_one_run_is_refused(tmp_path: Path,
                                             capsys: pytest.CaptureFixture) -> None:
    write(tmp_path, "today", "A", 0, confusion(), name="a.json")
    write(tmp_path, "today", "A", 0, confusion(), name="b.json")
    assert main(["--results", str(tmp_path), "--out", str(tmp_path / "t")]) == 3
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "b.json: arm today fold A seed 0 again" in err
    assert "a.json" in err


@pytest.mark.parametrize(("spoil", "said"), [
    (lambda r: r.pop("eval_command"), "missing key(s) eval_command"),
    (lambda r: r["report"].update(confusion=[[1] * N] * (N - 1)), "must be 11x11 pixel counts"),
    (lambda r: r["report"].pop("confusion"), "report has no confusion matrix"),
    (lambda r: r.update(fold="D"), "fold 'D', expected one of A, B, C"),
    (lambda r: r["report"].update(fold="B"), "fold A but its report is fold B"),
])
def test_a_malformed_file_is_named_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture,
                                               spoil, said: str) -> None:
    path = write(tmp_path, "today", "A", 0, confusion())
    record = json.loads(path.read_text())
    spoil(record)
    path.write_text(json.dumps(record))
    assert main(["--results", str(tmp_path), "--out", str(tmp_path / "t")]) == 3
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"{path}: " in err and said in err


def test_a_file_that_is_not_json_is_named(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "cut.json").write_text('{"arm": "today", "fold"')
    assert main(["--results", str(tmp_path), "--out", str(tmp_path / "t")]) == 3
    assert "cut.json: damaged or truncated fold result" in capsys.readouterr().err


def test_the_records_curves_are_drawn_per_fold(tmp_path: Path) -> None:
    per_class = [[10, [0.5] * N], [20, [0.6] * N]]
    write(tmp_path, "today", "A", 0, confusion(), curve=[[10, 0.38], [20, 0.41]],
          class_curve=per_class)
    write(tmp_path, "trunk", "A", 0, confusion(), curve=[[10, 0.39], [20, 0.43]])
    write(tmp_path, "trunk", "B", 0, confusion())  # an older record without a curve
    assert main(["--results", str(tmp_path), "--out", str(tmp_path / "t")]) == 0
    assert sorted(p.name for p in (tmp_path / "t").glob("*.png")) == [
        "fold_class_curves_a.png", "fold_curves_a.png"]


def test_a_paired_gain_is_shown_at_every_epoch_both_runs_were_evaluated(tmp_path: Path) -> None:
    write(tmp_path, "today", "B", 0, confusion(), curve=[[10, 0.40], [20, 0.42], [30, 0.41]])
    write(tmp_path, "trunk", "B", 0, confusion(), curve=[[10, 0.41], [30, 0.45], [40, 0.46]])
    write(tmp_path, "trunk", "A", 0, confusion(), curve=[[10, 0.41]])  # today has no fold A
    write(tmp_path, "today", "A", 1, confusion(), curve=[[10, 0.40]])  # trunk has no seed 1
    table = build(load_results(tmp_path), "today")
    [row] = table["gain_curves"]
    assert (row["arm"], row["against"], row["seed"], row["fold"]) == ("trunk", "today", 0, "B")
    assert [e for e, _ in row["gain"]] == [10, 30]  # the epochs both were evaluated at
    assert [round(100 * g, 6) for _, g in row["gain"]] == [1.0, 4.0]
    main(["--results", str(tmp_path), "--out", str(tmp_path / "t")])
    text = (tmp_path / "t" / "fold_table.md").read_text()
    assert "| `trunk` | `today` | 0 | B | 10: +1.0, 30: +4.0 |" in text


def test_the_class_curves_have_a_panel_per_class(tmp_path: Path, monkeypatch) -> None:
    import lgcnet_research.base.plots as plots

    drawn = {}
    monkeypatch.setattr(plots, "plot_val_grid", lambda panels, path, **kw: drawn.update(
        {path.name: panels}) or path)
    per_class = [[10, [0.1 * c for c in range(N)]], [20, [0.05 * c for c in range(N)]]]
    write(tmp_path, "today", "B", 1, confusion(), curve=[[10, 0.38], [20, 0.41]],
          class_curve=per_class)
    assert main(["--results", str(tmp_path), "--out", str(tmp_path / "t")]) == 0
    panels = drawn["fold_class_curves_b.png"]
    assert list(panels) == [*CAMVID.classes, "mIoU"]
    assert panels["pole"] == [("today (seed 1)", [10, 20], [0.1 * POLE, 0.05 * POLE])]
    assert panels["mIoU"] == [("today (seed 1)", [10, 20], [0.38, 0.41])]


def test_a_trade_arm_is_judged_by_what_it_costs(tmp_path: Path,
                                                capsys: pytest.CaptureFixture) -> None:
    write_both(tmp_path, "today", 0, 400)
    write_both(tmp_path, "trunk", 0, 0)
    write_both(tmp_path, "trunk+w16", 0, 10, trade="latency")  # 0.9 points under the trunk
    assert main(["--results", str(tmp_path), "--out", str(tmp_path / "table")]) == 0
    arms = {a["arm"]: a for a in json.loads(
        (tmp_path / "table" / "fold_table.json").read_text())["arms"]}
    w16 = arms["trunk+w16"]
    assert (w16["against"], w16["trade"]) == ("trunk", "latency")
    assert w16["mean_gain"] == pytest.approx(pooled_miou(10) - 1)
    assert (w16["verdict"], arms["trunk"]["trade"]) == ("keep", None)  # not "drop": < +2
    assert "| keep (latency: 1 seed, loss < 1 point) |" in capsys.readouterr().out
    write(tmp_path, "trunk+w16", "A", 1, confusion(), trade="speed")
    assert main(["--results", str(tmp_path), "--out", str(tmp_path / "table")]) == 3
    assert "arm trunk+w16: its records name different trades" in capsys.readouterr().err


def test_the_exposure_table_pools_the_brightened_folds_against_the_runs_own(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from experiments import exposure
    from lgcnet_research.train.fold_eval import FoldReport

    results, out = tmp_path / "results", tmp_path / "out"
    results.mkdir()
    write_both(results, "today", 0, errors=40)
    write(results, "trunk", "A", 0, confusion(10))  # fold B missing: not in the table
    evaluated: list[tuple[str, str, float]] = []

    def brightened(checkpoint: Path, fold: str, threads: int | None = None,
                   exposure_target: float | None = None) -> FoldReport:
        evaluated.append((str(checkpoint), fold, exposure_target))
        return FoldReport(str(checkpoint), fold, "drive", 2, 60, 60, True, 0.0, {},
                          confusion(0 if fold == "B" else 20).tolist(), exposure_target)

    monkeypatch.setattr(exposure, "evaluate_fold", brightened)
    argv = ["--results", str(results), "--out", str(out), "--target", "0.45"]
    assert exposure.main(argv) == 0
    assert evaluated == [("runs/fold_a_today_s0/last.pt", "A", 0.45),
                         ("runs/fold_b_today_s0/last.pt", "B", 0.45)]
    (row,) = json.loads((out / "exposure.json").read_text())["rows"]
    assert row["as_run"]["miou"] == pytest.approx(100 * pooled_miou(40))
    assert row["exposed"]["miou"] == pytest.approx(100 * pooled_miou(20))
    assert "| `today` | 0 |" in (out / "exposure.md").read_text()
    assert exposure.main(argv) == 0 and len(evaluated) == 2  # the reports in --out are read
    assert exposure.main([*argv[:-1], "1.5"]) == 3
