"""`python -m lgcnet_research.search`: the architecture search (see run.py)."""

from lgcnet_research.search.run import main

raise SystemExit(main())
