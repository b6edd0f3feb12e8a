"""Least-squares refits of W (fvjax's own, off by default).

``training.W_refit_every`` (dense W, additive update; below) and ``training.refit_at_end`` (edge-list W and a
per-neuron constant b, additive or gain update; :func:`refit_edges`, end of this module).

With the additive update dv_i = f_theta(v_i, a_i) + sum_j W_ij g_phi(v_j) + e_i the prediction is
linear in W, so for fixed MLPs the W minimising the squared error over a set of frames solves one
ridge system. Gradient steps converge slowly along the activity's weak directions (on the PDE_N2
network the Gram matrix of tanh(u) has condition number ~3e6, docs/synthetic.md), which is what
limits the learned W; jumping to the least-squares W every few thousand steps removes that lag
while the MLPs keep learning by gradient. The diagonal stays zero: each row's solution with
W_ii = 0 is the unconstrained one minus (w_ii / P_ii) P_i, P = (H^T H + ridge I)^-1.
"""

from __future__ import annotations

import jax
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


# ----------------------------------------------------------------------------- edge-list W and b


# compiled once per model (spec static): 2.3x faster than op by op on the refit's (500, N) chunks, same values
_edge_function = jax.jit(M.edge_function, static_argnums=1)
_f_theta_of_voltage = jax.jit(M._f_theta_of_voltage, static_argnums=1)


def edge_features(params: dict, spec: M.ModelSpec, graph: M.Graph, volts, stims, target, chunk: int = 500,
                  frames=None):
    """(H, R), float64 (T, N), for the additive and gain updates on an edge-list W (flyvis_A):
    H = g_phi([v_j, a_j]) per source node, and R = what sum_j W_ij H_j + b_i must explain at neuron i,
    (y_i - f_theta([v_i, a_i])) / (1 + f_gain(a_i)) - e_i (gain) or y_i - f_theta([v_i, a_i]) - e_i (additive).
    e is the recorded stimulus, or with a learned visual field (``field: visual``) the field at the training
    frame indices ``frames`` (T,)."""
    if spec.learns_field and frames is None:
        raise ValueError("a model with a learned visual field needs the frames' indices (frames=)")
    gain = (np.asarray(M.message_gain(params, spec, params["a"]), np.float64) if spec.update == "gain"
            else np.ones(spec.n_nodes))
    H = np.empty((len(volts), spec.n_nodes))
    R = np.empty_like(H)
    for s in range(0, len(volts), chunk):
        v = jnp.asarray(volts[s:s + chunk])
        stim = (M.visual_field(params, spec, graph, jnp.asarray(frames[s:s + chunk])) if spec.learns_field
                else jnp.asarray(stims[s:s + chunk]))
        e = np.asarray(M.node_stimulus(graph, stim, spec.n_nodes), np.float64)
        H[s:s + chunk] = np.asarray(_edge_function(params, spec, v, params["a"]), np.float64)
        f = np.asarray(_f_theta_of_voltage(params, spec, v, params["a"]), np.float64)
        R[s:s + chunk] = (np.asarray(target[s:s + chunk], np.float64) - f) / gain - e
    return H, R


def _by_degree(dst: np.ndarray, kept: np.ndarray, n: int) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """degree d -> (targets (m,), their kept edges (m, d)), edges in their original order per target."""
    edges = np.flatnonzero(kept)
    edges = edges[np.argsort(dst[edges], kind="stable")]
    degree = np.bincount(dst[edges], minlength=n)
    starts = np.r_[0, np.cumsum(degree)]
    out = {}
    for d in np.unique(degree):
        targets = np.flatnonzero(degree == d)
        out[int(d)] = (targets, edges[starts[targets][:, None] + np.arange(d)[None, :]])
    return out


