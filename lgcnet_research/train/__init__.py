"""Training the derived network (layer 2, after `base/` and `latency/`): its settings
(`config.py`), CamVid and its augmentation (`data.py`), the sequence-held-out folds
(`folds.py`), losses and distillation (`losses.py`), EMA weights (`ema.py`), ImageNet weights
(`pretrained.py`), the teacher and the LR-ASPP peer (`teacher.py`, `peer.py`), the Trainer
(`trainer.py`, `python -m lgcnet_research.train`) and a fold run's evaluation
(`fold_eval.py`)."""
