"""The reference's synthetic network (PDE_N2, docs/synthetic.md): simulator against a float64 numpy
re-implementation, the reference's Lorentz W rules, type blocks, config guards, and a tiny run whose
analysis.log is checked against independent computations."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fvjax.config import ConfigError, from_dict
from fvjax.simulate import simulate
from fvjax.networks.synthetic import (PDEN2Network, lorentz_exponent, make_network, reference_connectivity,
                             type_blocks)

PARAMS = ((10.0, 1.0, 1.0), (10.0, 2.0, 1.0), (10.0, 1.0, 2.0), (10.0, 2.0, 2.0))


def _sim(**kw):
    base = {"network": "synthetic", "synthetic_model": "PDE_N2", "n_neurons": 40, "n_frames": 300, "seed": 4,
            "delta_t": 0.01, "noise_model_level": 0.0}
    return from_dict({"simulation": {**base, **kw}}).simulation


def _numpy_euler(net, u0, drive, dt):
    """Float64 reference: u <- u + dt (-c u + s tanh u + g W tanh u + I); returns (states, du/dt)."""
    W, g, s, c = (np.asarray(x, np.float64) for x in (net.matrix, net.g, net.s, net.c))
    u, states, rates = np.asarray(u0, np.float64), [], []
    for frame in drive:
        inp = np.zeros_like(u)
        inp[net.input_index] = frame
        du = -c * u + s * np.tanh(u) + g * (W @ np.tanh(u)) + inp
        states.append(u)
        rates.append(du)
        u = u + dt * du
    return np.array(states), np.array(rates)


def test_simulator_equals_numpy_float64():
    net = make_network(_sim(n_neurons=12, n_neuron_types=4, n_input_neurons=2))
    rng = np.random.default_rng(0)
    u0, drive = 5.0 * rng.standard_normal(12), rng.standard_normal((6, 2))
    with jax.enable_x64(True):
        _, traj = simulate(net.circuit(jnp.float64), jnp.asarray(u0), jnp.asarray(drive), jax.random.PRNGKey(0),
                           dt=0.01, noise_std=0.0)
    states, rates = _numpy_euler(net, u0, drive, 0.01)
    np.testing.assert_allclose(np.asarray(traj.voltage), states, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(np.asarray(traj.target), rates, rtol=1e-12, atol=1e-12)
    assert np.abs(rates[0]).max() > 1.0      # the step is not trivially small


def test_reference_lorentz_statistics():
    n = 400
    W = reference_connectivity("Lorentz", n, np.random.default_rng(1))
    assert np.all(np.diag(W) == 0)
    off = W[~np.eye(n, dtype=bool)] * n**0.7
    assert np.abs(off).max() <= 25.0
    # P(|Cauchy| > 25) = 1 - (2 / pi) atan(25) = 0.02546 of the draws are zeroed
    assert np.mean(off == 0) == pytest.approx(1 - 2 / np.pi * np.arctan(25), abs=0.003)
    # the kept |w| N^0.7 are |Cauchy| given |C| <= 25, median tan(atan(25) / 2) = 0.9608: no rescaling
    assert np.median(np.abs(off[off != 0])) == pytest.approx(np.tan(np.arctan(25) / 2), rel=0.03)
    assert [lorentz_exponent(m) for m in (1000, 1999, 2000, 4000, 8000, 8001)] == [0.7, 0.7, 0.675, 0.67, 0.66, 0.5]
    gauss = reference_connectivity("Gaussian", n, np.random.default_rng(1))
    assert gauss[~np.eye(n, dtype=bool)].std() == pytest.approx(n**-0.5, rel=0.02)
    # the network draws W from simulation.seed alone, without rescaling
    sim = _sim(n_neurons=50)
    np.testing.assert_array_equal(make_network(sim).matrix,
                                  reference_connectivity("Lorentz", 50, np.random.default_rng(4)).astype(np.float32))
    assert not np.array_equal(make_network(sim).W, make_network(_sim(n_neurons=50, seed=5)).W)


def test_type_blocks_and_parameters():
    np.testing.assert_array_equal(type_blocks(10, 3), [0, 0, 0, 1, 1, 1, 2, 2, 2, 2])
    net = make_network(_sim(n_neurons=1000))
    assert isinstance(net, PDEN2Network) and net.n_types == 4
    for t, (g, s, c) in enumerate(PARAMS):
        block = slice(250 * t, 250 * (t + 1))
        assert np.all(net.node_type[block] == t)
        assert np.all(net.g[block] == g) and np.all(net.s[block] == s) and np.all(net.c[block] == c)
    np.testing.assert_allclose(net.tau, 1.0 / net.c)
    assert np.all(net.V_rest == 0) and len(net.input_index) == 0
    three = make_network(_sim(n_neuron_types=3, PDE_N2_params=[[1, 2, 3], [4, 5, 6], [7, 8, 9]]))
    np.testing.assert_array_equal(three.c[[0, 13, 39]], [3, 6, 9])


def test_config_guards_and_cli():
    from experiments.synthetic import build_config, main

    with pytest.raises(ConfigError, match="spectral_radius is used by synthetic_model tanh"):
        _sim(spectral_radius=1.5)
    with pytest.raises(ConfigError, match="PDE_N2_params is used by synthetic_model PDE_N2"):
        from_dict({"simulation": {"network": "synthetic", "PDE_N2_params": [[1, 1, 1]]}})
    with pytest.raises(ConfigError, match="4 rows"):
        _sim(n_neuron_types=3)
    assert main(["--model", "PDE_N2", "--spectral-radius", "1.5", "--time-steps", "1"]) == 2
    args = type("Args", (), {"seed": 2, "model": "PDE_N2", "model_low_rank": None, "dale": False, "ode": False,
                             "set": [], "recipe": "default"})()
    for flag in ("n_frames", "n_neurons", "low_rank", "connectivity_type", "spectral_radius", "n_iter",
                 "ode_method", "noise_recurrent_level"):
        setattr(args, flag, None)
    sim = build_config(args).simulation
    assert (sim.synthetic_model, sim.delta_t, sim.noise_model_level) == ("PDE_N2", 0.01, 0.0)
    assert round(sim.steady_state_time / sim.delta_t) == 1000     # the reference's 1000 warm-up steps


def _svd_ranks(activity):
    s = np.linalg.svd(np.asarray(activity, np.float64), compute_uv=False)[:min(100, min(activity.shape) - 1)]
    energy = np.cumsum(s**2) / np.sum(s**2)
    return [int(np.argmax(energy >= q)) + 1 for q in (0.90, 0.99)]


def test_dataset_run_and_analysis_log(tmp_path, tiny_pde_n2):
    from fvjax.dataset import load_dataset
    from fvjax.pipeline import run
    from fvjax.networks.synthetic import load_network

    # the reference's generic GNN at width 16 (update f([v, a, msg, e]), g_phi([v_j, a_j]))
    cfg = tiny_pde_n2(24, 300, {"n_iter": 20, "batch_size": 4, "steps_per_call": 10}, hidden_dim=16,
                      hidden_dim_update=16, update_type="generic", g_phi_input="voltage_embedding")
    metrics = run(cfg, tmp_path / "run", progress=False, plots=False)
    data = load_dataset(metrics["data_dir"])   # the shared dataset cache (fvjax.datacache)
    net = load_network(data.path)
    assert isinstance(net, PDEN2Network)
    np.testing.assert_array_equal(net.W, make_network(cfg.simulation).W)
    train, test = np.asarray(data.train.voltage), np.asarray(data.test.voltage)
    # frame 0: 50 warm-up Euler steps from u0 ~ N(0, 5^2) (rng seed + 1); targets: exact du/dt
    u0 = 5.0 * np.random.default_rng(3).standard_normal(24).astype(np.float32)
    warm, _ = _numpy_euler(net, u0, np.zeros((51, 0)), 0.01)
    np.testing.assert_allclose(train[0], warm[50], rtol=1e-4, atol=1e-4)
    _, rates = _numpy_euler(net, train[5], np.zeros((1, 0)), 0.01)
    np.testing.assert_allclose(data.train.target[5], rates[0], rtol=1e-4, atol=1e-4)
    assert np.abs(test[0] - train[0]).max() > 1.0                  # the test split starts elsewhere
    assert np.median(train[-100:].std(0)) > 0.3                    # self-sustained activity
    log = (tmp_path / "run" / "analysis.log").read_text()
    rho = float(re.search(r"^spectral radius: ([\d.]+)$", log, re.M).group(1))
    assert rho == pytest.approx(np.abs(np.linalg.eigvals(net.matrix.astype(np.float64))).max(), abs=6e-4)
    ranks = [int(re.search(rf"effective rank \({q}% var\): (\d+)", log).group(1)) for q in (90, 99)]
    assert ranks == _svd_ranks(train) == [metrics["effective_rank_90"], metrics["effective_rank_99"]]
    assert "W_raw_R2:" in log and np.isfinite(metrics["final_loss"])
