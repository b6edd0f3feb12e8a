"""`python -m experiments.vrest` from the repository root; the program lives in fvjax.experiments.vrest
(also `fvjax vrest` once installed)."""

import sys

from fvjax.experiments.vrest import *  # noqa: F401,F403
from fvjax.experiments.vrest import main

if __name__ == "__main__":
    sys.exit(main())
