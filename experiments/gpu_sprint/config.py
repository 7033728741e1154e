"""The sprint's settings (`lgcnet_research.base.settings` style: `--config` JSON, then flags).

Torch-free, so `python -m experiments.gpu_sprint -h` answers at once. Every stage has a
time box (`--box-STAGE SECONDS`) and can be switched off (`--skip STAGE ...`) or picked
(`--stages STAGE ...`); `--budget` bounds the whole run, so a stage that ends early leaves its
seconds to the next ones and the last ones get only what is left. The stages of `--together`
(default: train and search) start at the same moment, each under its own box: their small
nets leave a launch-bound GPU mostly idle, so they share it at little cost.

The default is what the next sprint should answer: env, then the accuracy campaign's next
open screen, the first idea `X+Y` in its queue with no committed fold record that needs no
cached teacher targets, against the arm `X` it is paired with, on folds A and B
(`--train-plan`: the campaign's queue, `--train-arms next`, `--train-seeds`), seed 0, four runs
side by side, each with the campaign's recipe to its fixed final epoch and only the GPU
switches added; each finished run is scored on its held-out drive into the campaign's fold
record, and the pooled-fold table is made from them. Eight runs at their fixed epochs do not
fit one box (README.md). `--stages env tests speed lut train search` runs every stage;
`--train-configs FILE...` adds plain TrainConfig runs (`--train-plan ''`: those alone) and
`--sanity-config experiments/configs/sanity/camvid_gpu.json` the NAS sanity check's genotypes
to stage train.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from lgcnet_research.base.settings import Settings

# In order of value: what a GPU run should answer first comes first.
STAGES = ("env", "tests", "speed", "lut", "train", "search")
SPEED_MODES = ("eager", "graph", "compile")
TRAIN_SCHEDULES = ("time", "epochs")
NEXT_SCREEN = "next"  # --train-arms' default: the campaign's next open screen and its pair


@dataclass
class SprintConfig(Settings):
    KIND: ClassVar[str] = "sprint"
    CHOICES: ClassVar[dict[str, tuple[str, ...]]] = {"train_schedule": TRAIN_SCHEDULES}
    HELP: ClassVar[dict[str, str]] = {
        "out": "results folder ($OUT on the GPU machine): at most 8 files, no subfolders",
        "stages": f"stages to run, in this order: {' '.join(STAGES)}",
        "skip": "stages to leave out",
        "budget": "seconds for the whole sprint (a GPU run's command may run 600)",
        "box_env": "time box of stage env (GPU, driver, torch/CUDA, Triton, tensorrt?)",
        "box_tests": "time box of stage tests (pytest -m gpu)",
        "box_speed": "time box of stage speed (paper setting: eager, CUDA graphs, "
                     "torch.compile; mask parity GPU vs CPU)",
        "box_lut": "time box of stage lut (torch-cuda latency table and its Spearman rho)",
        "box_train": "time box of stage train (every run of the plan, side by side)",
        "box_search": "time box of stage search (its seeds side by side, --search-config)",
        "together": "selected stages that start at the same moment (after the ones before)",
        "dry_run": "tiny sizes on any device: the CPU check that the sprint still runs",
        "plan": "run nothing: check the plan (stages, boxes, every config and the files it "
                "names, CamVid, the payload's size) and write it to summary.json",
        "device": "auto (cuda if present), cuda or cpu",
        "data": "CamVid root (default: $LGCNET_CAMVID, else .carry/camvid)",
        "train_plan": "stage train's fold runs: a queue in experiments.campaign's format "
                      "(its training steps; '': none), each to its final epoch with the GPU "
                      "switches, scored into the campaign's fold record and the pooled table",
        "train_arms": f"only the plan's runs of these arms ({NEXT_SCREEN}: the queue's next "
                      f"open screen without cached targets, and the arm it is paired with, "
                      f"from the committed fold records; none given: every training step)",
        "train_seeds": "only the plan's runs of these seeds (none given: every seed)",
        "train_configs": "TrainConfig JSONs that stage train also runs, one process each (none: "
                         "no flag values)",
        "sanity_config": "SanityConfig JSON: stage train also trains its searched genotype and "
                         "its random genotypes at the same predicted latency with its recipe "
                         "('': none)",
        "train_schedule": "of --train-configs and the sanity check's runs (a plan's fold runs "
                          "always run their epochs): time: every run's poly LR spans the box "
                          "(equal seconds, own epochs); epochs: each run's own epochs, the box "
                          "only stops it",
        "search_config": "SearchConfig JSON of stage search ('': the paper's settings); its "
                         "widths also set stage lut's table, its `lut` is used unless stage "
                         "lut made one in this run",
        "search_seeds": "seeds of stage search, one process each, then their agreement",
        "speed_modes": f"modes of stage speed: {' '.join(SPEED_MODES)}",
        "speed_iters": "timed calls per model and mode (network; a third of it end to end)",
        "parity_frames": "CamVid val frames for the GPU-vs-CPU mask parity",
        "lut_genotypes": "random genotypes measured against the latency table",
        "pytest_args": "arguments of stage tests' pytest run, as one string",
        "note": "free text stored in summary.json (e.g. the commit the tree came from)",
    }

    out: str = "runs/gpu_sprint"
    stages: tuple[str, ...] = ("env", "train")
    skip: tuple[str, ...] = ()
    budget: float = 510.0
    box_env: float = 30.0
    box_tests: float = 90.0
    box_speed: float = 150.0
    box_lut: float = 90.0
    box_train: float = 475.0
    box_search: float = 450.0
    together: tuple[str, ...] = ("train", "search")
    dry_run: bool = False
    plan: bool = False
    device: str = "auto"
    data: str | None = None
    train_plan: str | None = "experiments/configs/campaign.json"
    train_arms: tuple[str, ...] = (NEXT_SCREEN,)
    train_seeds: tuple[int, ...] = (0,)
    train_configs: tuple[str, ...] = ()
    sanity_config: str | None = None
    train_schedule: str = "epochs"
    search_config: str | None = "experiments/configs/gpu_sprint/camvid_gpu_soft.json"
    search_seeds: tuple[int, ...] = (0, 1)
    speed_modes: tuple[str, ...] = SPEED_MODES
    speed_iters: int = 300
    parity_frames: int = 30
    lut_genotypes: int = 10
    pytest_args: str = "-m gpu tests"
    note: str | None = None

    def __post_init__(self) -> None:
        for field, allowed in (("stages", STAGES), ("skip", STAGES), ("together", STAGES),
                               ("speed_modes", SPEED_MODES)):
            unknown = sorted(set(getattr(self, field)) - set(allowed))
            if unknown:
                raise ValueError(f"sprint setting {field}: unknown {', '.join(unknown)}; "
                                 f"choose from {', '.join(allowed)}")

    def box(self, stage: str) -> float:
        return getattr(self, f"box_{stage}")

    def selected(self) -> list[str]:
        """The stages to run, in the sprint's order."""
        return [s for s in STAGES if s in self.stages and s not in self.skip]
