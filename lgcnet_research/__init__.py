"""LGCNet research library, what `lgcnet search|train|lut|folds` run. Its folders are its layers,
each importing only from the ones before it: `base/` (settings, DDP, plots, the search space's
edges), `latency/` (latency tables), `train/` (training the derived network: data, losses,
teacher, Trainer, folds), `search/` (the paper's architecture search) and `commands/` (the CLI's
entry points). Built on `lgcnet_deploy`; installed with `pip install 'lgcnet-deploy[research]'`.
The one-off studies built on it live in the checkout's `experiments/`, outside the package."""
