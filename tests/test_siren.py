"""SIREN visual field (seed 002): forward pass against numpy, init bounds, coordinates, field_R2 by
hand, a fit of a known field, and training wiring (gradients, learning-rate partition)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from fvjax.evaluate import metrics as MT
from fvjax import model as M
from fvjax.config import ConfigError, from_dict, load_config
from fvjax.train import Batch, coefficients, init_state, make_optimizer, make_steps, one_step_loss
from fvjax.train.step import StepConfig

from .test_model_train import _toy_graph


def _spec(conn, **kw):
    opts = {"field": "visual", "siren_hidden": 16, "siren_layers": 2, "omega": 30.0, "T_period": 50.0, **kw}
    return M.ModelSpec(n_nodes=conn.n_nodes, n_edges=conn.n_edges, hidden_dim=8, hidden_dim_update=8, **opts)


def _graph_xy():
    conn, graph = _toy_graph()
    xy = M.input_positions(conn.node_u, conn.node_v, np.asarray(graph.input_index))
    return conn, graph._replace(input_xy=jnp.asarray(xy))


def test_siren_forward_matches_numpy_float64():
    with jax.enable_x64(True):
        layers = M.siren_init(jax.random.PRNGKey(0), [3, 5, 5, 1], 30.0, jnp.float64)
        x = np.random.default_rng(0).normal(size=(7, 3))
        h = x
        for layer in layers[:-1]:
            h = np.sin(30.0 * (h @ np.asarray(layer["w"]) + np.asarray(layer["b"])))
        expected = h @ np.asarray(layers[-1]["w"]) + np.asarray(layers[-1]["b"])
        np.testing.assert_allclose(M.siren_apply(layers, jnp.asarray(x), 30.0), expected, rtol=1e-12)


def test_siren_init_bounds():
    layers = M.siren_init(jax.random.PRNGKey(0), [3, 256, 256, 1], 30.0)
    first, second = np.asarray(layers[0]["w"]), np.asarray(layers[1]["w"])
    assert np.abs(first).max() <= 1 / 3 and np.abs(first).max() > 0.95 / 3
    bound = np.sqrt(6 / 256) / 30
    assert np.abs(second).max() <= bound and np.abs(second).max() > 0.95 * bound


def test_visual_field_coordinates():
    conn, graph = _graph_xy()
    spec = _spec(conn)
    params = M.init(jax.random.PRNGKey(0), spec)
    xy = np.asarray(graph.input_xy)
    assert np.sqrt((xy**2).sum(1)).max() == pytest.approx(1.0)
    got = np.asarray(M.visual_field(params, spec, graph, jnp.array([3, 10])))
    assert got.shape == (2, xy.shape[0]) and (got >= 0).all()
    coords = np.concatenate([xy * 2 * np.pi, np.full((len(xy), 1), 10 * 2 * np.pi / 50.0)], 1)
    expected = np.asarray(M.siren_apply(params["NNR_f"], jnp.asarray(coords, jnp.float32), 30.0))[:, 0] ** 2
    np.testing.assert_allclose(got[1], expected, rtol=1e-5)
    with pytest.raises(ValueError, match="input_xy"):
        M.visual_field(params, spec, graph._replace(input_xy=None), jnp.array([0]))


def test_field_r2_by_hand():
    pred = np.array([[0.0, 1.0], [2.0, 3.0]])
    assert MT.field_r2(2 * pred + 1, pred) == (pytest.approx(1.0), pytest.approx(2.0))
    true = np.array([[1.0, 0.0], [1.0, 0.0]])
    pred2 = np.array([[1.0, 0.0], [0.0, 1.0]])
    # x = [1, 0, 0, 1], y = [1, 0, 1, 0]: mean(xy) - mean(x) mean(y) = 0.25 - 0.25 = 0 -> slope 0, R2 0
    r2, slope = MT.field_r2(true, pred2)
    assert r2 == pytest.approx(0.0, abs=1e-12) and slope == pytest.approx(0.0, abs=1e-12)
    assert MT.field_r2(true, np.zeros_like(true)) == (0.0, 0.0)
    np.testing.assert_array_equal(MT.field_frames(100), np.arange(0, 100, 2))
    assert MT.field_frames(64000)[-1] == 798


def test_siren_learns_a_moving_grating():
    """The SIREN alone fits e(x, y, k) = (1 + sin(3x - 0.2k)) / 2 on the input lattice: field_R2 > 0.9."""
    conn, graph = _graph_xy()
    spec = _spec(conn, siren_hidden=32)
    params = M.init(jax.random.PRNGKey(1), spec)["NNR_f"]
    frames = jnp.arange(40)
    x = graph.input_xy[:, 0]
    target = (1 + jnp.sin(3 * x[None] - 0.2 * frames[:, None])) / 2
    opt = optax.adam(1e-3)
    state = opt.init(params)

    def loss(p):
        return jnp.mean((M.visual_field({"NNR_f": p}, spec, graph, frames) - target) ** 2)

    @jax.jit
    def step(p, s):
        g = jax.grad(loss)(p)
        u, s = opt.update(g, s)
        return optax.apply_updates(p, u), s

    for _ in range(600):
        params, state = step(params, state)
    pred = M.visual_field({"NNR_f": params}, spec, graph, frames)
    assert MT.field_r2(np.asarray(target), np.asarray(pred))[0] > 0.9


def test_training_uses_the_field_and_its_own_learning_rate():
    conn, graph = _graph_xy()
    spec = _spec(conn)
    params = M.init(jax.random.PRNGKey(0), spec)
    n_in = graph.input_index.shape[0]
    batch = Batch(jnp.ones((2, conn.n_nodes)), jnp.ones((2, conn.n_nodes)), jnp.zeros((2, n_in)), jnp.array([1, 5]))
    cfg = load_config(None, {"training.learning_rate_NNR_f": 0.0})
    coeffs = coefficients(cfg.training, 0)
    grads = jax.grad(lambda p: one_step_loss(p, spec, graph, batch, 1.0, coeffs)[0])(params)
    assert float(jnp.abs(grads["NNR_f"][0]["w"]).sum()) > 0          # the loss reaches the SIREN
    # the recorded stimulus is ignored when the field is on
    other = batch._replace(stimulus=jnp.full((2, n_in), 9.0))
    assert one_step_loss(params, spec, graph, other, 1.0, coeffs)[0] == one_step_loss(params, spec, graph, batch, 1.0, coeffs)[0]
    before = jax.tree.map(np.asarray, params)           # the step donates (deletes) its input state
    single, _ = make_steps(spec, make_optimizer(cfg.training), StepConfig())
    state, _ = single(init_state(params, make_optimizer(cfg.training)), batch, jax.random.PRNGKey(0), graph,
                      jnp.float32(1.0), coeffs)
    np.testing.assert_array_equal(state.params["NNR_f"][0]["w"], before["NNR_f"][0]["w"])   # lr 0
    assert not np.array_equal(state.params["W"], before["W"])
    with pytest.raises(ValueError, match="frame indices"):
        one_step_loss(state.params, spec, graph, batch._replace(frame=None), 1.0, coeffs)


def test_field_config_keys():
    cfg = from_dict({"graph_model": {"field_type": "visual", "omega_f": 2048, "hidden_dim_nnr_f": 2048,
                                     "n_layers_nnr_f": 3, "nnr_f_T_period": 64000},
                     "training": {"learning_rate_NNR_f": 1e-8}})
    assert cfg.graph_model.field_type == "visual" and cfg.training.learning_rate_NNR_f == 1e-8
    with pytest.raises(ConfigError, match="outermost_linear_nnr_f"):
        from_dict({"graph_model": {"outermost_linear_nnr_f": False}})
    with pytest.raises(ConfigError, match="omega_f_learning"):
        from_dict({"graph_model": {"omega_f_learning": True}})
    with pytest.raises(ConfigError, match="field_type"):
        from_dict({"graph_model": {"field_type": "visual_NNR"}})
