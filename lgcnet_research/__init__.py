"""LGCNet research code: the paper's architecture search (`search/`), latency tables
(`latency/`), training the derived network (`train.py`, DDP via `distributed.py`), CamVid
augmentation, losses, backend parity checks and plots. Built on `lgcnet_deploy`; installed with
`pip install 'lgcnet-deploy[research]'`."""
