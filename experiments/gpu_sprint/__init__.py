"""The GPU sprint: everything a GPU machine should answer, in one command of at most 10 minutes.

    python -m experiments.gpu_sprint --out $OUT            # on the GPU (README.md here)
    python -m experiments.gpu_sprint --out runs/dry --dry-run   # seconds, on any CPU

Stages, in order of value, each in its own process under its own time box (`--box-STAGE`), each
switchable (`--stages`, `--skip`): env, tests (pytest -m gpu), speed (the paper's setting on
PyTorch-CUDA: eager, CUDA graphs, torch.compile; mask parity GPU vs CPU), lut (torch-cuda
latency table, Spearman rho), train (every run of the plan side by side: the fold runs of
--train-plan, the accuracy campaign's queue, scored into its fold records and pooled table;
--train-configs; the NAS sanity check's genotypes), search (--search-seeds side by side, their
agreement; with --together beside train). Default: env, then train: the campaign's next open
screen beside the arm it is paired with, on folds A and B, seed 0. OUT gets at most 8 files,
no subfolders: summary.json (rewritten after every result), sprint.log, the LUT,
train_runs_<i>.tar + train_curves.png + fold_runs.tar (the fold records and their pooled
table), search.json + search_curves.png.
"""
