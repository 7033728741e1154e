"""`--plan`: the sprint's plan, checked in seconds without running a stage.

What a GPU run would do and whether its inputs are there: the stages in order (those that
start together grouped), each one's time box against the budget, every training run of stage
train (the fold runs of --train-plan with their arm, fold, seed and epochs; every TrainConfig
loaded; the sanity check's runs named), stage search's config and seeds, the files the plan
names (warm starts, teachers, cached targets, genotypes, the latency table), the ImageNet
weights when a run starts from them, the CamVid folder, and the payload beside the tree
(`.carry/`) against its budget. OUT/summary.json gets the plan; a problem is listed and
makes the exit status 1.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from experiments.gpu_sprint import trainings
from experiments.gpu_sprint.carry import (
    CARRY,
    CarryError,
    check_travel,
    payload_total,
    travel_bytes,
)
from experiments.gpu_sprint.config import NEXT_SCREEN, STAGES, SprintConfig
from experiments.gpu_sprint.context import REPO
from experiments.gpu_sprint.runner import GRACE_S, Summary, camvid_for_sprint, stage_groups
from lgcnet_deploy.core.errors import LgcnetError

if TYPE_CHECKING:
    from experiments.campaign import Run

# TrainConfig fields that name a file or, teacher_targets, a folder
FILE_FIELDS = ("init", "init_matching", "teacher", "teacher_targets")
SHOWN = ("model", "genotype", "epochs", "fold")  # what the plan shows of a run


def _train_plan(cfg: SprintConfig, imagenet: str, problems: list[str]) -> dict[str, Any]:
    """Stage train's runs in plan order, each config loaded and the files it names checked."""
    from experiments.sanity import SanityConfig
    from lgcnet_research.train.config import TrainConfig

    runs: dict[str, dict[str, Any]] = {}
    for name, step, fields in _plan_steps(cfg, problems):
        runs[name] = {**{k: fields[k] for k in SHOWN}, "arm": step.arm, "seed": fields["seed"]}
        _check_files(name, fields, imagenet, problems)
    for path in cfg.train_configs:
        fields = TrainConfig.load(path).to_dict()
        if Path(path).stem in runs:
            problems.append(f"train: two runs named {Path(path).stem} (rename {path})")
        runs[Path(path).stem] = {k: fields[k] for k in SHOWN}
        _check_files(Path(path).stem, fields, imagenet, problems)
    if cfg.sanity_config:
        scfg = SanityConfig.load(cfg.sanity_config)
        TrainConfig.from_dict(scfg.recipe)  # the one recipe of every sanity run
        _check_genotype("sanity check", scfg.genotype, problems)
        for name in ["sanity-searched", *(f"sanity-random-{i}" for i in range(scfg.n_random))]:
            runs[name] = {"genotype": scfg.genotype if name == "sanity-searched" else "drawn",
                          "epochs": scfg.recipe.get("epochs")}
    if not runs:
        problems.append("train: nothing to train (give --train-plan, --train-configs and/or "
                        "--sanity-config)")
    return {"runs": runs, "schedule": cfg.train_schedule, "plan": cfg.train_plan,
            "fold_runs": sum(r.get("arm") is not None for r in runs.values())}


def _plan_steps(cfg: SprintConfig, problems: list[str]
                ) -> list[tuple[str, Run, dict[str, Any]]]:
    """The plan's steps, each with its run's name and its TrainConfig fields on the GPU; a plan
    that does not load, or names one run twice, is a problem."""
    try:
        steps = [(step.out.name, step, trainings.gpu_step(step).settings().to_dict())
                 for step in trainings.plan_steps(cfg)]
    except (LgcnetError, OSError, ValueError) as e:
        problems.append(f"train plan {cfg.train_plan}: {e}")
        return []
    if len({name for name, _, _ in steps}) < len(steps):
        problems.append(f"train plan {cfg.train_plan}: two of its steps write one run folder")
    if cfg.train_plan and not steps and cfg.train_arms == (NEXT_SCREEN,):
        problems.append(f"train plan {cfg.train_plan}: no open screen a GPU run can carry "
                        f"(every idea has its fold records, waits for a verdict or distils "
                        f"from cached targets); name the arms with --train-arms")
    elif cfg.train_plan and not steps:
        problems.append(f"train plan {cfg.train_plan}: no training step of arms "
                        f"{list(cfg.train_arms) or 'any'} and seeds "
                        f"{list(cfg.train_seeds) or 'any'}")
    return steps


