"""`python -m training.cli`: the `kws-train` command without the installed script."""

import sys

from training.cli import main

sys.exit(main())
