"""Recovery and rollout metrics (definitions in docs/metrics.md; reference spec section 4)."""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from .. import model as M

# ------------------------------------------------------------------------------------------ R^2


def r2_affine(true, learned) -> tuple[float, float]:
    """Fit learned ~ slope * true + b by least squares; R^2 of that fit (= squared Pearson) and slope."""
    x, y = np.asarray(true, np.float64), np.asarray(learned, np.float64)
    if len(x) < 2 or x.std() == 0 or y.std() == 0:
        return float("nan"), float("nan")
    slope, intercept = np.polyfit(x, y, 1)
    ss_res = np.sum((y - slope * x - intercept) ** 2)
    ss_tot = np.sum((y - y.mean()) ** 2)
    return float(1.0 - ss_res / ss_tot), float(slope)


def r2_filtered(true, learned, outlier_threshold: float = 5.0) -> tuple[float, float]:
    """:func:`r2_affine` after dropping items with |learned - true| > ``outlier_threshold``."""
    true, learned = np.asarray(true), np.asarray(learned)
    keep = np.abs(learned - true) <= outlier_threshold
    return r2_affine(true[keep], learned[keep])


def field_r2(true, pred) -> tuple[float, float]:
    """Visual field quality: least squares true ~ alpha * pred + beta over all (frame, input) pairs;
    (1 - SS_res / (SS_tot + 1e-16), alpha)."""
    x, y = np.asarray(pred, np.float64).ravel(), np.asarray(true, np.float64).ravel()
    if x.std() == 0:
        return 0.0, 0.0
    alpha, beta = np.polyfit(x, y, 1)
    ss_res = np.sum((y - alpha * x - beta) ** 2)
    return float(1.0 - ss_res / (np.sum((y - y.mean()) ** 2) + 1e-16)), float(alpha)


def field_frames(n_frames: int) -> np.ndarray:
    """Frames scored by field_R2: 0, 2, ..., 798 (the reference's), within the split."""
    return np.arange(0, min(800, n_frames), 2)


# ------------------------------------------------------------------------------ function probes


def _linear_fit(r, f):
    """Per-row OLS slope and intercept of f ~ s r + o; r, f: (n, P)."""
    rm, fm = r.mean(-1, keepdims=True), f.mean(-1, keepdims=True)
    var = jnp.sum((r - rm) ** 2, -1)
    slope = jnp.where(var > 0, jnp.sum((r - rm) * (f - fm), -1) / jnp.where(var > 0, var, 1.0), 0.0)
    return slope, fm[:, 0] - slope * rm[:, 0]


@partial(jax.jit, static_argnames=("spec", "n_points", "chunk"))
def f_theta_fits(params, spec: M.ModelSpec, mu, sigma, n_points: int = 1000, chunk: int = 512):
    """Slope s_i and intercept o_i of f_theta([r, a_i, msg=0, e=0]) (msg = b_i with a per-neuron bias)
    over r in mu_i +- 2 sigma_i."""
    grid = jnp.linspace(-2.0, 2.0, n_points)
    bias = M.neuron_bias(params)   # msg = 0 + 0 is exactly msg = 0 without it

    def block(args):
        m, sd, a, b = args
        r = m[:, None] + sd[:, None] * grid[None]
        return _linear_fit(r, M.update_without_input(params, spec, r, a[:, None, :], b[:, None]))

    return _chunked(block, (mu, sigma, params["a"], jnp.zeros_like(mu) if bias is None else bias), chunk)


