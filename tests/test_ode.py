"""Neural-ODE training: solvers against independent references, adjoints against each other and
against finite differences (float64)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.integrate import solve_ivp

from fvjax import model as M
from fvjax.config import ConfigError, from_dict
from fvjax.train import SeqBatch, coefficients, recurrent_loss
from fvjax.train.ode import ODEConfig, integrate, ode_loss

from .test_model_train import _randomize, _spec, _toy_graph

DT = 0.02


def _setup(steps=4, batch=2, dtype=jnp.float64):
    conn, graph = _toy_graph()
    spec = _spec(conn)
    params = _randomize(M.init(jax.random.PRNGKey(0), spec, dtype), jax.random.PRNGKey(1))
    params["W"] = params["W"] * 20  # a visible message term
    keys = jax.random.split(jax.random.PRNGKey(2), 2)
    volts = jax.random.normal(keys[0], (batch, steps + 1, conn.n_nodes), dtype)
    stim = jax.random.uniform(keys[1], (batch, steps, graph.input_index.shape[0]), dtype)
    return spec, graph, params, SeqBatch(volts, stim)


def _coeffs():
    cfg = from_dict({"training": {"coeff_g_phi_diff": 0.0, "coeff_g_phi_norm": 0.0}})
    return coefficients(cfg.training, 0)


def test_euler_ode_equals_recurrent_unroll():
    """A fixed-step Euler solve with one step per frame is exactly the recurrent Euler unroll."""
    with jax.enable_x64(True):
        spec, graph, params, batch = _setup()
        key = jax.random.PRNGKey(3)
        oc = ODEConfig("euler", adjoint=False, state_clamp=0.0)
        f_ode = lambda p: ode_loss(p, spec, graph, batch, 1.0, _coeffs(), key, DT, 0.0, oc)[0]  # noqa: E731
        f_rec = lambda p: recurrent_loss(p, spec, graph, batch, 1.0, _coeffs(), key, DT, 0.0)[0]  # noqa: E731
        np.testing.assert_allclose(f_ode(params), f_rec(params), rtol=1e-12)
        g1, g2 = jax.grad(f_ode)(params), jax.grad(f_rec)(params)
        for a, b in zip(jax.tree.leaves(g1), jax.tree.leaves(g2)):
            np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


# explicit Runge-Kutta steps written out by hand (independent of diffrax's tableau machinery)
def _rk4(f, v, h):
    k1 = f(v); k2 = f(v + h / 2 * k1); k3 = f(v + h / 2 * k2); k4 = f(v + h * k3)  # noqa: E702
    return v + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)


def _heun3(f, v, h):
    k1 = f(v); k2 = f(v + h / 3 * k1); k3 = f(v + 2 * h / 3 * k2)  # noqa: E702
    return v + h / 4 * (k1 + 3 * k3)


def _midpoint(f, v, h):
    return v + h * f(v + h / 2 * f(v))


def _euler(f, v, h):
    return v + h * f(v)


@pytest.mark.parametrize("method,step", [("rk4", _rk4), ("heun3", _heun3), ("midpoint", _midpoint),
                                         ("euler", _euler), ("dopri5", None)])
def test_solvers_match_independent_integrators(method, step):
    """Fixed-step methods equal a hand-written step per frame; dopri5 equals scipy's RK45 at tight
    tolerance; the stimulus switches at each frame boundary."""
    with jax.enable_x64(True):
        spec, graph, params, batch = _setup(steps=3, batch=1)
        oc = ODEConfig(method, rtol=1e-10, atol=1e-12, adjoint=False, state_clamp=0.0)
        got = np.asarray(integrate(params, spec, graph, batch.voltage[:, 0], batch.stimulus, DT, oc))[0]
        v = np.asarray(batch.voltage[0, 0])
        for k in range(3):
            stim = batch.stimulus[:, k]
            f = lambda y: np.asarray(M.apply(params, spec, graph, jnp.asarray(y)[None], stim)[0][0])  # noqa: E731
            v = step(f, v, DT) if step else solve_ivp(lambda t, y: f(y), (0, DT), v, rtol=1e-12, atol=1e-13).y[:, -1]
        np.testing.assert_allclose(got, v, rtol=1e-8 if step is None else 1e-11, atol=1e-10)


def test_adjoints_agree_and_match_finite_differences():
    with jax.enable_x64(True):
        spec, graph, params, batch = _setup()
        key = jax.random.PRNGKey(3)

        def loss(p, adjoint):
            oc = ODEConfig("dopri5", rtol=1e-9, atol=1e-11, adjoint=adjoint, state_clamp=0.0)
            return ode_loss(p, spec, graph, batch, 1.0, _coeffs(), key, DT, 0.0, oc)[0]

        g_back = jax.grad(loss)(params, True)
        g_ckpt = jax.grad(loss)(params, False)
        for a, b in zip(jax.tree.leaves(g_back), jax.tree.leaves(g_ckpt)):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-8)
        # central differences along a random direction in parameter space
        leaves, tree = jax.tree.flatten(params)
        direction = jax.tree.unflatten(tree, [jax.random.normal(jax.random.PRNGKey(k), x.shape, x.dtype)
                                              for k, x in enumerate(leaves)])
        eps = 1e-5
        shift = lambda s: jax.tree.map(lambda p, d: p + s * d, params, direction)  # noqa: E731
        fd = (loss(shift(eps), False) - loss(shift(-eps), False)) / (2 * eps)
        analytic = sum(jnp.vdot(g, d) for g, d in zip(jax.tree.leaves(g_ckpt), jax.tree.leaves(direction)))
        np.testing.assert_allclose(analytic, fd, rtol=1e-5)


def test_state_clamp_limits_what_the_field_sees():
    with jax.enable_x64(True):
        spec, graph, params, batch = _setup(steps=1, batch=1)
        big = SeqBatch(batch.voltage * 100, batch.stimulus)
        free = integrate(params, spec, graph, big.voltage[:, 0], big.stimulus, DT, ODEConfig("euler", state_clamp=0.0))
        clamped = integrate(params, spec, graph, big.voltage[:, 0], big.stimulus, DT, ODEConfig("euler", state_clamp=1.0))
        v0 = big.voltage[:, 0]
        expected = v0 + DT * M.apply(params, spec, graph, jnp.clip(v0, -1, 1), big.stimulus[:, 0])[0]
        np.testing.assert_allclose(clamped, expected, rtol=1e-12)
        assert not np.allclose(free, clamped)


def test_config_rejects_both_training_modes():
    with pytest.raises(ConfigError, match="choose one"):
        from_dict({"training": {"recurrent_training": True, "neural_ODE_training": True}})
    with pytest.raises(ConfigError, match="ode_method"):
        from_dict({"training": {"ode_method": "rk45"}})


@pytest.mark.parametrize("adjoint", [True, False])
def test_scanned_jitted_training_steps_with_each_adjoint(adjoint):
    """What fit runs: K steps under jit + lax.scan, the graph a traced argument."""
    from fvjax.train import init_state, make_optimizer
    from fvjax.train.step import StepConfig, make_steps

    spec, graph, params, batch = _setup(steps=2, dtype=jnp.float32)
    opt = make_optimizer(from_dict({}).training)
    sc = StepConfig(recurrent=True, dt=DT, ode=ODEConfig("rk4", adjoint=adjoint))
    _, scanned = make_steps(spec, opt, sc)
    batches = jax.tree.map(lambda x: jnp.stack([x] * 3), batch)
    state, terms = scanned(init_state(params, opt), batches, jax.random.split(jax.random.PRNGKey(0), 3), graph,
                           jnp.float32(1.0), _coeffs())
    assert terms["data"].shape == (3,) and np.isfinite(np.asarray(terms["data"])).all()
    assert int(state.step) == 3
