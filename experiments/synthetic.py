"""`python -m experiments.synthetic` from the repository root; the program lives in fvjax.experiments.synthetic
(also `fvjax synthetic` once installed)."""

import sys

from fvjax.experiments.synthetic import *  # noqa: F401,F403
from fvjax.experiments.synthetic import main

if __name__ == "__main__":
    sys.exit(main())