@partial(jax.jit, static_argnames=("spec", "n_points", "chunk"))
def g_phi_fits(params, spec: M.ModelSpec, mu, sigma, n_points: int = 1000, chunk: int = 512):
    """Slope r_j and intercept at v = 0, alpha_j, of the line fitted to g_phi([r, a_j])^2 over
    r in [max(mu-2sd, 0), mu+2sd]; (1, 0) where mu+sd <= 0."""
    grid = jnp.linspace(0.0, 1.0, n_points)

    def block(args):
        m, sd, a = args
        lo, hi = jnp.maximum(m - 2 * sd, 0.0), m + 2 * sd
        r = lo[:, None] + (hi - lo)[:, None] * grid[None]
        if not spec.pairwise:
            h = M.edge_function(params, spec, r, a[:, None, :])
        else:  # flyvis_B probe [0, r, a_j, a_j]
            h = M.pair_edge_function(params, spec, jnp.zeros_like(r), r, a[:, None, :], a[:, None, :])
        return _linear_fit(r, h)

    slopes, intercepts = _chunked(block, (mu, sigma, params["a"]), chunk)
    active = mu + sigma > 0
    return jnp.where(active, slopes, 1.0), jnp.where(active, intercepts, 0.0)


def message_offset(W, alpha, src, dst, n: int) -> np.ndarray:
    """sum_j W_ij alpha_j per target i: the part of the learned message that is constant once each
    source's g_phi^2 is the line r_j v + alpha_j that W* reads its slope from."""
    return np.bincount(np.asarray(dst), np.asarray(W, np.float64) * np.asarray(alpha, np.float64)[np.asarray(src)],
                       minlength=n)


def rest_potentials(params, spec: M.ModelSpec, mu, sigma, offset=None) -> tuple[np.ndarray, np.ndarray]:
    """(V_rest, s): V_rest_i = -o_i / s_i of f_theta's line (f_theta_fits), probed at msg = b_i
    (+ ``offset``_i), and the slope s_i."""
    if offset is not None:
        bias = M.neuron_bias(params)
        params = {**params, "b": jnp.asarray(offset if bias is None else np.asarray(bias, np.float64) + offset,
                                              params["a"].dtype)}
    s, o = (np.asarray(x, np.float64) for x in f_theta_fits(params, spec, jnp.asarray(mu), jnp.asarray(sigma)))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(s != 0, -o / s, 1.0), s


def _chunked(fn, arrays, chunk):
    n = arrays[0].shape[0]
    pad = (-n) % chunk
    padded = [jnp.concatenate([x, jnp.repeat(x[-1:], pad, 0)]) if pad else x for x in arrays]
    blocks = [x.reshape((-1, chunk) + x.shape[1:]) for x in padded]
    out = jax.lax.map(fn, tuple(blocks))
    return jax.tree.map(lambda y: y.reshape((-1,) + y.shape[2:])[:n], out)


@partial(jax.jit, static_argnames=("spec",))
def data_partials(params, spec: M.ModelSpec, graph: M.Graph, voltage, stimulus):
    """f_theta([v_i, a_i, msg_i, e_i]) at the data and its partial derivatives in the message, the
    voltage and the stimulus input: (f, d_msg, d_v, d_e), each (F, N), with the model's own messages
    at voltage (F, N) and stimulus (F, n_in). Also returns the messages and node stimuli used."""
    msg = M.messages(params, spec, graph, voltage)
    stim = M.node_stimulus(graph, stimulus, spec.n_nodes)

    def total(m, v, e):
        f = M.update_function(params, spec, v, params["a"], m, e, M.neuron_bias(params))
        return jnp.sum(f), f

    (d_msg, d_v, d_e), f = jax.grad(total, argnums=(0, 1, 2), has_aux=True)(msg, voltage, stim)
    return {"f": f, "d_msg": d_msg, "d_v": d_v, "d_e": d_e, "msg": msg, "stim": stim}


def msg_gain(params, spec: M.ModelSpec, graph: M.Graph, voltage, stimulus):
    """d f_theta / d msg per neuron at the data: voltage (F, N), stimulus (F, n_in) -> (F, N)."""
    return data_partials(params, spec, graph, voltage, stimulus)["d_msg"]


# ----------------------------------------------------------------------------- recovered params


