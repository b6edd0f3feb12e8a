"""fvjax: simulate the Drosophila visual system from its connectome and recover its parameters."""

__version__ = "0.1.0"

_LAZY = {
    "load_run": "runs", "compare_runs": "runs", "build_connectome": "connectome",
    "load_bundled": "groundtruth", "calibrated_prior": "groundtruth", "load_dataset": "dataset",
    "load_config": "config", "fit": "train", "run": "pipeline",
}


def __getattr__(name):
    """Entry points loaded on first use (``import fvjax`` stays light)."""
    if name in _LAZY:
        from importlib import import_module

        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'fvjax' has no attribute {name!r}")


__all__ = ["__version__", *_LAZY]
