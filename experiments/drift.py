"""`python -m experiments.drift` from the repository root; the program lives in fvjax.experiments.drift
(also `fvjax drift` once installed)."""

import sys

from fvjax.experiments.drift import *  # noqa: F401,F403
from fvjax.experiments.drift import main

if __name__ == "__main__":
    sys.exit(main())