def finite_median(x) -> np.ndarray:
    """Median over axis 0 of each column's finite values; NaN (without numpy's all-NaN warning) for a column with
    none, e.g. a neuron whose voltage partial is 0 on every frame has no on-data V_rest."""
    x = np.asarray(x, np.float64)
    finite = np.isfinite(x)
    out = np.full(x.shape[1:], np.nan)
    some = finite.any(0)
    out[some] = np.nanmedian(np.where(finite, x, np.nan)[:, some], 0)
    return out


def tau_from_slope(slope) -> np.ndarray:
    """The reference's tau rule: clip(-1 / slope, 0, 1), 1 where the slope is 0."""
    slope = np.asarray(slope, np.float64)
    with np.errstate(divide="ignore"):
        return np.where(slope != 0, np.clip(-1.0 / np.where(slope != 0, slope, 1.0), 0.0, 1.0), 1.0)


def corrected_weights(W, gain, r, s, src, dst) -> np.ndarray:
    """W*_e = -W_e gain_i r_j / s_i for every edge j -> i (non-finite -> 0)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        w_star = -np.asarray(W, np.float64) * gain[dst] * r[src] / s[dst]
    w_star[~np.isfinite(w_star)] = 0.0
    return w_star


def recovered_parameters(params, spec, graph, mu, sigma, voltage, stimulus) -> dict:
    """tau_hat, V_rest_hat per neuron and the corrected weights W* per edge.

    ``voltage``/``stimulus``: a few training frames (the reference uses 8) for d f/d msg (median).
    ``W`` is the reference's correction, which divides by f_theta's voltage slope probed at msg = 0,
    e = 0 (``f_slope``); ``W_data`` divides by the median voltage partial at the data instead
    (``v_gain``), so both derivatives come from where f_theta was trained; ``V_rest_data`` extrapolates
    linearly from the data with those partials instead of evaluating f_theta at msg = 0; ``V_rest_offset``
    probes at the message's constant part, sum_j W_ij alpha_j (``msg_offset``; alpha_j: ``g_intercept``, the
    intercept of the line whose slope W* uses) instead of 0 (docs/metrics.md)."""
    v_rest, s = rest_potentials(params, spec, mu, sigma)
    tau = tau_from_slope(s)
    r, alpha = (np.asarray(x, np.float64) for x in g_phi_fits(params, spec, jnp.asarray(mu), jnp.asarray(sigma)))
    at = {k: np.asarray(x, np.float64) for k, x in
          data_partials(params, spec, graph, jnp.asarray(voltage), jnp.asarray(stimulus)).items()}
    gain, v_gain = np.median(at["d_msg"], 0), np.median(at["d_v"], 0)
    # first-order extrapolation from each frame to zero message and input: the v where
    # f + d_v (V - v) - d_msg msg - d_e e = 0, median over frames
    with np.errstate(divide="ignore", invalid="ignore"):
        v_zero = np.asarray(voltage, np.float64) - (at["f"] - at["d_msg"] * at["msg"] - at["d_e"] * at["stim"]) / at["d_v"]
    v_rest_data = finite_median(v_zero)
    src, dst = np.asarray(graph.src), np.asarray(graph.dst)
    W = M.weights(params, spec)
    offset = message_offset(W, alpha, src, dst, spec.n_nodes)
    return {"tau": tau, "V_rest": v_rest, "W": corrected_weights(W, gain, r, s, src, dst),
            "W_data": corrected_weights(W, gain, r, v_gain, src, dst),
            "V_rest_offset": rest_potentials(params, spec, mu, sigma, offset)[0], "msg_offset": offset,
            "V_rest_data": v_rest_data, "f_slope": s, "g_slope": r, "g_intercept": alpha, "msg_gain": gain,
            "v_gain": v_gain}


def _edge_stats(values, index, n):
    count = np.bincount(index, minlength=n)
    mean = np.bincount(index, weights=values, minlength=n) / np.maximum(count, 1)
    sq = np.bincount(index, weights=values**2, minlength=n) / np.maximum(count, 1)
    return mean, np.sqrt(np.maximum(sq - mean**2, 0.0))


def cluster_features(a, tau, v_rest, w_star, src, dst, n) -> np.ndarray:
    """[a, tau, V_rest, W* in-mean, in-std, out-mean, out-std] per neuron (0 without edges)."""
    in_m, in_s = _edge_stats(w_star, dst, n)
    out_m, out_s = _edge_stats(w_star, src, n)
    return np.column_stack([np.asarray(a), tau, v_rest, in_m, in_s, out_m, out_s])


# GMM covariance regularisation: the reference's 1e-6 on the raw features first; only when that fit
# fails (collapsed or near-collinear features, e.g. an untrained model's), the features scaled to unit
# variance per column and larger values, so a fit that succeeds is unchanged
REG_COVAR_FALLBACK = (1e-6, 1e-4, 1e-2)


def _gmm_labels(features, n_components: int, seed: int, reg: float) -> np.ndarray:
    """One BLAS/OpenMP thread: the products are (n, 8) by 8 x 8, too small to share; the default pools were
    1.7x slower alone and 3.5x with the cores shared (benchmarks/cluster.py; same labels, docs/decisions.md)."""
    from sklearn.mixture import GaussianMixture
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        return GaussianMixture(n_components, covariance_type="full", random_state=seed,
                               reg_covar=reg).fit_predict(features)


def cluster_labels(features, n_components: int = 100, seed: int = 42) -> np.ndarray:
    """GMM(full) cluster of every item (the reference's clustering of the recovered features)."""
    features = np.nan_to_num(np.asarray(features, np.float64))
    n_components = min(n_components, len(features))
    std = features.std(0)
    scaled = (features - features.mean(0)) / np.where(std > 0, std, 1.0)
    attempts = [(features, 1e-6)] + [(scaled, reg) for reg in REG_COVAR_FALLBACK]
    for k, (x, reg) in enumerate(attempts):
        try:
            return _gmm_labels(x, n_components, seed, reg)
        except ValueError:
            if k == len(attempts) - 1:
                raise


def cluster_accuracy(features, types, n_components: int = 100, seed: int = 42) -> float:
    """GMM(full) clusters matched one-to-one to types (Hungarian); unmatched clusters count as errors."""
    return matched_accuracy(types, cluster_labels(features, n_components, seed))


def matched_accuracy(types, labels) -> float:
    """Fraction of items whose cluster is matched (one-to-one, Hungarian, max matches) to its type."""
    from scipy.optimize import linear_sum_assignment

    types, labels = np.asarray(types), np.unique(np.asarray(labels), return_inverse=True)[1]
    counts = np.zeros((types.max() + 1, labels.max() + 1))
    np.add.at(counts, (types, labels), 1)
    rows, cols = linear_sum_assignment(-counts)
    return float(counts[rows, cols].sum() / len(types))


# -------------------------------------------------------------------------------------- rollout


@partial(jax.jit, static_argnames=("spec", "dt"))
def rollout(params, spec: M.ModelSpec, graph: M.Graph, v0, stimulus, dt: float = 0.02):
    """Free-running model rollout from v0 (N,) over stimulus (T, n_in); returns v(1..T) (T, N),
    clamped to [-100, 100] each step like the reference."""
    def step(v, stim):
        dv, _ = M.apply(params, spec, graph, v[None], stim[None])
        v_next = jnp.clip(v + dt * dv[0], -100.0, 100.0)
        return v_next, v_next

    return jax.lax.scan(step, v0, stimulus)[1]


def per_neuron_scores(true, pred, chunk: int = 1024) -> dict:
    """Per-neuron Pearson r and R^2 over time (NaN where a trace is flat), summarised by nanmean.
    Computed ``chunk`` neurons at a time in float64 (bounded memory for long test splits)."""
    if np.shape(true)[1] > chunk:
        parts = [per_neuron_scores(true[:, k:k + chunk], pred[:, k:k + chunk], chunk)
                 for k in range(0, np.shape(true)[1], chunk)]
        return {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}
    true, pred = np.asarray(true, np.float64), np.asarray(pred, np.float64)
    tc, pc = true - true.mean(0), pred - pred.mean(0)
    ts, ps = np.sqrt((tc**2).sum(0)), np.sqrt((pc**2).sum(0))
    with np.errstate(divide="ignore", invalid="ignore"):
        pearson = np.where((ts > 1e-8) & (ps > 1e-8), (tc * pc).sum(0) / (ts * ps), np.nan)
        ss_tot = (tc**2).sum(0)
        r2 = np.where(ss_tot > 1e-8, 1.0 - ((true - pred) ** 2).sum(0) / ss_tot, np.nan)
    rmse = np.sqrt(((true - pred) ** 2).mean(0))
    return {"pearson": pearson, "r2": r2, "rmse": rmse}


# ---------------------------------------------------------------------------------- diagnostics


def effective_rank(activity, max_elements: int = 10_000_000, max_neurons: int = 1024,
                   n_components: int = 100) -> tuple[int, int]:
    """(rank90, rank99): the fewest singular values s_k of the uncentred activity (frames x neurons)
    whose energy sum s_k^2 reaches 90% / 99% of the energy of the top min(``n_components``,
    min(T', N') - 1) singular values: the reference's definition (analyze_data_svd: squared singular
    values, 100 components); neurons subsampled to <= 1024, frames so that T'N' <= 1e7."""
    activity = np.asarray(activity)
    n_step = -(-activity.shape[1] // max_neurons)
    sub = activity[:, ::n_step]
    t_step = max(1, -(-sub.shape[0] * sub.shape[1] // max_elements))
    sub = np.asarray(sub[::t_step], np.float64)
    s = np.linalg.svd(sub, compute_uv=False)
    s = s[:max(min(n_components, min(sub.shape) - 1), 1)]
    energy = np.cumsum(s**2) / np.sum(s**2)
    return int(np.searchsorted(energy, 0.90) + 1), int(np.searchsorted(energy, 0.99) + 1)


def spectral_radius(W, src, dst, n) -> float:
    """Largest |eigenvalue| of the N x N matrix with entries W_e at (dst_e, src_e)."""
    import scipy.sparse as sp
    import scipy.sparse.linalg as sla

    A = sp.csr_matrix((np.asarray(W, np.float64), (dst, src)), shape=(n, n))
    v0 = np.random.default_rng(0).standard_normal(n)
    return float(np.abs(sla.eigs(A, k=1, which="LM", return_eigenvectors=False, v0=v0, tol=1e-6,
                                 maxiter=20000)).max())


def spectral_radius_dense(W, src, dst, n) -> float:
    """:func:`spectral_radius` from all eigenvalues (LAPACK, exact; what the reference computes). For
    all-to-all synthetic W: their eigenvalues crowd the circle of radius rho, where ARPACK's single
    largest-magnitude eigenvalue can stop short (0.983 instead of 0.989 on a PDE_N2 W, N = 1000)."""
    A = np.zeros((n, n))
    np.add.at(A, (np.asarray(dst), np.asarray(src)), np.asarray(W, np.float64))
    return float(np.abs(np.linalg.eigvals(A)).max())


def per_type_r2(true, learned, groups, n_groups) -> np.ndarray:
    """R^2 (:func:`r2_affine`) within each group; NaN for groups with < 3 items or flat values."""
    out = np.full(n_groups, np.nan)
    for g in range(n_groups):
        sel = groups == g
        if sel.sum() >= 3:
            out[g] = r2_affine(true[sel], learned[sel])[0]
    return out
