"""The calibrated prior is bounded and active like trained model 000; flyvis's initial values are not."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fvjax.config import load_config
from fvjax.connectome import build_from_spec
from fvjax.groundtruth import (PriorSpec, calibrated_prior, flyvis_initial, from_tables, jacobian_radius,
                               sample_tables)
from fvjax.simulate import expand_frame, make_circuit, simulate, steady_state
from fvjax.stimulus import train_test_frames


def _activity(conn, gt, frames, noise):
    circuit = make_circuit(conn, gt)
    _, traj = simulate(circuit, steady_state(circuit), jnp.asarray(expand_frame(conn, frames)),
                       jax.random.PRNGKey(0), noise_std=noise)
    volts = np.asarray(traj.voltage[100:])
    type_std = np.array([np.median(volts[:, conn.node_type == k].std(0)) for k in range(conn.n_types)])
    return volts, type_std


@pytest.fixture(scope="module")
def movie():
    cfg = load_config(None, {"simulation.n_frames": 1100, "simulation.seed": 11})
    return train_test_frames(cfg.simulation)[0]


def test_calibrated_prior_is_bounded_and_active(conn, gt000, movie):
    gt = calibrated_prior(conn, seed=0, progress=False)
    v_star = np.asarray(steady_state(make_circuit(conn, gt)))
    assert jacobian_radius(conn, gt, v_star) <= 0.95 + 1e-3
    volts, type_std = _activity(conn, gt, movie, noise=0.05)
    ref_volts, ref_type_std = _activity(conn, gt000, movie, noise=0.05)
    assert np.isfinite(volts).all() and np.abs(volts).max() < 20
    med, ref_med = np.median(volts.std(0)), np.median(ref_volts.std(0))
    assert 0.5 * ref_med < med < 2.0 * ref_med, (med, ref_med)  # comparable to model 000 (~0.23)
    assert 0.1 < (volts < 0).mean() < 0.35  # the ReLU actually rectifies
    # active without noise too: no cell type is silent
    _, clean_std = _activity(conn, gt, movie, noise=0.0)
    assert (clean_std > 0.02).all()


def test_flyvis_initial_is_nearly_silent(conn, movie):
    _, clean_std = _activity(conn, flyvis_initial(conn), movie, noise=0.0)
    assert np.median(clean_std) < 0.01


def test_seeds_give_different_models(conn):
    a, b = sample_tables(conn, 0), sample_tables(conn, 1)
    assert not np.allclose(a[0], b[0]) and not np.allclose(a[2], b[2])
    tau = a[0]
    assert (tau >= 0.0194).all() and (tau <= 0.3163).all()
    np.testing.assert_array_equal(sample_tables(conn, 0)[2], a[2])  # deterministic


def test_prior_key_depends_on_spec_and_seed(conn):
    spec = PriorSpec()
    assert spec.key(0, conn) != spec.key(1, conn)
    assert spec.key(0, conn) != PriorSpec(n_iter=10).key(0, conn)


def test_jacobian_radius_against_dense_eigvals():
    spec = {"nodes": [{"name": n, "pattern": ["stride", [1, 1]]} for n in ("R1", "A", "B")],
            "edges": [{"src": "R1", "tar": "A", "alpha": 1, "offsets": [[[0, 0], 2.0], [[1, 0], 1.0]]},
                      {"src": "A", "tar": "B", "alpha": -1, "offsets": [[[0, 0], 1.5], [[0, 1], 1.0]]},
                      {"src": "B", "tar": "A", "alpha": 1, "offsets": [[[0, 0], 3.0]]}],
            "input_units": ["R1"], "output_units": ["B"]}
    conn = build_from_spec(spec, extent=2)
    rng = np.random.default_rng(0)
    gt = from_tables(conn, rng.uniform(0.02, 0.2, 3), rng.normal(0.5, 0.1, 3), rng.uniform(0.1, 0.5, 3))
    v = rng.normal(0.2, 0.5, conn.n_nodes)
    dense = np.zeros((conn.n_nodes, conn.n_nodes))
    np.add.at(dense, (conn.edge_dst, conn.edge_src), gt.W * (v[conn.edge_src] > 0))
    a = 0.02 / gt.tau.astype(np.float64)
    J = np.eye(conn.n_nodes) + a[:, None] * (-np.eye(conn.n_nodes) + dense)
    assert jacobian_radius(conn, gt, v) == pytest.approx(np.abs(np.linalg.eigvals(J)).max(), rel=1e-6)


def test_packaged_priors_cover_default_seeds(conn):
    from fvjax.groundtruth import packaged_prior

    for seed in range(9):
        assert packaged_prior(conn, seed) is not None, seed
    assert packaged_prior(conn, 10_000) is None
    assert packaged_prior(conn, 0, PriorSpec(n_iter=3)) is None  # other specs are not served


@pytest.mark.slow
def test_packaged_prior_matches_fresh_calibration(conn):
    from fvjax.groundtruth import packaged_prior

    fresh = calibrated_prior(conn, seed=0, cache=False, progress=False)
    shipped = packaged_prior(conn, 0)
    np.testing.assert_array_equal(fresh.tau_per_type, shipped.tau_per_type)
    np.testing.assert_allclose(fresh.syn_strength, shipped.syn_strength, rtol=1e-2, atol=1e-6)
