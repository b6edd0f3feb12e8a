"""`python -m experiments.explore` from the repository root; the program lives in fvjax.experiments.explore
(also `fvjax explore` once installed)."""

import sys

from fvjax.experiments.explore import *  # noqa: F401,F403
from fvjax.experiments.explore import main

if __name__ == "__main__":
    sys.exit(main())
