"""Least-squares refit of W (``training.W_refit_every``; fvjax's own, off by default).

With the additive update dv_i = f_theta(v_i, a_i) + sum_j W_ij g_phi(v_j) + e_i the prediction is
linear in W, so for fixed MLPs the W minimising the squared error over a set of frames solves one
ridge system. Gradient steps converge slowly along the activity's weak directions (on the PDE_N2
network the Gram matrix of tanh(u) has condition number ~3e6, docs/synthetic.md), which is what
limits the learned W; jumping to the least-squares W every few thousand steps removes that lag
while the MLPs keep learning by gradient. The diagonal stays zero: each row's solution with
W_ii = 0 is the unconstrained one minus (w_ii / P_ii) P_i, P = (H^T H + ridge I)^-1.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from .. import model as M
from ..dataset import Dataset, read_rows, spread_frames


def _features(params, spec: M.ModelSpec, graph: M.Graph, volts, stims, chunk: int = 1024):
    """(H, F): g_phi at the frames and the prediction without messages, float64 (T, N)."""
    hs, fs = [], []
    for s in range(0, len(volts), chunk):
        v = jnp.asarray(volts[s:s + chunk])
        e = M.node_stimulus(graph, jnp.asarray(stims[s:s + chunk]), spec.n_nodes)
        hs.append(np.asarray(M.edge_function(params, spec, v, params["a"]), np.float64))
        fs.append(np.asarray(M.update_function(params, spec, v, params["a"], jnp.zeros_like(v), e), np.float64))
    return np.concatenate(hs), np.concatenate(fs)


def least_squares_W(H: np.ndarray, R: np.ndarray, ridge: float) -> np.ndarray:
    """argmin_W sum_t ||R_t - W H_t||^2 + ridge ||W||^2 with a zero diagonal; H, R: (T, N) -> W (N, N)."""
    n = H.shape[1]
    P = np.linalg.inv(H.T @ H + ridge * np.eye(n))
    W = (R.T @ H) @ P
    W = W - (np.diag(W) / np.diag(P))[:, None] * P
    np.fill_diagonal(W, 0.0)
    return W


def refit_W(params: dict, spec: M.ModelSpec, graph: M.Graph, data: Dataset, n_frames: int, ridge: float) -> dict:
    """``params`` with W replaced by its least-squares value given the current g_phi, f_theta, a."""
    if spec.update != "additive" or not spec.all_to_all or spec.low_rank:
        raise ValueError("the W refit needs the additive update on a dense, full-rank W")
    frames = spread_frames(len(data.train), n_frames)
    volts, target = read_rows(data.train.voltage, frames), read_rows(data.train.target, frames)
    H, F = _features(params, spec, graph, volts, read_rows(data.train.stimulus, frames))
    W = least_squares_W(H, np.asarray(target, np.float64) - F, ridge)
    return {**params, "W": jnp.asarray(W.reshape(-1), params["W"].dtype)}
