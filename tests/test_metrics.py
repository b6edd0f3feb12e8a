import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fvjax.evaluate import metrics as MT
from fvjax import model as M
from tests.test_model_train import _toy_graph


def test_r2_hand_values():
    assert MT.r2_affine([0, 1, 2, 3], [1, 3, 5, 7]) == pytest.approx((1.0, 2.0))
    r2, slope = MT.r2_affine([0, 1, 2], [0, 2, 1])  # Pearson r = 0.5
    assert r2 == pytest.approx(0.25) and slope == pytest.approx(0.5)
    # the outlier (|learned - true| = 100 > 5) is dropped before the fit
    assert MT.r2_filtered([0, 1, 2, 3], [1, 3, 5, 103])[0] == pytest.approx(1.0)
    assert np.isnan(MT.r2_affine([1, 1, 1], [1, 2, 3])[0])


def test_matched_accuracy_hand_case():
    assert MT.matched_accuracy([0, 0, 1, 1, 2, 2], [5, 5, 5, 7, 7, 9]) == pytest.approx(4 / 6)
    # more clusters than types: the extra clusters count as errors
    assert MT.matched_accuracy([0, 0, 0, 1], [1, 2, 3, 4]) == pytest.approx(2 / 4)


def test_cluster_accuracy_separated_blobs():
    rng = np.random.default_rng(0)
    types = np.repeat(np.arange(3), 40)
    feats = np.eye(3)[types] * 10 + rng.normal(0, 0.1, (120, 3))
    assert MT.cluster_accuracy(feats, types, n_components=3) == pytest.approx(1.0)


def test_per_neuron_scores():
    t = np.arange(5.0)[:, None] * np.array([1.0, 1.0, 0.0])
    p = np.column_stack([t[:, 0] * 2, -t[:, 1], np.ones(5)])
    s = MT.per_neuron_scores(t, p)
    assert s["pearson"][0] == pytest.approx(1.0) and s["pearson"][1] == pytest.approx(-1.0)
    assert np.isnan(s["pearson"][2]) and np.isnan(s["r2"][2])  # flat trace
    # R^2 of 2t against t: 1 - sum(t^2)/sum((t - 2)^2) = 1 - 30/10
    assert s["r2"][0] == pytest.approx(-2.0)


