"""Centred messages (training.centre_messages): the same model, another parametrisation of its constant.

Checked against float64 numpy: the prediction, the msg = 0 probe the tau / V_rest fits read, the
gradient of a weight, the stored offset after a step, and the chunked f_theta fits' neuron layout."""

import jax
import jax.numpy as jnp
import numpy as np
import optax

from fvjax import model as M
from fvjax.dataset import mean_rectified
from fvjax.evaluate.metrics import f_theta_fits
from fvjax.train.step import StepConfig, init_state, make_steps
from tests.test_model_train import _randomize, _spec, _toy_graph


def _setup(centre_values=None, dtype=jnp.float64):
    conn, graph = _toy_graph()
    spec = _spec(conn, update="gain", centred=True)
    params = _randomize(M.init(jax.random.PRNGKey(0), spec, dtype), jax.random.PRNGKey(1))
    params["W"] = jax.random.normal(jax.random.PRNGKey(2), params["W"].shape, dtype)
    mu = np.linspace(0.2, 1.4, conn.n_nodes) if centre_values is None else centre_values
    return conn, graph._replace(centre=jnp.asarray(mu)), spec, params, mu


def _numpy_parts(params, spec, conn, v, mu):
    """float64 numpy: f_theta([v, a]), the gain 1 + f_gain(a), h = g_phi([v, a])^2 and the offset -sum W mu."""
    def mlp(layers, x):
        for layer in layers[:-1]:
            x = np.maximum(x @ np.asarray(layer["w"]) + np.asarray(layer["b"]), 0.0)
        return (x @ np.asarray(layers[-1]["w"]) + np.asarray(layers[-1]["b"]))[..., 0]
    a = np.asarray(params["a"])
    x = np.concatenate([v[..., None], np.broadcast_to(a, v.shape + a.shape[-1:])], -1)
    f, h = mlp(params["f_theta"], x), mlp(params["g_phi"], x) ** 2
    gain = 1.0 + mlp(params["f_gain"], a)
    W, src, dst = np.asarray(params["W"]), conn.edge_src, conn.edge_dst
    offset = -np.bincount(dst, W * mu[src], minlength=conn.n_nodes)
    msg = np.stack([np.bincount(dst, W * hb[src], minlength=conn.n_nodes) for hb in np.atleast_2d(h)])
    return f, gain, h, offset, msg


def test_centred_prediction_and_probe_against_numpy():
    """apply = f(v, a) + gain (sum W h - sum W mu + e), and the msg = 0 probe is f + gain * offset."""
    with jax.enable_x64(True):
        conn, graph, spec, params, mu = _setup()
        v = np.asarray(jax.random.normal(jax.random.PRNGKey(3), (2, conn.n_nodes), jnp.float64))
        stim = np.zeros((2, conn.n_inputs))
        pred, _ = M.apply(params, spec, graph, jnp.asarray(v), jnp.asarray(stim))
        f, gain, h, offset, msg = _numpy_parts(params, spec, conn, v, mu)
        assert np.abs(offset).max() > 0.1
        np.testing.assert_allclose(pred, f + gain * (msg + offset), rtol=1e-10, atol=1e-12)
        stored = M.with_centre(params, spec, graph)
        np.testing.assert_allclose(M.update_without_input(stored, spec, jnp.asarray(v), stored["a"]),
                                   f + gain * offset, rtol=1e-10, atol=1e-12)
        # the same probe in the neurons-first layout the fits use
        vt = jnp.asarray(v.T)
        probe = M.update_without_input(stored, spec, vt, stored["a"][:, None, :], M.input_offset(stored)[:, None])
        np.testing.assert_allclose(probe, (f + gain * offset).T, rtol=1e-10, atol=1e-12)


