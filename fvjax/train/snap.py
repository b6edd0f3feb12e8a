"""The epoch-end embedding snap (``training.sparsity: replace_embedding_function``; fvjax's own,
deterministic version of the reference's step, docs/synthetic.md).

After epoch e (0-based) with e % freq == freq - 1 and e < n_epochs - freq:

1. profiles: the update f_theta at msg = 0, e = 0 of every neuron (with its embedding) on one grid of
   200 voltages between the 1st and 99th percentile of the training voltages;
2. clusters: single-linkage hierarchy on the profiles' 2-component PCA, scaled to [0, 1] by one
   global min and max, cut at distance ``cluster_distance_threshold`` (no ground-truth types);
3. each embedding a_i becomes the per-dimension median of a over its cluster;
4. f_theta alone is refit for 20 full-batch Adam steps so that, with the new embeddings, each
   neuron's profile approaches its cluster's median old profile (loss: un-squared L2 norm over all
   neurons and grid points); the step with the lowest loss is kept (Adam's first steps, each about lr
   per weight, can overshoot a loss that is already small).

The loop (:mod:`fvjax.train.loop`) then restarts Adam, and with ``fix_cluster_embedding`` keeps a and
g_phi at learning rate 0 for the one epoch after the snap (:func:`frozen_groups`).
"""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

from .. import model as M
from ..config import TrainingConfig
from .optim import group_lrs

GRID_POINTS = 200       # voltages per profile
GRID_FRAMES = 1000      # training frames (spread over the split) the grid's percentiles come from
REFIT_STEPS = 20        # full-batch Adam steps of the f_theta refit (the reference's)
FROZEN_AFTER_SNAP = ("a", "g_phi")   # groups at learning rate 0 in the epoch after a snap


def voltage_grid(voltages: np.ndarray, n_points: int = GRID_POINTS) -> np.ndarray:
    """``n_points`` voltages evenly between the 1st and 99th percentile of ``voltages`` (any shape)."""
    lo, hi = np.percentile(np.asarray(voltages, np.float64), [1.0, 99.0])
    return np.linspace(lo, hi, n_points)


def profiles(params: dict, spec: M.ModelSpec, grid) -> jax.Array:
    """(N, P) the update at msg = 0, e = 0 of every neuron i (embedding a_i) at the P grid voltages."""
    v = jnp.broadcast_to(jnp.asarray(grid, params["a"].dtype), (spec.n_nodes, len(grid)))
    return M.update_without_input(params, spec, v, params["a"][:, None, :])


def cluster_profiles(prof: np.ndarray, threshold: float) -> np.ndarray:
    """(N,) cluster labels 0..K-1 (in order of each cluster's first row) of the rows of ``prof`` (N, P):
    centred PCA to 2 components (SVD), min-max scaled to [0, 1] over the whole array (scaling each
    component apart would blow a noise-only second component up to the first's size), single
    linkage cut at distance ``threshold``."""
    from scipy.cluster.hierarchy import fcluster, linkage

    x = np.asarray(prof, np.float64)
    x = x - x.mean(0)
    if len(x) < 2:
        return np.zeros(len(x), np.int64)
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    proj = x @ vt[:2].T
    span = proj.max() - proj.min()
    if span == 0:           # every profile the same: one cluster
        return np.zeros(len(x), np.int64)
    proj = (proj - proj.min()) / span
    raw = fcluster(linkage(proj, method="single", metric="euclidean"), threshold, criterion="distance")
    _, first, inverse = np.unique(raw, return_index=True, return_inverse=True)
    return np.argsort(np.argsort(first))[inverse].astype(np.int64)     # numbered by their first neuron


