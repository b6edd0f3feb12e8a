"""`python -m experiments.refit` from the repository root; the program lives in fvjax.experiments.refit
(also `fvjax refit` once installed)."""

import sys

from fvjax.experiments.refit import *  # noqa: F401,F403
from fvjax.experiments.refit import main

if __name__ == "__main__":
    sys.exit(main())
