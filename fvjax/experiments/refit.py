"""What the end-of-training refit (``training.refit_at_end``) gives on a finished run, or what other refit
settings give on a run that had it: W and a per-neuron constant input b set to their least-squares values
given the run's learned g_phi, f_theta, f_gain and embeddings (fvjax.train.refit.refit_edges;
docs/training.md). Scores the run's
parameters before and after with the full evaluation; changes nothing in the run folder except
``RUN/refit_check.json``, which records both.

    python -m experiments.refit runs/vrest/default_seed7
    python -m experiments.refit RUN --frames 16000 --ridge 1e-6
    python -m experiments.refit RUN --from-zero --ridge 1e-5   # the ridge pulls towards W = 0, b = 0

New runs get the refit from ``training.refit_at_end`` (in ``experiments.vrest``'s fvjax recipe); on such a
run this command starts from the trained W (not RUN/refit.npz) and leaves RUN/refit.npz and metrics.json alone.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

KEYS = ("connectivity_R2", "connectivity_R2_data", "tau_R2", "V_rest_R2", "V_rest_R2_data", "V_rest_R2_offset",
        "cluster_accuracy",
        "test_R2", "test_pearson")


def main(argv=None) -> int:
    from fvjax.config import TrainingConfig

    defaults = TrainingConfig()
    p = argparse.ArgumentParser(prog="python -m experiments.refit", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", help="a finished run folder (flyvis_A, additive or gain update)")
    p.add_argument("--frames", type=int, default=defaults.refit_frames,
                   help=f"training frames the refit solves over (default {defaults.refit_frames})")
    p.add_argument("--ridge", type=float, default=defaults.refit_ridge,
                   help=f"ridge relative to each neuron's mean Gram diagonal (default {defaults.refit_ridge:g})")
    p.add_argument("--from-zero", action="store_true",
                   help="pull the ridge towards W = 0 and b = 0 instead of the trained values")
    args = p.parse_args(argv)
    if args.frames < 1 or args.ridge < 0:
        print("error: --frames must be >= 1 and --ridge >= 0", file=sys.stderr)
        return 2
    from fvjax.dataset import DatasetError
    from fvjax.runs import load_run

    try:
        run = load_run(args.run)
        params, spec = run.params(last=True, refit=False)
        data = run.dataset
    except (FileNotFoundError, DatasetError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if not spec.edge_refittable:
        print(f"error: {args.run}: the refit needs signal_model_name flyvis_A and update_type additive or gain; "
              f"this run has {spec.variant}, {spec.update}", file=sys.stderr)
        return 2
    return _compare(run, params, spec, args.frames, args.ridge, args.from_zero)


def _compare(run, params, spec, frames: int, ridge: float, from_zero: bool = False) -> int:
    import jax.numpy as jnp

    from fvjax.evaluate.report import atomic_write_text
    from fvjax.pipeline import evaluate_params
    from fvjax.train.loop import hold_silent
    from fvjax.train.refit import refit_edges

    cfg, data, graph = run.config, run.dataset, run.graph
    tick = time.time()
    start = ({**{k: v for k, v in params.items() if k != "b"}, "W": jnp.zeros_like(params["W"])} if from_zero
             else params)
    refit, (before, after) = refit_edges(start, spec, hold_silent(cfg, data, graph, spec), data, frames, ridge)
    minutes = (time.time() - tick) / 60
    scores = {}
    for name, p in (("trained", params), ("refit", refit)):
        metrics = evaluate_params(cfg, p, spec, data, run.nodes, run.ground_truth, graph)[0]
        scores[name] = {k: float(metrics[k]) for k in KEYS if k in metrics}
    print(f"{'':22s}{'trained':>10s}{'refit':>10s}")
    for k in scores["trained"]:
        print(f"{k:22s}{scores['trained'][k]:10.4f}{scores['refit'][k]:10.4f}")
    print(f"residual rms {before:.4g} -> {after:.4g}; refit over {frames} frames, ridge {ridge:g}"
          f"{' towards 0' if from_zero else ''}, {minutes:.1f} min")
    out = Path(run.path) / "refit_check.json"
    atomic_write_text(out, json.dumps({"frames": frames, "ridge": ridge, "from_zero": from_zero,
                                       "rms_before": before, "rms_after": after,
                                       "refit_time_min": round(minutes, 2), **scores}, indent=1))
    print(f"written {out}")
    return 0
