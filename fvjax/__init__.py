"""fvjax: simulate the Drosophila visual system from its connectome and recover its parameters."""

__version__ = "0.1.0"
