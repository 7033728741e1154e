"""LGCNet research library, what `lgcnet search|train|lut` run: the paper's architecture search
(`search/`), latency tables (`latency/`), training the derived network (`train.py`, DDP via
`distributed.py`), CamVid augmentation, losses and plots. Built on `lgcnet_deploy`; installed
with `pip install 'lgcnet-deploy[research]'`. The one-off studies built on it live in the
checkout's `experiments/`, outside the package."""