def cluster_medians(x: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """(K, ...) the median over axis 0 of the rows of ``x`` in each cluster 0..K-1."""
    x = np.asarray(x, np.float64)
    return np.stack([np.median(x[labels == k], axis=0) for k in range(int(labels.max()) + 1)])


@lru_cache(maxsize=8)
def _refit_program(spec: M.ModelSpec, lr: float, steps: int):
    """Jitted (params, grid, target) -> (f_theta after ``steps`` Adam steps, loss before, loss after)."""
    opt = optax.adam(lr, b1=0.9, b2=0.999, eps=1e-8)

    def run(params, grid, target):
        def loss(f_theta):
            return jnp.linalg.norm(profiles({**params, "f_theta": f_theta}, spec, grid) - target)

        def body(carry, _):
            f_theta, state, best, best_loss = carry
            value, grad = jax.value_and_grad(loss)(f_theta)
            better = value < best_loss
            best = jax.tree.map(lambda new, old: jnp.where(better, new, old), f_theta, best)
            updates, state = opt.update(grad, state, f_theta)
            return (optax.apply_updates(f_theta, updates), state, best, jnp.minimum(value, best_loss)), value

        start = params["f_theta"]
        (last, _, best, best_loss), values = jax.lax.scan(
            body, (start, opt.init(start), start, jnp.asarray(jnp.inf, grid.dtype)), None, length=steps)
        last_loss = loss(last)
        keep_last = last_loss < best_loss
        f_theta = jax.tree.map(lambda x, y: jnp.where(keep_last, x, y), last, best)
        return f_theta, values[0], jnp.minimum(last_loss, best_loss)

    return jax.jit(run)


def refit_f_theta(params: dict, spec: M.ModelSpec, grid, target, lr: float,
                  steps: int = REFIT_STEPS) -> tuple[dict, tuple[float, float]]:
    """(params with the best f_theta of ``steps`` full-batch Adam steps on ||profiles - target||_2 (all
    neurons and grid points; the start counts), (loss before, loss after)); every other parameter is
    returned as it is."""
    dtype = params["a"].dtype
    f_theta, before, after = _refit_program(spec, float(lr), int(steps))(
        params, jnp.asarray(grid, dtype), jnp.asarray(target, dtype))
    return {**params, "f_theta": f_theta}, (float(before), float(after))


def snap_embeddings(params: dict, spec: M.ModelSpec, voltages: np.ndarray, tr: TrainingConfig) -> tuple[dict, dict]:
    """(new params, info): cluster, replace the embeddings, refit f_theta (module docstring);
    ``voltages`` are training voltages the grid is taken from."""
    grid = voltage_grid(voltages)
    old = np.asarray(profiles(params, spec, grid), np.float64)
    labels = cluster_profiles(old, tr.cluster_distance_threshold)
    a = cluster_medians(params["a"], labels)[labels]
    snapped = {**params, "a": jnp.asarray(a, params["a"].dtype)}
    snapped, (before, after) = refit_f_theta(snapped, spec, grid, cluster_medians(old, labels)[labels],
                                             group_lrs(tr)["f_theta"])
    info = {"n_clusters": int(labels.max()) + 1, "cluster_sizes": np.bincount(labels).tolist(),
            "grid": [float(grid[0]), float(grid[-1])], "refit_loss": [before, after], "labels": labels.tolist()}
    return snapped, info


# training.sparsity -> the epoch-end step (None: no step)
SNAPS = {"none": None, "replace_embedding_function": snap_embeddings}


def snap_due(tr: TrainingConfig, epoch: int) -> bool:
    """Does the snap run at the end of ``epoch`` (0-based)? The reference's condition; never with one epoch."""
    f = tr.sparsity_freq
    return SNAPS[tr.sparsity] is not None and epoch % f == f - 1 and epoch < tr.n_epochs - f


def frozen_groups(tr: TrainingConfig, epoch: int) -> tuple[str, ...]:
    """Parameter groups held at learning rate 0 during ``epoch`` (the one after a snap)."""
    return FROZEN_AFTER_SNAP if tr.fix_cluster_embedding and epoch > 0 and snap_due(tr, epoch - 1) else ()


def record_snap(run_dir: Path, epoch: int, info: dict) -> None:
    """Add (or replace, after a resume) the snap of ``epoch`` in ``run_dir/snaps.json``, atomically."""
    path = Path(run_dir) / "snaps.json"
    snaps = json.loads(path.read_text()) if path.exists() else []
    snaps = [s for s in snaps if s["epoch"] != epoch] + [{"epoch": epoch, **info}]
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(sorted(snaps, key=lambda s: s["epoch"]), indent=1))
    os.replace(tmp, path)