def _check_files(run: str, fields: dict[str, Any], imagenet: str, problems: list[str]) -> None:
    for key in FILE_FIELDS:
        if fields.get(key) and not Path(fields[key]).exists():
            problems.append(f"train run {run}: its {key} {fields[key]} is missing")
    if fields.get("genotype"):
        _check_genotype(f"train run {run}", fields["genotype"], problems)
    if (fields["imagenet_stem"] or fields["model"].startswith("effnet")) and \
            imagenet.startswith("none"):
        problems.append(f"train run {run} starts from ImageNet weights: {imagenet}")


def _check_genotype(who: str, genotype: str, problems: list[str]) -> None:
    from lgcnet_deploy.model.genotype import load_genotype

    try:
        load_genotype(genotype)
    except (OSError, ValueError, KeyError) as e:
        problems.append(f"{who}: genotype {genotype} does not load ({e})")


def _search_plan(cfg: SprintConfig, problems: list[str]) -> dict[str, Any]:
    from lgcnet_research.search.config import SearchConfig

    scfg = SearchConfig.load(cfg.search_config) if cfg.search_config else SearchConfig()
    if "lut" not in cfg.selected() and scfg.lut and not Path(scfg.lut).is_file():
        problems.append(f"search: its latency table {scfg.lut} is missing (or select stage lut)")
    return {"config": cfg.search_config or "the paper's settings", "seeds": list(cfg.search_seeds),
            "steps": scfg.steps, "lut": scfg.lut}


def _payload(problems: list[str]) -> dict[str, Any]:
    """The payload beside the tree, when `.carry/` is there (`make gpu-carry` makes it)."""
    if not CARRY.is_dir():
        return {"carry": None, "note": "no .carry/: CamVid must come from --data or "
                                       "$LGCNET_CAMVID on the GPU machine"}
    sizes = travel_bytes(REPO, sorted(CARRY.iterdir()))
    try:
        check_travel(sizes)
    except CarryError as e:
        problems.append(f"payload: {str(e).splitlines()[-1]}")
    return {"bytes": sizes, "total_mib": round(sum(sizes.values()) / 2**20, 1)}


def plan_sprint(cfg: SprintConfig, header: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The plan of `cfg` as summary.json holds it (every stage 'planned' or 'off'), and the
    problems found."""
    problems: list[str] = []
    groups = stage_groups(cfg, STAGES)
    summary = Summary(Path(cfg.out) / "summary.json", {**header, "plan": True})
    for name in STAGES:
        fields: dict[str, Any] = {"status": "off"}
        if name in cfg.selected():
            fields = {"status": "planned", "box_s": cfg.box(name)}
            if name == "train":
                fields |= _train_plan(cfg, header["imagenet"], problems)
            elif name == "search":
                fields |= _search_plan(cfg, problems)
        summary.stage(name, **fields)
    boxes = sum(max(cfg.box(s) for s in g) for g in groups if set(g) & set(cfg.selected()))
    data = camvid_for_sprint(cfg.data)
    if not (data / "train").is_dir():
        problems.append(f"CamVid: no train split under {data} (give --data or run "
                        f"`make gpu-carry`)")
    summary.data["sprint"].update(
        groups=[[s for s in g if s in cfg.selected()] for g in groups if set(g) & set(
            cfg.selected())],
        boxes_s=boxes, fits_budget=boxes + GRACE_S <= cfg.budget, camvid=str(data),
        payload=_payload(problems), problems=problems)
    summary.write()
    return summary.data, problems


def report(plan: dict[str, Any]) -> str:
    """The plan as the lines printed to the console."""
    head = plan["sprint"]
    lines = [f"plan: {' -> '.join('+'.join(g) for g in head['groups'])}; boxes "
             f"{head['boxes_s']:.0f} s of the budget {head['config']['budget']:.0f} s"
             + ("" if head["fits_budget"] else " (the later stages would be cut short)")]
    for name, stage in plan["stages"].items():
        extra = ", ".join(stage.get("runs", {})) or (
            f"seeds {stage['seeds']} of {stage['config']}" if "seeds" in stage else "")
        lines.append(f"  {name:<7} {stage['status']:<8} {extra}")
    payload = head["payload"]
    if "bytes" in payload:
        lines.append(f"  payload (tree and .carry/): {payload_total(payload['bytes'])}")
    lines += [f"  problem: {p}" for p in head["problems"]] or ["  no problems found"]
    return "\n".join(lines)
