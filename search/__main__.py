"""`python -m search`: the architecture search (see search/run.py)."""

from .run import main

raise SystemExit(main())
