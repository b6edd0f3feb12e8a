"""Evaluation of a trained model against its ground truth, in six rooms:

- ``report``: the end-of-run evaluation (:func:`evaluate`, :func:`quick_metrics`), ``analysis.log``,
  ``metrics.json`` and ``recovered.npz``;
- ``metrics``: the metric functions (R², recovered W*/tau/V_rest, clustering, rollouts; docs/metrics.md);
- ``diagnostics``: why a model was (not) recovered (docs/diagnostics.md, docs/drift.md);
- ``pde_n2``: the scores for the PDE_N2 synthetic ground truth (docs/synthetic.md);
- ``tuning``: direction selectivity of the true and the recovered circuit (``fvjax tuning RUN``);
- ``plots``: the figures.

The names of ``report`` are re-exported here (``from fvjax.evaluate import evaluate``) and loaded on
first use, so ``import fvjax.evaluate.plots`` does not pull in jax and the dataset code.
"""

_REPORT = ("probe_frames", "recovered", "field_scores", "NETWORK_SCORES", "RELU_NETWORKS", "network_scores",
           "quick_metrics", "test_scores", "SPECTRAL_RADIUS", "evaluate", "write_analysis_log", "atomic_write_text",
           "write_metrics")


def __getattr__(name):
    """The names of ``report``, loaded on first use."""
    if name in _REPORT:
        from importlib import import_module

        value = getattr(import_module(".report", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted({*globals(), *_REPORT})


__all__ = list(_REPORT)
