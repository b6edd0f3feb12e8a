"""Why a model was (not) recovered (seeds 001/004): per-type R^2, per-neuron W-sum correlation,
sign agreement, W statistics and a recovery-mechanism label. Definitions in docs/diagnostics.md."""

from __future__ import annotations

import numpy as np

from .metrics import per_type_r2

# |r| below this for the per-neuron W-sum correlations counts as "no relation" (docs/diagnostics.md)
MECHANISM_THRESHOLD = 0.2


def _pearson(x, y) -> float:
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if x.std() == 0 or y.std() == 0:
        return float("nan")
    return float(np.corrcoef(x, y)[0, 1])


def w_sums(W, src, dst, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(incoming, outgoing) weight sum per neuron: sum over edges into i, and out of j."""
    W = np.asarray(W, np.float64)
    return np.bincount(dst, W, minlength=n), np.bincount(src, W, minlength=n)


def w_sum_correlation(W_true, W_learned, src, dst, n: int) -> dict:
    """Pearson r between true and learned per-neuron incoming and outgoing W sums."""
    t_in, t_out = w_sums(W_true, src, dst, n)
    l_in, l_out = w_sums(W_learned, src, dst, n)
    return {"in": _pearson(t_in, l_in), "out": _pearson(t_out, l_out)}


def sign_match_rate(W_true, W_learned, eps: float = 1e-8) -> float:
    """Fraction of edges with a nonzero true weight whose learned weight has the same sign."""
    W_true, W_learned = np.asarray(W_true), np.asarray(W_learned)
    keep = np.abs(W_true) > eps
    return float(np.mean(np.sign(W_true[keep]) == np.sign(W_learned[keep]))) if keep.any() else float("nan")


def w_stats(W) -> dict:
    W = np.asarray(W, np.float64)
    return {"mean": float(W.mean()), "std": float(W.std()), "abs_mean": float(np.abs(W).mean()),
            "frac_positive": float(np.mean(W > 0))}


def recovery_mechanism(corr_in: float, corr_out: float, threshold: float = MECHANISM_THRESHOLD) -> str:
    """'direct': both per-neuron W-sum correlations > threshold (learned W follows the true W);
    'compensation': both < -threshold (W inverted, the MLPs undo it); otherwise 'partial'."""
    if corr_in > threshold and corr_out > threshold:
        return "direct"
    if corr_in < -threshold and corr_out < -threshold:
        return "compensation"
    return "partial"


def diagnose(W_true, W_raw, W_corrected, src, dst, node_type, n_types: int) -> tuple[dict, dict]:
    """(scalars, arrays). The mechanism uses the raw learned W (what the GNN multiplies messages by);
    per-type R^2 and sign match are reported for the corrected W* too."""
    src, dst = np.asarray(src), np.asarray(dst)
    n = len(node_type)
    raw = w_sum_correlation(W_true, W_raw, src, dst, n)
    corr = w_sum_correlation(W_true, W_corrected, src, dst, n)
    per_type = per_type_r2(np.asarray(W_true), np.asarray(W_corrected), np.asarray(node_type)[dst], n_types)
    scalars = {
        "W_sum_corr_in": raw["in"], "W_sum_corr_out": raw["out"],
        "W_sum_corr_in_corrected": corr["in"], "W_sum_corr_out_corrected": corr["out"],
        "sign_match_raw": sign_match_rate(W_true, W_raw), "sign_match_corrected": sign_match_rate(W_true, W_corrected),
        "mechanism": recovery_mechanism(raw["in"], raw["out"]),
        "W_R2_per_target_type_median": float(np.nanmedian(per_type)) if np.isfinite(per_type).any() else float("nan"),
        **{f"W_true_{k}": v for k, v in w_stats(W_true).items()},
        **{f"W_learned_{k}": v for k, v in w_stats(W_corrected).items()},
    }
    return scalars, {"W_R2_per_target_type": per_type}


def per_type_gains(W_true, W_learned, group, n_groups: int) -> np.ndarray:
    """Least-squares gain k_g of ``W_learned ~ k_g W_true`` (through the origin) over the edges of
    each group (e.g. the target cell type of every edge); NaN for groups without nonzero weights."""
    W_true, W_learned = np.asarray(W_true, np.float64), np.asarray(W_learned, np.float64)
    num = np.bincount(group, W_true * W_learned, minlength=n_groups)
    den = np.bincount(group, W_true**2, minlength=n_groups)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / den, np.nan)


def error_shares(W_true, W_learned, group, n_groups: int, outlier_threshold: float = 5.0) -> np.ndarray:
    """Share of the residual sum of squares of the global affine fit (the connectivity R^2's fit,
    after the same outlier filter) that falls on each group's edges; sums to 1."""
    W_true, W_learned = np.asarray(W_true, np.float64), np.asarray(W_learned, np.float64)
    keep = np.abs(W_learned - W_true) <= outlier_threshold
    slope, intercept = np.polyfit(W_true[keep], W_learned[keep], 1)
    res = np.where(keep, W_learned - slope * W_true - intercept, 0.0) ** 2
    total = np.bincount(group, res, minlength=n_groups)
    return total / total.sum() if total.sum() > 0 else total


def drift_table(snapshots: dict[int, dict], W_true, src, dst, node_type, type_names) -> dict:
    """Follow the per-target-type gain of W* (and its factors) over training checkpoints.

    ``snapshots``: iteration -> arrays written by ``evaluate.quick_metrics(save_to=...)`` (``W``,
    ``W_raw``, ``f_slope``, ``msg_gain``, ``g_slope``). Per iteration and target type: the gain of W*
    and of the raw W against the true W, the median target factor ``msg_gain / -f_slope`` that
    W* multiplies by, and the share of the connectivity fit's squared error. Returns nested dicts
    (JSON-ready)."""
    from .metrics import r2_filtered

    dst_type = np.asarray(node_type)[np.asarray(dst)]
    n_types = len(type_names)
    out = {}
    for it in sorted(snapshots):
        snap = snapshots[it]
        gain_star = per_type_gains(W_true, snap["W"], dst_type, n_types)
        gain_raw = per_type_gains(W_true, snap["W_raw"], dst_type, n_types)
        with np.errstate(invalid="ignore", divide="ignore"):
            factor = np.asarray(snap["msg_gain"], np.float64) / -np.asarray(snap["f_slope"], np.float64)
        factor_med = np.array([np.nanmedian(factor[node_type == t]) if (node_type == t).any() else np.nan
                               for t in range(n_types)])
        shares = error_shares(W_true, snap["W"], dst_type, n_types)
        finite = np.isfinite(gain_star)
        out[int(it)] = {
            "connectivity_R2": r2_filtered(W_true, snap["W"])[0],
            "gain_spread_iqr": [float(q) for q in np.nanpercentile(gain_star[finite], [25, 50, 75])],
            "per_type": {type_names[t]: {"gain_W_star": float(gain_star[t]), "gain_W_raw": float(gain_raw[t]),
                                         "target_factor": float(factor_med[t]), "error_share": float(shares[t])}
                         for t in range(n_types)},
        }
    return out


def connectivity_ceiling(active, W_true, src, type_names=None, node_type=None) -> dict:
    """What a recording can identify of W: a source whose voltage never rises above 0 (``active``
    False, :func:`fvjax.dataset.ever_active`) sends ReLU(v) = 0 on every frame, so the weights of its
    edges leave no trace in the data and any estimate fits them equally well. Returns the silent
    sources, their edges, those edges' share of sum W^2, and ``ceiling_R2``, the affine R^2 of the true
    W against the true W with the silent sources' weights set to 0: what an estimator that fits every
    other edge exactly and leaves the unseen weights at 0 reaches (not a hard bound: unseen weights
    that happen to share the true ones' pattern score higher). With ``type_names`` and ``node_type``:
    silent neurons per type."""
    from .metrics import r2_affine

    active = np.asarray(active, bool)
    W_true, src = np.asarray(W_true, np.float64), np.asarray(src)
    silent_edge = ~active[src]
    ceiling = np.where(silent_edge, 0.0, W_true)
    out = {"silent_sources": int((~active).sum()), "silent_edges": int(silent_edge.sum()),
           "silent_weight_share": float((W_true[silent_edge] ** 2).sum() / max((W_true ** 2).sum(), 1e-300)),
           "ceiling_R2": r2_affine(W_true, ceiling)[0]}
    if type_names is not None and node_type is not None:
        counts = np.bincount(np.asarray(node_type)[~active], minlength=len(type_names))
        out["silent_per_type"] = {type_names[t]: int(c) for t, c in enumerate(counts) if c}
    return out


def identifiable_scores(W_true, W_star, src, active) -> dict:
    """The connectivity scores a ReLU network's training data bound (``active``:
    :func:`fvjax.dataset.ever_active` of the training voltages): ``connectivity_ceiling_R2``
    (:func:`connectivity_ceiling`),
    ``connectivity_R2_identifiable`` (the reference's R^2 of W* over the edges whose source is active on
    some frame) and ``silent_sources``."""
    from .metrics import r2_filtered

    active = np.asarray(active, bool)
    ceiling = connectivity_ceiling(active, W_true, src)
    seen = active[np.asarray(src)]
    return {"connectivity_ceiling_R2": ceiling["ceiling_R2"], "silent_sources": ceiling["silent_sources"],
            "connectivity_R2_identifiable": r2_filtered(np.asarray(W_true)[seen], np.asarray(W_star)[seen])[0]}


def least_squares_weights(voltage, target, node_input, i: int, edges, src) -> np.ndarray:
    """The weights into neuron ``i`` that the data alone give: least squares of the true equation's
    form, y_i ~ alpha v_i + sum_j beta_j ReLU(v_j) + delta e_i + gamma over the frames of ``voltage``
    (T, N), ``target`` (T, N) and ``node_input`` (T, N); W_ij = -beta_j / alpha for ``edges`` into i."""
    edges = np.asarray(edges)
    X = np.column_stack([voltage[:, i], np.maximum(voltage[:, np.asarray(src)[edges]], 0), node_input[:, i],
                         np.ones(len(voltage))])
    coef = np.linalg.lstsq(X, target[:, i], rcond=None)[0]
    return -coef[1:1 + len(edges)] / coef[0]


def averaged_checkpoints_r2(snapshots: dict[int, dict], W_true, counts=(2, 3, 4, 5)) -> dict[int, float]:
    """Connectivity R^2 (reference definition) of W* averaged over the last k in-training checkpoints,
    for each k in ``counts`` that the run has: whether the late checkpoints scatter around a better
    answer than the last one (docs/drift.md, section 4)."""
    from .metrics import r2_filtered

    its = sorted(snapshots)
    return {k: r2_filtered(W_true, np.mean([np.asarray(snapshots[i]["W"], np.float64) for i in its[-k:]], 0))[0]
            for k in counts if k <= len(its)}


# ----------------------------------------------------------------------------- V_rest (docs/drift.md §3)


def rest_identifiability(voltage, src, dst, n: int) -> np.ndarray:
    """Per neuron i, how well a constant input can be told apart from its regressors: the mean
    squared residual of the constant 1 regressed (no intercept) on [v_i, ReLU(v_j) for every
    presynaptic j] over the frames of ``voltage`` (T, N). 1 means the constant is orthogonal to all
    of them; near 0 means some combination of inputs is almost constant over the data, so a weight
    error on it shifts V_rest_i/tau_i without changing the fit."""
    V = np.asarray(voltage, np.float64)
    R = np.maximum(V, 0.0)
    src, dst = np.asarray(src), np.asarray(dst)
    order = np.argsort(dst, kind="stable")
    bounds = np.searchsorted(dst[order], np.arange(n + 1))
    ones = np.ones(V.shape[0])
    out = np.empty(n)
    for i in range(n):
        X = np.column_stack([V[:, i], R[:, np.unique(src[order[bounds[i]:bounds[i + 1]]])]])
        beta = np.linalg.lstsq(X, ones, rcond=None)[0]
        out[i] = np.mean((ones - X @ beta) ** 2)
    return out


def message_offset_parts(gain, g_mean, g_slope, rate, W_raw, W_true, src, dst, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The time-mean of the learned message in voltage units minus the true one, per neuron, split
    exactly into (weight part, shape part):

        gain_i sum_j W_ij g_j - sum_j W*_ij <ReLU(v_j)>  (shape: g_phi's mean g_j against a ReLU of its slope r_j)
        sum_j (W*_ij - W_true,ij) <ReLU(v_j)>           (weights: W*_ij = gain_i W_ij r_j)

    ``gain``: -(df/dmsg)/(df/dv) per neuron (the learned message's scale in voltage units);
    ``g_mean``: g_phi's mean output per source over the data; ``g_slope``: its slope r_j; ``rate``:
    <ReLU(v_j)>; ``W_raw``: the model's own per-edge W. A constant offset in the message is
    indistinguishable from V_rest, so the on-data V_rest error is close to minus their sum."""
    src, dst = np.asarray(src), np.asarray(dst)
    gain, W_raw = np.asarray(gain, np.float64), np.asarray(W_raw, np.float64)
    rate, g_slope = np.asarray(rate, np.float64), np.asarray(g_slope, np.float64)
    w_star = gain[dst] * W_raw * g_slope[src]
    shape = gain * np.bincount(dst, W_raw * (np.asarray(g_mean, np.float64) - g_slope * rate)[src], minlength=n)
    weight = np.bincount(dst, (w_star - np.asarray(W_true, np.float64)) * rate[src], minlength=n)
    return weight, shape


def offset_by_source(w_star, W_true, rate, src, dst, node_type, target: int) -> dict[int, dict]:
    """The weight part of :func:`message_offset_parts` into the neurons of type ``target``, split by
    source type: per source type s, its edges into them, sum W_true and sum W* per target neuron,
    the sources' mean <ReLU(v_j)>, and their offset sum (W* - W_true) <ReLU(v_j)> per target neuron.
    Over all source types the offsets add up to the type's mean weight part (vrest_table lists the median)."""
    src, dst, node_type = np.asarray(src), np.asarray(dst), np.asarray(node_type)
    rate, w_star, W_true = (np.asarray(x, np.float64) for x in (rate, w_star, W_true))
    dW = w_star - W_true
    into = node_type[dst] == target
    n_target = max(int((node_type == target).sum()), 1)
    out = {}
    for s in np.unique(node_type[src[into]]):
        e = into & (node_type[src] == s)
        out[int(s)] = {"edges": int(e.sum()), "W_true": float(W_true[e].sum() / n_target),
                       "W_star": float(w_star[e].sum() / n_target), "rate": float(rate[src[e]].mean()),
                       "offset": float(np.sum(dW[e] * rate[src[e]]) / n_target)}
    return out


def vrest_table(rec: dict, V_rest_true, weight_part, shape_part, node_type, type_names) -> dict:
    """Per cell type (medians over its neurons): the V_rest error of the reference's probe
    (``rec['V_rest']``), of the on-data estimate (``rec['V_rest_data']``), and the two parts of the
    learned message's constant offset (:func:`message_offset_parts`), plus the per-neuron Pearson r
    of the on-data error with minus the whole offset and with minus its weight part."""
    node_type = np.asarray(node_type)
    err_probe = np.asarray(rec["V_rest"], np.float64) - V_rest_true
    err_data = np.asarray(rec["V_rest_data"], np.float64) - V_rest_true
    columns = {"error_probe": err_probe, "error_data": err_data, "offset_weights": np.asarray(weight_part),
               "offset_shape": np.asarray(shape_part)}
    per_type = {name: {k: float(np.median(v[node_type == t])) for k, v in columns.items()}
                for t, name in enumerate(type_names)}
    return {"per_type": per_type, "r_error_data_offset": _pearson(err_data, -(weight_part + shape_part)),
            "r_error_data_offset_weights": _pearson(err_data, -np.asarray(weight_part))}
