"""Synthetic networks (seed 003): generator rules, dense simulator and dense GNN against independent
references, and a tiny end-to-end run through the shared pipeline."""

import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fvjax import model as M
from fvjax.config import from_dict
from fvjax.dataset import load_dataset
from fvjax.simulate import rhs, simulate
from fvjax.networks.synthetic import connectivity, load_network, make_network


def _sim(**kw):
    base = {"network": "synthetic", "n_neurons": 60, "n_neuron_types": 3, "n_frames": 300, "seed": 4}
    return from_dict({"simulation": {**base, **kw}}).simulation


def test_spectral_radius_diagonal_and_determinism():
    sim = _sim()
    W = connectivity(sim, np.random.default_rng(0))
    assert np.abs(np.diag(W)).max() == 0
    assert np.abs(np.linalg.eigvals(W)).max() == pytest.approx(sim.spectral_radius, rel=1e-9)
    np.testing.assert_array_equal(make_network(sim).W, make_network(sim).W)
    assert not np.array_equal(make_network(sim).W, make_network(_sim(seed=5)).W)


def test_low_rank_dale_and_filling():
    low = connectivity(_sim(low_rank=3), np.random.default_rng(0))
    # an off-diagonal block (no zeroed diagonal entries in it) has exactly rank 3
    assert np.linalg.matrix_rank(low[:30, 30:], tol=1e-9 * np.abs(low).max()) == 3
    assert np.linalg.matrix_rank(connectivity(_sim(), np.random.default_rng(0))[:30, 30:]) == 30
    dale = connectivity(_sim(Dale_law=True, Dale_law_factor=0.7), np.random.default_rng(0))
    col_signs = [set(np.sign(c[c != 0])) for c in dale.T]
    assert all(len(sg) == 1 for sg in col_signs)          # one sign per presynaptic neuron
    frac_exc = np.mean([sg == {1.0} for sg in col_signs])
    assert 0.5 < frac_exc < 0.9
    sparse = connectivity(_sim(connectivity_filling_factor=0.2), np.random.default_rng(0))
    assert 0.15 < np.mean(sparse != 0) < 0.25


def test_lorentz_is_heavier_tailed_than_gaussian():
    def kurtosis(kind):
        w = connectivity(_sim(connectivity_type=kind, n_neurons=200), np.random.default_rng(1)).ravel()
        w = w[w != 0]
        return np.mean((w - w.mean()) ** 4) / w.var() ** 2
    assert kurtosis("Lorentz") > 20 > kurtosis("Gaussian")


def test_dense_rhs_equals_numpy_float64():
    sim = _sim(n_input_neurons=5)
    net = make_network(sim)
    with jax.enable_x64(True):
        circuit = net.circuit(jnp.float64)
        v = np.random.default_rng(0).normal(size=net.n_nodes)
        stim = np.arange(5.0)
        got = np.asarray(rhs(circuit, jnp.asarray(v), jnp.asarray(stim)))
    drive = np.zeros(net.n_nodes)
    drive[:5] = stim
    W = net.matrix.astype(np.float64)
    expected = (-v + net.V_rest + W @ np.tanh(v) + drive) / net.tau
    np.testing.assert_allclose(got, expected, rtol=1e-6)


def test_dense_model_equals_flyvis_A_on_all_pairs():
    n = 7
    graph = M.dense_graph(n, [0, 1])
    with jax.enable_x64(True):
        dense = M.ModelSpec(n_nodes=n, n_edges=n * n, variant="dense", hidden_dim=8, hidden_dim_update=8,
                            g_phi_positive=False)
        sparse = M.ModelSpec(n_nodes=n, n_edges=n * n, variant="flyvis_A", hidden_dim=8, hidden_dim_update=8,
                             g_phi_positive=False)
        params = M.init(jax.random.PRNGKey(0), dense, jnp.float64)
        params["a"] = jax.random.normal(jax.random.PRNGKey(1), params["a"].shape, jnp.float64)
        v = jax.random.normal(jax.random.PRNGKey(2), (3, n), jnp.float64)
        stim = jnp.ones((3, 2))
        # the dense model ignores the diagonal: equal to flyvis_A with self-weights set to zero
        no_self = {**params, "W": params["W"] * (1 - jnp.eye(n)).reshape(-1)}
        np.testing.assert_allclose(M.apply(params, dense, graph, v, stim)[0],
                                   M.apply(no_self, sparse, graph, v, stim)[0], rtol=1e-12)
        assert not np.allclose(M.apply(params, sparse, graph, v, stim)[0], M.apply(no_self, sparse, graph, v, stim)[0])
    assert int(graph.src[n + 2]) == 2 and int(graph.dst[n + 2]) == 1   # edge 1 * n + 2 is 2 -> 1
    with pytest.raises(ValueError, match="n_nodes"):
        M.ModelSpec(n_nodes=n, n_edges=10, variant="dense")


