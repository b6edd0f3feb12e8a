"""The reference's signal GNN for synthetic networks (issue 12): dv = f_theta([v, a]) + msg + e with
g_phi(v_j) alone, the ||f_theta(0, a)|| penalty, their config keys, and the PDE_N2 recovery scores,
each against an independent float64 numpy computation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fvjax import model as M
from fvjax.evaluate import pde_n2 as P
from fvjax.config import ConfigError, load_config
from fvjax.networks.synthetic import PDEN2Network, type_blocks
from fvjax.train import coefficients, one_step_loss, regularizers
from fvjax.train.losses import Batch


def _np_mlp(layers, x, act=lambda z: np.maximum(z, 0)):
    for layer in layers[:-1]:
        x = act(x @ np.asarray(layer["w"], np.float64) + np.asarray(layer["b"], np.float64))
    return (x @ np.asarray(layers[-1]["w"], np.float64) + np.asarray(layers[-1]["b"], np.float64))[..., 0]


def _signal_spec(n=7, update="additive", **kw):
    return M.ModelSpec(n_nodes=n, n_edges=n * n, variant="dense", hidden_dim=6, hidden_dim_update=5,
                       g_phi_positive=False, edge_embedding=False, update=update, w_init_mode="randn", **kw)


def _params(spec, seed=0):
    params = M.init(jax.random.PRNGKey(seed), spec)
    params["a"] = jax.random.normal(jax.random.PRNGKey(seed + 1), params["a"].shape)
    return params


def _apply_x64(spec, n):
    """(params, v, pred, msg, expected msg, e) of a float64 forward pass on 3 random frames, with
    the message and the input recomputed in numpy (g_phi(v_j) alone, zero diagonal, inputs at 0 and 3)."""
    graph = M.dense_graph(n, np.array([0, 3]))
    with jax.enable_x64(True):
        params = jax.tree.map(lambda x: jnp.asarray(x, jnp.float64), _params(spec))
        v = jax.random.normal(jax.random.PRNGKey(5), (3, n), jnp.float64) * 3
        stim = jax.random.normal(jax.random.PRNGKey(6), (3, 2), jnp.float64)
        pred, msg = M.apply(params, spec, graph, v, stim)
    p = jax.tree.map(np.asarray, params)
    W = p["W"].reshape(n, n) * (1 - np.eye(n))
    msg_np = _np_mlp(p["g_phi"], np.asarray(v)[..., None]) @ W.T          # g_phi(v_j): no embedding
    e = np.zeros((3, n))
    e[:, [0, 3]] = np.asarray(stim)
    return params, v, pred, msg, msg_np, e


def test_additive_update_equals_numpy_float64():
    n = 7
    spec = _signal_spec(n)
    assert spec.edge_input_size == 1 and spec.update_input_size == 1 + spec.embedding_dim
    params, v, pred, msg, msg_np, e = _apply_x64(spec, n)
    p, vn = jax.tree.map(np.asarray, params), np.asarray(v)
    x = np.concatenate([vn[..., None], np.broadcast_to(p["a"], (3, n, spec.embedding_dim))], -1)
    expect = _np_mlp(p["f_theta"], x) + msg_np + e
    np.testing.assert_allclose(np.asarray(msg), msg_np, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(np.asarray(pred), expect, rtol=1e-12, atol=1e-12)
    # the generic update of the same shapes differs (the test can tell the two apart)
    generic = M.ModelSpec(**{**spec.__dict__, "update": "generic"})
    assert generic.update_input_size == 3 + spec.embedding_dim


def test_f_theta_zero_penalty_value_and_gate():
    spec = _signal_spec()
    params = _params(spec)
    cfg = load_config(None, {"training.coeff_f_theta_zero": 0.3, "training.batch_size": 4})
    c = coefficients(cfg.training, 0)
    v0 = jnp.ones(spec.n_nodes)
    term = regularizers(params, spec, v0, 1.0, c)["f_theta_zero"]
    p = jax.tree.map(np.asarray, params)
    x = np.concatenate([np.zeros((spec.n_nodes, 1)), p["a"]], -1)
    expect = 0.3 * 4 * np.sqrt(np.sum(_np_mlp(p["f_theta"], x) ** 2))   # once per frame of the batch
    assert float(term) == pytest.approx(expect, rel=1e-5)
    assert expect > 1e-3
    off = coefficients(load_config().training, 0)
    assert float(regularizers(params, spec, v0, 1.0, off)["f_theta_zero"]) == 0.0

    # its gradient reaches f_theta and the embeddings, and is exactly zero when the coefficient is 0
    def term_grad(coeffs):
        return jax.grad(lambda q: regularizers(q, spec, v0, 1.0, coeffs)["f_theta_zero"])(params)

    g_on, g_off = term_grad(c), term_grad(off)
    assert np.abs(np.asarray(g_on["a"])).max() > 0 and np.abs(np.asarray(g_on["f_theta"][0]["w"])).max() > 0
    assert all(np.all(np.asarray(x) == 0) for x in jax.tree.leaves(g_off))
    # and it is part of the one-step loss
    graph = M.dense_graph(spec.n_nodes, np.array([0]))
    batch = Batch(jnp.ones((2, spec.n_nodes)), jnp.zeros((2, spec.n_nodes)), jnp.zeros((2, 1)))
    assert float(one_step_loss(params, spec, graph, batch, 1.0, c)[1]["f_theta_zero"]) == pytest.approx(expect, rel=1e-5)


def test_config_keys_for_the_signal_gnn():
    cfg = load_config(None, {"graph_model.update_type": "none", "graph_model.g_phi_input": "voltage",
                             "graph_model.signal_model_name": "dense", "graph_model.input_size": 1,
                             "graph_model.input_size_update": 3, "training.coeff_lin_phi_zero": 1.0})
    assert cfg.training.coeff_f_theta_zero == 1.0
    from fvjax.train import model_spec
    spec = model_spec(cfg, 5, 25)
    assert (spec.update, spec.edge_embedding) == ("additive", False)
    with pytest.raises(ConfigError, match="g_phi_input"):
        load_config(None, {"graph_model.input_size": 1})
    with pytest.raises(ConfigError, match="update_type"):
        load_config(None, {"graph_model.input_size_update": 3})
    with pytest.raises(ConfigError, match="flyvis_B"):
        load_config(None, {"graph_model.signal_model_name": "flyvis_B", "graph_model.g_phi_input": "voltage"})


def _net(n=60, seed=0):
    rng = np.random.default_rng(seed)
    node_type = type_blocks(n, 4)
    g, s, c = np.array([(10, 1, 1), (10, 2, 1), (10, 1, 2), (10, 2, 2)], np.float64)[node_type].T
    g = g * (1 + 0.1 * node_type)     # unequal gains, so g_R2 is defined
    W = rng.standard_cauchy((n, n)) / n**0.7
    np.fill_diagonal(W, 0)
    return PDEN2Network(W=W.reshape(-1), g=g, s=s, c=c, node_type=node_type.astype(np.int32),
                        input_index=np.zeros(0, np.int32))


def test_pde_n2_scores_recover_an_exact_model(monkeypatch):
    net, n, k = _net(), 60, -2.5
    spec = M.ModelSpec(n_nodes=n, n_edges=n * n, variant="dense", edge_embedding=False, update="additive")
    W_learned = (net.g[:, None] * net.matrix / k).reshape(-1)      # W* = W k = g W exactly

    def exact(params, spec, u):   # g_phi = k tanh(u) + 0.3; f = -c u + s tanh(u) + 0.1, at each neuron's u (N, P)
        return k * np.tanh(u) + 0.3, -net.c[:, None] * u + net.s[:, None] * np.tanh(u) + 0.1

    monkeypatch.setattr(P, "learned_functions", exact)
    mu = np.linspace(-3, 6, n)                           # some neurons sit where tanh is flat
    voltages = mu + 3.0 * np.random.default_rng(2).standard_normal((300, n))
    out, arrays = P.pde_n2_scores({"W": jnp.asarray(W_learned)}, spec, net, voltages)
    for key in ("connectivity_R2", "c_R2", "s_R2", "g_R2", "tau_R2"):
        assert out[key] == pytest.approx(1.0, abs=1e-9), key
    assert out["g_rel_error"] == pytest.approx(0.0, abs=1e-6)   # W is stored in float32
    np.testing.assert_allclose(arrays["g_phi_tanh_gain"], k, rtol=1e-9)
    from fvjax.runs import per_type_table
    table = per_type_table({**arrays, "V_rest": np.zeros(n)}, net, net)    # what `fvjax show` prints
    assert list(table["c_learned"]) == pytest.approx([1, 1, 2, 2]) and table["g_learned"][3] == pytest.approx(13.0)
    assert list(table["s_true"]) == pytest.approx([1, 2, 1, 2])

    # a wrong W and a wrong f lower the scores (hand-checkable direction)
    noisy = W_learned + np.random.default_rng(1).standard_normal(n * n) * np.std(W_learned)
    monkeypatch.setattr(P, "learned_functions", lambda p, s_, u: (k * np.tanh(u), -u + np.tanh(u)))
    bad, _ = P.pde_n2_scores({"W": jnp.asarray(noisy)}, spec, net, voltages)
    assert bad["connectivity_R2"] < 0.7 and not bad["c_R2"] > 0.5 and bad["g_rel_error"] > 0.1   # c_hat = 1 for all


def test_pde_n2_scores_fit_each_neuron_where_its_data_are(monkeypatch):
    """An MLP is right only where its neuron's data lie. The fast-leak types (c = 2) live in a narrower
    range; outside it the learned update bends away (a cubic term). Fitted on each neuron's own voltages
    c and s are exact; fitted on a grid pooled over all neurons (the earlier scorer) s was not (R^2 < 0.5)."""
    net, n = _net(), 60
    spec = M.ModelSpec(n_nodes=n, n_edges=n * n, variant="dense", edge_embedding=False, update="additive")
    width = np.where(net.c == 2, 4.0, 9.0)                  # each neuron's range: |u| <= width

    def right_inside(params, spec, u):
        true = -net.c[:, None] * u + net.s[:, None] * np.tanh(u)
        outside = np.clip(np.abs(u) - width[:, None], 0, None)
        return np.tanh(u), true - 0.5 * np.sign(u) * outside**2

    monkeypatch.setattr(P, "learned_functions", right_inside)
    rng = np.random.default_rng(3)
    voltages = rng.uniform(-1, 1, (400, n)) * width
    out, arrays = P.pde_n2_scores({"W": jnp.asarray(net.matrix.reshape(-1))}, spec, net, voltages)
    assert out["s_R2"] == pytest.approx(1.0, abs=1e-9) and out["c_R2"] == pytest.approx(1.0, abs=1e-9)
    pooled = np.linspace(voltages.min(), voltages.max(), 200)        # the earlier scorer's grid
    alpha, beta, _ = P.basis_fit(pooled, right_inside(None, None, np.broadcast_to(pooled, (n, 200)))[1],
                                 P.UPDATE_BASIS).T
    from fvjax.evaluate.metrics import r2_affine
    assert r2_affine(net.s, beta)[0] < 0.5


def test_basis_fit_and_row_gains_hand_values():
    u = np.linspace(-4, 4, 50)
    f = np.stack([2 * u - 3 * np.tanh(u) + 1, -u + 0.5])
    np.testing.assert_allclose(P.basis_fit(u, f, P.UPDATE_BASIS), [[2, -3, 1], [-1, 0, 0.5]], atol=1e-10)
    W = np.array([[1.0, 2.0], [0.0, 0.0]])
    gains = P.row_gains(W, 3 * W)
    assert gains[0] == pytest.approx(3.0) and np.isnan(gains[1])


def test_least_squares_W_matches_per_row_lstsq():
    from fvjax.dataset import spread_frames
    from fvjax.train.refit import least_squares_W
    rng = np.random.default_rng(3)
    T, n = 200, 9
    H = np.tanh(rng.standard_normal((T, n)) * 2)
    W_true = rng.standard_normal((n, n))
    np.fill_diagonal(W_true, 0)
    R = H @ W_true.T + 0.1 * rng.standard_normal((T, n))
    ridge = 0.5
    W = least_squares_W(H, R, ridge)
    for i in range(n):    # independent: ridge least squares over the columns j != i only
        cols = [j for j in range(n) if j != i]
        A = np.vstack([H[:, cols], np.sqrt(ridge) * np.eye(n - 1)])
        b = np.concatenate([R[:, i], np.zeros(n - 1)])
        np.testing.assert_allclose(W[i, cols], np.linalg.lstsq(A, b, rcond=None)[0], rtol=1e-9, atol=1e-12)
        assert W[i, i] == 0
    np.testing.assert_allclose(least_squares_W(H, H @ W_true.T, 0.0), W_true, atol=1e-8)
    assert list(spread_frames(10, 4)) == [0, 3, 6, 9] and len(spread_frames(3, 10)) == 3


def test_W_refit_config_guard():
    with pytest.raises(ConfigError, match="W_refit_every"):
        load_config(None, {"training.W_refit_every": 100})
    cfg = load_config(None, {"training.W_refit_every": 100, "graph_model.update_type": "additive",
                             "graph_model.signal_model_name": "dense"})
    assert cfg.training.W_refit_every == 100


def test_identifiability_fits_recover_W_from_noise_free_data():
    from fvjax.config import from_dict
    from fvjax.experiments.identifiability import free_update_r2, true_functions_r2
    from fvjax.networks.synthetic import make_network
    from fvjax.simulate import simulate
    sim = from_dict({"simulation": {"network": "synthetic", "synthetic_model": "PDE_N2", "n_neurons": 30,
                                    "seed": 5, "delta_t": 0.01, "noise_model_level": 0.0}}).simulation
    net = make_network(sim)
    U, Y = [], []
    with jax.enable_x64(True):    # short runs from 20 starts: rich enough for a full-rank Gram matrix
        for start in 5.0 * np.random.default_rng(0).standard_normal((20, 30)):
            _, traj = simulate(net.circuit(jnp.float64), jnp.asarray(start), jnp.zeros((40, 0)),
                               jax.random.PRNGKey(0), dt=0.01, noise_std=0.0)
            U.append(np.asarray(traj.voltage))
            Y.append(np.asarray(traj.target))
    U, Y = np.concatenate(U), np.concatenate(Y)
    assert true_functions_r2(U, Y, net, ridge=1e-9) == pytest.approx(1.0, abs=1e-6)
    free = free_update_r2(U, Y, net, rows=10)
    assert free["W_R2"] == pytest.approx(1.0, abs=1e-6) and free["c_R2"] == pytest.approx(1.0, abs=1e-6)
    # wrong functions do not fit: a linear g instead of tanh
    bent = net._replace(s=net.s * 0)          # f without its tanh term
    assert true_functions_r2(U, Y, bent, ridge=1e-9) < 0.999


def test_embedding_snapping_is_a_real_option_not_ignored():
    """The reference's sparsity step is built (fvjax.train.snap, tests/test_snap.py): the key is a
    training option, never reported as ignored; other values are refused."""
    cfg = load_config(None, {"training.sparsity": "replace_embedding_function"})
    assert cfg.training.sparsity == "replace_embedding_function" and "training.sparsity" not in cfg.ignored
    with pytest.raises(ConfigError, match="training.sparsity: 'replace' is not one of"):
        load_config(None, {"training.sparsity": "replace"})


def test_fit_with_W_refit_ends_on_the_least_squares_W(tmp_path, tiny_pde_n2):
    """A tiny PDE_N2 fit whose last block ends on the refit grid: its final W is the least-squares
    W for its final MLPs (refitting again changes nothing), and W differs from plain training."""
    from fvjax.dataset import load_dataset
    from fvjax.networks import generate_dataset
    from fvjax.train import fit
    from fvjax.train.refit import refit_W
    cfg = tiny_pde_n2(24, 300, {"n_iter": 10, "batch_size": 4, "steps_per_call": 4, "W_refit_every": 5,
                                "W_refit_frames": 200, "w_init_mode": "randn_scaled"})
    data = load_dataset(generate_dataset(cfg, tmp_path / "data", progress=False))
    graph = M.dense_graph(24, data.input_index)
    refit = fit(cfg, data, graph, tmp_path / "refit", progress=False)
    again = refit_W(refit.params, refit.spec, graph, data, 200, 1e-3)
    np.testing.assert_allclose(np.asarray(again["W"]), np.asarray(refit.params["W"]), rtol=1e-4, atol=1e-5)
    plain = fit(cfg.replace(**{"training.W_refit_every": 0}), data, graph, tmp_path / "plain", progress=False)
    assert np.abs(np.asarray(plain.params["W"]) - np.asarray(refit.params["W"])).max() > 1e-3


def test_gain_update_equals_numpy_float64_and_has_no_coupling():
    """update "gain": dv = f_theta([v, a]) + (1 + f_gain(a)) (msg + e), the flyvis equation's form; checked
    against float64 numpy, its v-msg coupling is exactly 0, and the other parameters are drawn as for
    the additive update (one more stream, not a shifted one)."""
    from fvjax.train.losses import f_theta_interaction

    n = 7
    spec = _signal_spec(n, update="gain")
    assert spec.update_input_size == 1 + spec.embedding_dim
    params, v, pred, msg, msg_np, e = _apply_x64(spec, n)
    with jax.enable_x64(True):
        coupling = f_theta_interaction(params, spec, v, jnp.asarray(msg), jnp.ones_like(v))
    p, vn = jax.tree.map(np.asarray, params), np.asarray(v)
    x = np.concatenate([vn[..., None], np.broadcast_to(p["a"], (3, n, spec.embedding_dim))], -1)
    gain = 1 + _np_mlp(p["f_gain"], p["a"])
    assert np.ptp(gain) > 0.1          # a gain of 1 for all (the additive update) would not match
    np.testing.assert_allclose(np.asarray(pred), _np_mlp(p["f_theta"], x) + gain * (msg_np + e), rtol=1e-12, atol=1e-12)
    assert np.abs(np.asarray(coupling)).max() < 1e-12
    additive = M.init(jax.random.PRNGKey(0), _signal_spec(n))
    gained = M.init(jax.random.PRNGKey(0), spec)
    assert set(gained) == set(additive) | {"f_gain"}
    for key in additive:
        for x_, y_ in zip(jax.tree.leaves(additive[key]), jax.tree.leaves(gained[key])):
            np.testing.assert_array_equal(np.asarray(x_), np.asarray(y_))


def test_gain_update_trains_its_gain_at_f_theta_rate():
    from fvjax.train.optim import labels, make_optimizer

    spec = _signal_spec(5, update="gain")
    params = _params(spec)
    assert labels(params)["f_gain"][0]["w"] == "f_theta"
    cfg = load_config(None, {"graph_model.update_type": "gain", "training.lr": 1e-3,
                             "training.learning_rate_update_start": 2e-3}).training
    opt = make_optimizer(cfg)
    grads = jax.tree.map(jnp.ones_like, params)
    updates, _ = opt.update(grads, opt.init(params), params)
    np.testing.assert_allclose(np.asarray(updates["f_gain"][0]["w"]), -2e-3, rtol=1e-4)   # Adam's first step: -lr
