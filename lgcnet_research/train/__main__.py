"""`python -m lgcnet_research.train`: the training recipe (see trainer.py)."""

from lgcnet_research.train.trainer import main

raise SystemExit(main())