def test_finite_median_hand_values_without_warnings():
    """Per column the median of its finite values (inf and NaN left out), NaN for a column with none."""
    import warnings

    x = np.array([[1.0, np.nan, np.inf, 5.0],
                  [3.0, np.nan, 2.0, -np.inf],
                  [2.0, np.nan, 4.0, 7.0],
                  [10.0, np.nan, np.nan, 9.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = MT.finite_median(x)
    np.testing.assert_array_equal(got[[0, 2, 3]], [2.5, 3.0, 7.0])
    assert np.isnan(got[1])


def test_effective_rank_hand_case():
    rng = np.random.default_rng(0)
    u, _ = np.linalg.qr(rng.normal(size=(200, 3)))
    v, _ = np.linalg.qr(rng.normal(size=(50, 3)))
    X = u @ np.diag([10.0, 2.0, 0.1]) @ v.T  # energies 100, 4, 0.01 -> 0.9614, 0.99990, 1
    assert MT.effective_rank(X) == (1, 2)
    # energies 10 (x5) then 1 (x145): over the top 100 (145 in all; the reference's normalisation)
    # 90 % needs 50 + (k - 5) >= 130.5 -> k = 86, 99 % >= 143.55 -> 99; over all 150 (195): 131, 149
    q1, _ = np.linalg.qr(rng.normal(size=(400, 150)))
    q2, _ = np.linalg.qr(rng.normal(size=(300, 150)))
    X = q1 @ np.diag(np.sqrt([10.0] * 5 + [1.0] * 145)) @ q2.T
    assert MT.effective_rank(X) == (86, 99)
    assert MT.effective_rank(X, n_components=150) == (131, 149)


def test_effective_rank_counts_squared_singular_values_of_the_top_min_shape_minus_one():
    # 5 x 3 with singular values 3, 2, 1: the reference keeps min(100, min(T, N) - 1) = 2 of them,
    # energies 9, 4 -> 0.692, 1 -> (2, 2); all three (9, 4, 1 of 14: 0.643, 0.929, 1) would give (3, 3)
    rng = np.random.default_rng(1)
    u, _ = np.linalg.qr(rng.normal(size=(5, 3)))
    v, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    assert MT.effective_rank(u @ np.diag([3.0, 2.0, 1.0]) @ v.T) == (2, 2)
    # squared: 100 / 101 = 0.990 reaches 99 % with one value; sums of s (10 / 11 = 0.909) would need two
    X = u @ np.diag([10.0, 1.0, 0.5]) @ v.T
    assert MT.effective_rank(X) == (1, 1)


def test_spectral_radius():
    W = np.array([2.0, -3.0, 0.5])
    assert MT.spectral_radius(W, np.array([0, 1, 2]), np.array([0, 1, 2]), 5) == pytest.approx(3.0)
    # [[0, 2, 0], [-2, 0, 0], [0, 0, 1]] (entry W_e at (dst_e, src_e)): eigenvalues +-2i and 1
    W, src, dst = np.array([2.0, -2.0, 1.0]), np.array([1, 0, 2]), np.array([0, 1, 2])
    assert MT.spectral_radius_dense(W, src, dst, 3) == pytest.approx(2.0, rel=1e-12)
    assert MT.spectral_radius_dense(W, src, dst, 3) == pytest.approx(MT.spectral_radius(W, src, dst, 3), rel=1e-6)


def _linear_model(conn):
    spec = M.ModelSpec(n_nodes=conn.n_nodes, n_edges=conn.n_edges, hidden_dim=4, hidden_dim_update=4,
                       n_layers=2, n_layers_update=2, activation="none", g_phi_positive=False)
    params = M.init(jax.random.PRNGKey(0), spec, jnp.float64)
    params["a"] = jax.random.normal(jax.random.PRNGKey(1), params["a"].shape, jnp.float64)
    return spec, params


def _affine(layers):
    """Collapse a linear MLP to (w, b)."""
    w, b = np.eye(np.asarray(layers[0]["w"]).shape[0]), np.zeros(np.asarray(layers[0]["w"]).shape[0])
    for layer in layers:
        b = b @ np.asarray(layer["w"]) + np.asarray(layer["b"])
        w = w @ np.asarray(layer["w"])
    return w[:, 0], b[0]


def test_recovered_parameters_on_linear_model():
    conn, graph = _toy_graph()
    with jax.enable_x64(True):
        spec, params = _linear_model(conn)
        rng = np.random.default_rng(0)
        mu, sd = rng.normal(0.5, 0.3, conn.n_nodes), rng.uniform(0.1, 0.5, conn.n_nodes)
        volts = rng.normal(0.5, 0.5, (8, conn.n_nodes))
        stim = rng.uniform(0, 1, (8, conn.n_inputs))
        rec = MT.recovered_parameters(params, spec, graph, mu, sd, volts, stim)
        fw, fb = _affine(params["f_theta"])       # f = fw . [v, a0, a1, msg, e] + fb
        gw, gb = _affine(params["g_phi"])         # g = gw . [v, a0, a1] + gb (not squared)
        a = np.asarray(params["a"])
        s = fw[0]
        o = a @ fw[1:3] + fb
        np.testing.assert_allclose(rec["f_slope"], s, rtol=1e-9)
        np.testing.assert_allclose(rec["tau"], np.clip(-1 / s, 0, 1), rtol=1e-9)
        np.testing.assert_allclose(rec["V_rest"], -o / s, rtol=1e-8)
        r = np.where(mu + sd > 0, gw[0], 1.0)
        np.testing.assert_allclose(rec["g_slope"], r, rtol=1e-9)
        np.testing.assert_allclose(rec["msg_gain"], fw[3], rtol=1e-9)
        src = np.asarray(graph.src)
        expect = -np.asarray(params["W"]) * fw[3] * r[src] / s
        np.testing.assert_allclose(rec["W"], expect, rtol=1e-8)
        # a linear f_theta has the same voltage slope at the data as at msg = 0
        np.testing.assert_allclose(rec["v_gain"], s, rtol=1e-9)
        np.testing.assert_allclose(rec["W_data"], expect, rtol=1e-8)
        np.testing.assert_allclose(rec["V_rest_data"], -o / s, rtol=1e-8)
        # the line's intercept at v = 0 (a linear g_phi: its value there), and the constant part of each
        # target's message it implies, summed edge by edge; V_rest_offset probes f_theta at that message
        alpha = np.where(mu + sd > 0, a @ gw[1:3] + gb, 0.0)
        np.testing.assert_allclose(rec["g_intercept"], alpha, rtol=1e-8, atol=1e-12)
        offset = np.zeros(conn.n_nodes)
        for w, j, i in zip(np.asarray(params["W"]), src, np.asarray(graph.dst)):
            offset[i] += w * alpha[j]
        assert np.abs(offset).max() > 1e-2   # not all zero: the check below can fail
        np.testing.assert_allclose(rec["msg_offset"], offset, rtol=1e-8, atol=1e-12)
        np.testing.assert_allclose(rec["V_rest_offset"], -(o + fw[3] * offset) / s, rtol=1e-8)


def test_data_partials_match_finite_differences():
    """d f / d msg and d f / d v at the data of a nonlinear (ReLU) f_theta, against central finite
    differences of f in each input with the other held fixed (float64)."""
    conn, graph = _toy_graph()
    with jax.enable_x64(True):
        spec = M.ModelSpec(n_nodes=conn.n_nodes, n_edges=conn.n_edges, hidden_dim=8, hidden_dim_update=8,
                           w_init_mode="randn")
        params = jax.tree.map(lambda x: jnp.asarray(x, jnp.float64), M.init(jax.random.PRNGKey(3), spec))
        params["a"] = jnp.asarray(np.random.default_rng(2).normal(size=params["a"].shape))
        rng = np.random.default_rng(1)
        volts = rng.normal(0.5, 0.5, (4, conn.n_nodes))
        stim = rng.uniform(0, 1, (4, conn.n_inputs))
        at = MT.data_partials(params, spec, graph, jnp.asarray(volts), jnp.asarray(stim))
        d_msg, d_v = np.asarray(at["d_msg"]), np.asarray(at["d_v"])
        msg = np.asarray(M.messages(params, spec, graph, jnp.asarray(volts)))
        st = M.node_stimulus(graph, jnp.asarray(stim), spec.n_nodes)

        def f(v, m):
            return np.asarray(M.update_function(params, spec, jnp.asarray(v), params["a"], jnp.asarray(m), st))

        h = 1e-6
        np.testing.assert_allclose(d_v, (f(volts + h, msg) - f(volts - h, msg)) / (2 * h), rtol=1e-5, atol=1e-8)
        np.testing.assert_allclose(d_msg, (f(volts, msg + h) - f(volts, msg - h)) / (2 * h), rtol=1e-5, atol=1e-8)
        assert np.std(d_v) > 0   # nonlinear: the partial varies over neurons and frames


def test_rollout_matches_manual_loop():
    conn, graph = _toy_graph()
    spec = M.ModelSpec(n_nodes=conn.n_nodes, n_edges=conn.n_edges, hidden_dim=8, hidden_dim_update=8)
    params = M.init(jax.random.PRNGKey(0), spec)
    params["W"] = params["W"] * 50
    v0 = jnp.linspace(-1, 1, conn.n_nodes)
    stim = jax.random.uniform(jax.random.PRNGKey(1), (6, conn.n_inputs))
    out = np.asarray(MT.rollout(params, spec, graph, v0, stim, 0.02))
    v = v0
    for t in range(6):
        dv, _ = M.apply(params, spec, graph, v[None], stim[t][None])
        v = jnp.clip(v + 0.02 * dv[0], -100, 100)
        np.testing.assert_allclose(out[t], np.asarray(v), rtol=1e-5, atol=1e-6)


def test_cluster_labels_survive_collinear_features_and_keep_good_fits():
    """Near-collinear features at a large scale make sklearn's GMM fail at reg_covar 1e-6 (what a tiny
    run's recovered features did); the fallback still clusters them, and separated blobs get exactly the
    labels of the plain fit."""
    from sklearn.mixture import GaussianMixture

    from fvjax.evaluate.metrics import cluster_labels

    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 1))
    bad = np.concatenate([x * 1e8, x * 1e8 + 1e-3 * rng.normal(size=(60, 1)), np.full((60, 1), 5.0)], 1)
    with pytest.raises(ValueError):
        GaussianMixture(4, covariance_type="full", random_state=42, reg_covar=1e-6).fit_predict(bad)
    labels = cluster_labels(bad, 4)
    assert labels.shape == (60,) and len(np.unique(labels)) > 1
    blobs = np.concatenate([rng.normal(c, 0.1, size=(20, 2)) for c in (0.0, 5.0, 10.0)])
    plain = GaussianMixture(3, covariance_type="full", random_state=42, reg_covar=1e-6).fit_predict(blobs)
    np.testing.assert_array_equal(cluster_labels(blobs, 3), plain)