def test_dense_simulation_is_bounded_and_active():
    sim = _sim(n_neurons=200, n_neuron_types=4)
    net = make_network(sim)
    _, traj = simulate(net.circuit(), jnp.asarray(net.V_rest), jnp.zeros((2000, 0)), jax.random.PRNGKey(0))
    v = np.asarray(traj.voltage[500:])
    # |tanh| <= 1 bounds each neuron by |V_rest_i| + sum_j |W_ij| (plus the process noise)
    bound = np.abs(net.V_rest) + np.abs(net.matrix).sum(1) + 1.0
    assert np.isfinite(v).all() and (np.abs(v).max(0) <= bound).all()
    assert np.median(v.std(0)) > 0.05          # spectral radius 2: self-sustained activity


def test_synthetic_dataset_and_pipeline(tmp_path):
    from fvjax.pipeline import run

    cfg = from_dict({"simulation": {"network": "synthetic", "n_neurons": 30, "n_neuron_types": 3,
                                    "n_frames": 400, "n_input_neurons": 4, "seed": 1},
                     "graph_model": {"signal_model_name": "dense", "g_phi_positive": False, "hidden_dim": 16,
                                     "hidden_dim_update": 16},
                     "training": {"n_iter": 40, "batch_size": 4, "steps_per_call": 10}})
    metrics = run(cfg, tmp_path / "run", progress=False, plots=False)
    data = load_dataset(metrics["data_dir"])
    assert Path(metrics["data_dir"]).parent == tmp_path / "datasets"
    assert data.network == "synthetic" and data.train.stimulus.shape == (400, 4)
    assert len(data.test) == 50
    net = load_network(data.path)
    np.testing.assert_array_equal(net.W, make_network(cfg.simulation).W)
    assert data.train.stimulus[:, :].std() > 0.3                 # the OU drive reaches the inputs
    for key in ("connectivity_R2", "tau_R2", "cluster_accuracy", "test_R2", "effective_rank_99"):
        assert key in metrics
    assert "effective rank (99% var)" in (tmp_path / "run" / "analysis.log").read_text()
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["iterations"] == 40
    # running the finished folder again re-evaluates it: the same metrics, the final loss read back from loss.csv
    again = run(cfg, tmp_path / "run", progress=False, plots=False)
    assert np.isfinite(metrics["final_loss"]) and again["final_loss"] == pytest.approx(metrics["final_loss"], rel=1e-6)
    assert again["connectivity_R2"] == metrics["connectivity_R2"] and again["iterations"] == 40
    # the same folder with different simulation settings is refused, never silently reused
    with pytest.raises(ValueError, match="spectral_radius"):
        run(cfg.replace(**{"simulation.spectral_radius": 1.0}), tmp_path / "run", progress=False, plots=False)


def test_neural_ode_training_on_a_synthetic_network(tmp_path):
    from fvjax.pipeline import run

    cfg = from_dict({"simulation": {"network": "synthetic", "n_neurons": 20, "n_neuron_types": 2, "n_frames": 200},
                     "graph_model": {"signal_model_name": "dense", "g_phi_positive": False, "hidden_dim": 8,
                                     "hidden_dim_update": 8},
                     "training": {"n_iter": 6, "batch_size": 2, "steps_per_call": 3, "neural_ODE_training": True,
                                  "time_step": 3, "ode_method": "rk4", "ode_adjoint": False}})
    metrics = run(cfg, tmp_path / "ode", progress=False, plots=False)
    assert metrics["iterations"] == 6 and np.isfinite(metrics["final_loss"])


