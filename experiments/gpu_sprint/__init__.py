"""The GPU sprint: everything a lent GPU should answer, in one command that fits one device call.

    python -m experiments.gpu_sprint --out $OUT            # on the GPU (docs/gpu.md)
    python -m experiments.gpu_sprint --out runs/dry --dry-run   # seconds, on any CPU

Stages, in order of value, each in its own process under its own time box (`--box-STAGE`),
each switchable (`--stages`, `--skip`): env, tests (pytest -m gpu), speed (the paper's setting
on PyTorch-CUDA: eager, CUDA graphs, torch.compile; mask parity GPU vs CPU), lut (torch-cuda
latency table, Spearman rho), train (every run of the plan side by side: --train-configs and the
NAS sanity check's genotypes), search (--search-seeds side by side, their agreement). Default:
env, then train and search together (--together). OUT gets at most 8 files, no subfolders:
summary.json (rewritten after every result), sprint.log, the LUT, train_runs_<i>.tar +
train_curves.png, search.json + search_curves.png.
"""
