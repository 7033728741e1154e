"""`python -m lgcnet_deploy.cli ...`: the `lgcnet` command without its console script."""

import sys

from lgcnet_deploy.cli import main

sys.exit(main())
