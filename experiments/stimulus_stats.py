"""`python -m experiments.stimulus_stats` from the repository root; the program lives in
fvjax.experiments.stimulus_stats."""

import sys

from fvjax.experiments.stimulus_stats import *  # noqa: F401,F403
from fvjax.experiments.stimulus_stats import main

if __name__ == "__main__":
    sys.exit(main())
