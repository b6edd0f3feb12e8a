"""`python -m experiments.understand` from the repository root; the program lives in fvjax.experiments.understand
(also `fvjax understand` once installed)."""

import sys

from fvjax.experiments.understand import *  # noqa: F401,F403
from fvjax.experiments.understand import main

if __name__ == "__main__":
    sys.exit(main())