def test_weight_gradient_is_centred():
    """d pred_i / d W_e = gain_i (h_j - mu_j) for the edge e: j -> i: a weight's step leaves the mean
    input unchanged where mu is the mean of h."""
    with jax.enable_x64(True):
        conn, graph, spec, params, mu = _setup()
        v = jax.random.normal(jax.random.PRNGKey(4), (conn.n_nodes,), jnp.float64)
        stim = jnp.zeros((1, conn.n_inputs))
        f, gain, h, offset, msg = _numpy_parts(params, spec, conn, np.asarray(v), mu)
        e = 3
        i, j = conn.edge_dst[e], conn.edge_src[e]
        grad = jax.grad(lambda p: M.apply(p, spec, graph, v[None], stim)[0][0, i])(params)["W"]
        assert abs(grad[e] - gain[i] * (h[j] - mu[j])) < 1e-10
        assert abs(h[j] - mu[j]) > 1e-3
        uncentred = jax.grad(lambda p: M.apply(p, spec, graph._replace(centre=None), v[None], stim)[0][0, i])(
            {k: x for k, x in params.items() if k != "msg_offset"})["W"]
        assert abs(uncentred[e] - gain[i] * h[j]) < 1e-10


def test_stored_offset_follows_w_after_steps():
    """After training steps the stored offset is -sum W mu of the new W (the probes read it)."""
    conn, graph, spec, params, mu = _setup(dtype=jnp.float32)
    graph = graph._replace(centre=jnp.asarray(mu, jnp.float32))
    opt = optax.adam(1e-2)
    from fvjax.config import load_config
    from fvjax.train import coefficients
    c = coefficients(load_config().training, 0)
    _, scanned = make_steps(spec, opt, StepConfig())
    rng = np.random.default_rng(0)
    from fvjax.train.losses import Batch
    batch = Batch(jnp.asarray(rng.normal(0.5, 0.5, (3, 2, conn.n_nodes)), jnp.float32),
                  jnp.asarray(rng.normal(0.0, 1.0, (3, 2, conn.n_nodes)), jnp.float32),
                  jnp.zeros((3, 2, conn.n_inputs), jnp.float32))
    W0 = np.asarray(params["W"], np.float64)   # the state is donated to the step
    state, _ = scanned(init_state(params, opt), batch, jax.random.split(jax.random.PRNGKey(0), 3), graph,
                       jnp.float32(1.0), c)
    W = np.asarray(state.params["W"], np.float64)
    assert np.abs(W - W0).max() > 1e-3
    expect = -np.bincount(conn.edge_dst, W * mu[conn.edge_src], minlength=conn.n_nodes)
    np.testing.assert_allclose(state.params["msg_offset"], expect, rtol=1e-5, atol=1e-6)


def test_f_theta_fits_read_each_neurons_offset():
    """The chunked fits (chunk smaller than N, so neurons are split and padded) see each neuron's own
    offset: the intercept equals the probe's at that neuron."""
    with jax.enable_x64(True):
        conn, graph, spec, params, mu = _setup()
        stored = M.with_centre(params, spec, graph)
        n = conn.n_nodes
        m, sd = jnp.linspace(-0.5, 0.5, n), jnp.full((n,), 0.3)
        slope, intercept = f_theta_fits(stored, spec, m, sd, n_points=50, chunk=5)
        no_offset = {**stored, "msg_offset": jnp.zeros(n)}
        slope0, intercept0 = f_theta_fits(no_offset, spec, m, sd, n_points=50, chunk=5)
        f, gain, *_ = _numpy_parts(params, spec, conn, np.zeros((1, n)), mu)
        np.testing.assert_allclose(slope, slope0, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(intercept - intercept0, gain * np.asarray(stored["msg_offset"]), rtol=1e-8, atol=1e-10)


def test_mean_rectified_against_numpy():
    v = np.random.default_rng(0).normal(0.2, 1.0, (1000, 7)).astype(np.float32)
    np.testing.assert_allclose(mean_rectified(v, chunk=300), np.maximum(v.astype(np.float64), 0).mean(0), rtol=1e-12)
