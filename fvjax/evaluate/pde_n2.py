"""Recovery scores for the reference's synthetic network (``synthetic_model: PDE_N2``).

The network is ``du_i/dt = -c_i u_i + s_i tanh(u_i) + g_i sum_j W_ij tanh(u_j)`` (docs/synthetic.md);
the leaky-model probes of :mod:`fvjax.evaluate.metrics` (tau = -1/slope, V_rest, W divided by f_theta's slope)
do not apply to it. Each learned function is fitted where its neuron lives: on that neuron's own voltages
in ``n`` training frames spread over the split (an MLP is only constrained where the data put it; on a
grid pooled over all neurons, a neuron with a narrow range is scored on the MLP's extrapolation):

- g_phi(u_j) ~ k_j tanh(u_j) + b_j (least squares on source j's voltages), so the learned effective
  coupling is W*_ij = W_ij k_j, compared with the true g_i W_ij (``connectivity_R2``: affine R^2 over all
  off-diagonal pairs; with equal g_i and equal k_j it is the reference's R^2 of the raw W);
- the update at msg = 0, e = 0 on neuron i's voltages ~ alpha_i u + beta_i tanh(u) + gamma_i, so
  c_hat = -alpha, s_hat = beta (``c_R2``, ``s_R2``; ``tau_R2`` compares 1/c_hat with tau = 1/c);
- g_hat_i: the least-squares gain through the origin of row i of W* on the true row W_i
  (``g_R2``: NaN when every g_i is equal; ``g_rel_error``: median |g_hat - g| / |g|).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from .. import model as M
from ..dataset import voltage_sample
from .metrics import r2_affine

SCORE_FRAMES = 1000   # training frames whose voltages the functions are fitted on


def basis_fit(u: np.ndarray, f: np.ndarray, columns) -> np.ndarray:
    """Least squares of every row of f (N, P) on the basis columns(u_row) -> (N, n_basis); u is
    (N, P) (each row its own points) or (P,) (the same points for every row)."""
    f = np.asarray(f, np.float64)
    u = np.broadcast_to(np.asarray(u, np.float64), f.shape)
    A = np.stack([col(u) for col in columns], -1)              # (N, P, n_basis)
    return (np.linalg.pinv(A) @ f[..., None])[..., 0]


TANH_BASIS = (np.tanh, np.ones_like)                     # h ~ k tanh(u) + b
UPDATE_BASIS = (lambda u: u, np.tanh, np.ones_like)      # f ~ alpha u + beta tanh(u) + gamma


def learned_functions(params, spec: M.ModelSpec, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """g_phi (source j at u[j]) and the update at msg = 0, e = 0 (neuron i at u[i]); u (N, P) -> (N, P) each."""
    a = params["a"][:, None, :]
    r = jnp.asarray(u, jnp.float32)
    h = M.edge_function(params, spec, r, a)
    f = M.update_without_input(params, spec, r, a)
    return np.asarray(h, np.float64), np.asarray(f, np.float64)


def row_gains(W_true: np.ndarray, W_star: np.ndarray) -> np.ndarray:
    """Per row: argmin_g ||W*_i - g W_i||^2 (NaN for an all-zero true row)."""
    num, den = np.sum(W_star * W_true, 1), np.sum(W_true**2, 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / den, np.nan)


def pde_n2_scores(params, spec: M.ModelSpec, net, voltages: np.ndarray) -> tuple[dict, dict]:
    """(metrics, arrays) for a model trained on a PDE_N2 network ``net`` (a PDEN2Network);
    ``voltages`` (P, N): each neuron's observed voltages (:func:`fvjax.dataset.voltage_sample`)."""
    n = spec.n_nodes
    u = np.asarray(voltages, np.float64).T
    h, f = learned_functions(params, spec, u)
    k = basis_fit(u, h, TANH_BASIS)[:, 0]
    alpha, beta, _ = basis_fit(u, f, UPDATE_BASIS).T
    W_learned = np.asarray(M.weights(params, spec), np.float64).reshape(n, n)
    W_star = W_learned * k[None, :]
    W_true = np.asarray(net.matrix, np.float64)
    off = ~np.eye(n, dtype=bool)
    g_true, c_true, s_true = (np.asarray(x, np.float64) for x in (net.g, net.c, net.s))
    g_hat = row_gains(W_true, W_star)
    c_hat, s_hat = -alpha, beta
    with np.errstate(divide="ignore"):
        tau_hat = np.where(c_hat != 0, 1.0 / np.where(c_hat != 0, c_hat, 1.0), np.inf)
    ok = np.isfinite(g_hat)
    out = {"connectivity_R2": r2_affine((g_true[:, None] * W_true)[off], W_star[off])[0],
           "c_R2": r2_affine(c_true, c_hat)[0], "s_R2": r2_affine(s_true, s_hat)[0],
           "g_R2": r2_affine(g_true[ok], g_hat[ok])[0],
           "g_rel_error": float(np.median(np.abs(g_hat[ok] - g_true[ok]) / np.abs(g_true[ok]))),
           "tau_R2": r2_affine(1.0 / c_true, np.where(np.isfinite(tau_hat), tau_hat, 0.0))[0]}
    arrays = {"c_hat": c_hat, "s_hat": s_hat, "g_hat": g_hat, "g_phi_tanh_gain": k, "tau": tau_hat,
              "W": W_star.reshape(-1)}
    return out, arrays


def pde_n2_scores_on_data(params, spec: M.ModelSpec, net, data) -> tuple[dict, dict]:
    """:func:`pde_n2_scores` on the voltages of :data:`SCORE_FRAMES` training frames of ``data``."""
    return pde_n2_scores(params, spec, net, voltage_sample(data.train, SCORE_FRAMES))