def test_sweep_configs():
    from experiments.synthetic import PRESET, main, sweep_config

    base = from_dict(PRESET)
    cfg = sweep_config(base, 16, equal_time=True)
    assert cfg.training.recurrent_training and cfg.training.time_step == 16
    assert cfg.training.n_iter == base.training.n_iter // 16
    assert not sweep_config(base, 1, False).training.recurrent_training
    ode = sweep_config(base.replace(**{"training.neural_ODE_training": True}), 4, False)
    assert ode.training.neural_ODE_training and not ode.training.recurrent_training
    assert main(["--time-steps", "1,x"]) == 2


def test_run_many_in_pinned_processes_matches_sequential(tmp_path):
    """Two runs in two pinned worker processes give the same metrics as running them in turn."""
    from fvjax.pipeline import run_many

    def cfg(seed):
        return from_dict({"simulation": {"network": "synthetic", "n_neurons": 16, "n_neuron_types": 2,
                                         "n_frames": 120, "seed": seed},
                          "graph_model": {"signal_model_name": "dense", "g_phi_positive": False, "hidden_dim": 8,
                                          "hidden_dim_update": 8},
                          "training": {"n_iter": 8, "batch_size": 2, "steps_per_call": 4, "seed": seed}})

    seen = []
    tasks = [{"cfg": cfg(s), "run_dir": tmp_path / "par" / f"s{s}", "header": {"seed": s}, "plots": False}
             for s in (1, 2)]
    parallel = run_many(tasks, jobs=2, on_result=lambda t, m: seen.append(t["header"]["seed"]))
    sequential = run_many([{**t, "run_dir": tmp_path / "seq" / t["run_dir"].name} for t in tasks], jobs=1)
    assert sorted(seen) == [1, 2] and [m["seed"] for m in parallel] == [1, 2]
    for a, b in zip(parallel, sequential):
        assert a["final_loss"] == pytest.approx(b["final_loss"], rel=1e-5)
        assert a["connectivity_R2"] == pytest.approx(b["connectivity_R2"], rel=1e-4, abs=1e-6)


def test_low_rank_model_equals_dense_product_and_trains_at_lr_W():
    from fvjax.config import ConfigError
    from fvjax.train import coefficients, init_state, make_optimizer, make_steps
    from fvjax.train.losses import Batch
    from fvjax.train.step import StepConfig

    n, r = 9, 3
    graph = M.dense_graph(n, [0])
    with jax.enable_x64(True):
        low = M.ModelSpec(n_nodes=n, n_edges=n * n, variant="dense", hidden_dim=8, hidden_dim_update=8,
                          g_phi_positive=False, low_rank=r)
        full = M.ModelSpec(n_nodes=n, n_edges=n * n, variant="dense", hidden_dim=8, hidden_dim_update=8,
                           g_phi_positive=False)
        params = M.init(jax.random.PRNGKey(0), low, jnp.float64)
        assert "W" not in params and params["W_L"].shape == (n, r) and params["W_R"].shape == (r, n)
        W = np.asarray(params["W_L"]) @ np.asarray(params["W_R"])
        np.fill_diagonal(W, 0.0)
        np.testing.assert_allclose(M.weights(params, low), W.reshape(-1), rtol=1e-12, atol=1e-15)
        as_full = {k: v for k, v in params.items() if k not in ("W_L", "W_R")} | {"W": jnp.asarray(W.reshape(-1))}
        v = jax.random.normal(jax.random.PRNGKey(1), (2, n), jnp.float64)
        np.testing.assert_allclose(M.apply(params, low, graph, v, jnp.ones((2, 1)))[0],
                                   M.apply(as_full, full, graph, v, jnp.ones((2, 1)))[0], rtol=1e-10)
    cfg = from_dict({"training": {"lr_W": 0.0}})
    opt = make_optimizer(cfg.training)
    params = M.init(jax.random.PRNGKey(0), low)
    before = jax.tree.map(np.asarray, params)
    single, _ = make_steps(low, opt, StepConfig())
    batch = Batch(jnp.ones((2, n)), jnp.ones((2, n)), jnp.ones((2, 1)))
    state, _ = single(init_state(params, opt), batch, jax.random.PRNGKey(0), graph, jnp.float32(1.0),
                      coefficients(cfg.training, 0))
    np.testing.assert_array_equal(state.params["W_L"], before["W_L"])    # factors use lr_W (0 here)
    assert not np.array_equal(state.params["f_theta"][0]["w"], before["f_theta"][0]["w"])
    with pytest.raises(ConfigError, match="dense"):
        from_dict({"graph_model": {"low_rank_factorization": True}})