def edge_least_squares(H, R, src, dst, kept, W0, b0, ridge: float, block: int = 20_000_000):
    """:func:`solve_edges` on one BLAS thread. Its products and solves are small per degree group; alone the
    default OpenBLAS pool was no faster (1,000 frames: 3.32 s vs 3.28 s), with other work on the cores (a second
    run, a cluster node's other tasks) it was 4.7x slower (two busy processes) to 30x (beside a training run)
    (benchmarks/refit.py --threads; docs/decisions.md)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1, user_api="blas"):
        return solve_edges(H, R, src, dst, kept, W0, b0, ridge, block)


def solve_edges(H, R, src, dst, kept, W0, b0, ridge: float, block: int = 20_000_000):
    """Per target neuron i, the (W_i, b_i) minimising sum_t (R_ti - sum_e W_e H_t,src(e) - b_i)^2
    + lam_i ||(W_i, b_i) - (W0_i, b0_i)||^2 over its ``kept`` edges (the others are held at 0, as
    ``training.hold_silent_sources`` holds them), with
    lam_i = ``ridge`` (+ 1e-12) times the mean diagonal of neuron i's Gram matrix: directions the frames do not
    determine stay where they were. H, R: (T, N); W0 (E,), b0 (N,) -> (W, b, rms): float64, and the root mean
    square of the residual R - messages - b over all neurons and frames before and after.

    Targets of equal in-degree d are solved together: their regressors are gathered as rows of H^T, (m, d + 1, T)
    with a row of ones for b, and the Gram matrices formed by one batched product (``np.einsum`` with
    ``optimize``, which runs it as BLAS products; numpy's plain batched einsum on (T, m, d + 1) gathers was
    ~7x slower on the full graph, benchmarks/refit.py)."""
    HT = np.ascontiguousarray(np.asarray(H, np.float64).T)          # (N, T): a target's sources are rows
    RT = np.ascontiguousarray(np.asarray(R, np.float64).T)
    kept = np.asarray(kept, bool)
    src, W, b = np.asarray(src), np.where(kept, np.asarray(W0, np.float64), 0.0), np.array(b0, np.float64)
    T, ss = HT.shape[1], np.zeros(2)
    for d, (targets, edges) in _by_degree(np.asarray(dst), kept, len(b)).items():
        step = max(block // (T * (d + 1)), 1)
        for s in range(0, len(targets), step):
            tg, ed = targets[s:s + step], edges[s:s + step]
            X = np.concatenate([HT[src[ed]], np.ones((len(tg), 1, T))], 1)          # (m, d + 1, T)
            x0 = np.concatenate([W[ed], b[tg, None]], -1)                           # (m, d + 1)
            G = np.einsum("mit,mjt->mij", X, X, optimize=True)
            resid = RT[tg] - np.einsum("mi,mit->mt", x0, X, optimize=True)
            lam = (ridge + 1e-12) * np.trace(G, axis1=1, axis2=2) / (d + 1)   # 1e-12: a duplicate or silent column
            rhs = np.einsum("mit,mt->mi", X, resid, optimize=True)
            step_ = np.linalg.solve(G + lam[:, None, None] * np.eye(d + 1), rhs[..., None])[..., 0]
            sol = x0 + step_
            W[ed], b[tg] = sol[:, :d], sol[:, d]
            after = resid - np.einsum("mi,mit->mt", step_, X, optimize=True)
            ss += [np.sum(resid**2), np.sum(after**2)]
    return W, b, tuple(np.sqrt(ss / RT.size))


def refit_edges(params: dict, spec: M.ModelSpec, graph: M.Graph, data: Dataset, n_frames: int,
                ridge: float) -> tuple[dict, tuple[float, float]]:
    """(params, rms before / after): ``params`` with the edge-list W and a per-neuron constant input ``b`` set to their least-squares values
    (:func:`edge_least_squares`) over ``n_frames`` evenly spread training frames, given the learned g_phi,
    f_theta, f_gain and embeddings. Edges ``graph.learned_edges`` holds at 0 stay at 0. ``training.refit_at_end``."""
    if not spec.edge_refittable:
        raise ValueError("the end-of-training refit needs signal_model_name flyvis_A and update_type additive or gain")
    frames = spread_frames(len(data.train), min(n_frames, len(data.train)))
    H, R = edge_features(params, spec, graph, read_rows(data.train.voltage, frames),
                         read_rows(data.train.stimulus, frames), read_rows(data.train.target, frames), frames=frames)
    kept = np.ones(spec.n_edges, bool) if graph.learned_edges is None else np.asarray(graph.learned_edges) > 0
    b0 = M.neuron_bias(params)
    W, b, rms = edge_least_squares(H, R, graph.src, graph.dst, kept, params["W"],
                                   np.zeros(spec.n_nodes) if b0 is None else b0, ridge)
    return {**params, "W": jnp.asarray(W, params["W"].dtype), "b": jnp.asarray(b, params["W"].dtype)}, rms
