"""`python -m experiments.identifiability` from the repository root; the program lives in fvjax.experiments.identifiability
(also `fvjax identifiability` once installed)."""

import sys

from fvjax.experiments.identifiability import *  # noqa: F401,F403
from fvjax.experiments.identifiability import main

if __name__ == "__main__":
    sys.exit(main())
