import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fvjax import simulate as S


def _numpy_euler(W, src, dst, tau, V_rest, input_index, v0, stim, dt, noise, clamp):
    """Independent float64 reference: plain loops over frames, np.add.at scatter."""
    tau_eff = np.maximum(tau, dt) if clamp else tau
    v = v0.astype(np.float64)
    volts, targets = [], []
    for t in range(len(stim)):
        msg = np.zeros_like(v)
        np.add.at(msg, dst, W * np.maximum(v[src], 0.0))
        x = np.zeros_like(v)
        x[input_index] += stim[t]
        y = (-v + V_rest + msg + x) / tau_eff
        volts.append(v.copy())
        targets.append(y)
        v = v + dt * y + noise[t]
    return v, np.array(volts), np.array(targets)


def test_flyvis_parity(conn, gt000, shared_data):
    ref = np.load(shared_data / "flyvis_model_000_reference_traj.npz")
    circuit = S.make_circuit(conn, gt000)
    v_steady = S.steady_state(circuit, n_steps=50, grey=0.5, dt=0.02, tau_clamp=True)
    np.testing.assert_allclose(np.asarray(v_steady), ref["v_steady"], atol=1e-5, rtol=0)
    stim = jnp.asarray(S.expand_frame(conn, ref["movie"]))
    v_last, traj = S.simulate(circuit, v_steady, stim, jax.random.PRNGKey(0), noise_std=0.0, tau_clamp=True)
    activity = np.concatenate([np.asarray(traj.voltage[1:]), np.asarray(v_last)[None]])
    np.testing.assert_allclose(activity, ref["activity"], atol=1e-5, rtol=0)
    # without the clamp the trajectory is measurably different (so the flag does something)
    v_raw, _ = S.simulate(circuit, v_steady, stim, jax.random.PRNGKey(0), noise_std=0.0, tau_clamp=False)
    assert np.abs(np.asarray(v_raw) - ref["activity"][-1]).max() > 1e-3


@pytest.mark.parametrize("clamp", [False, True])
def test_float64_numpy_reference_with_noise(conn, gt000, clamp):
    T, dt, sigma = 6, 0.02, 0.05
    key = jax.random.PRNGKey(3)
    rng = np.random.default_rng(0)
    stim = rng.uniform(0, 1, (T, conn.n_inputs))
    with jax.enable_x64(True):
        circuit = S.make_circuit(conn, gt000, dtype=jnp.float64)
        v0 = S.steady_state(circuit, n_steps=20, tau_clamp=clamp)
        v_last, traj = S.simulate(circuit, v0, jnp.asarray(stim), key, t0=5, dt=dt, noise_std=sigma,
                                  tau_clamp=clamp)
        noise = np.stack([sigma * np.asarray(jax.random.normal(jax.random.fold_in(key, 5 + t),
                                                               (conn.n_nodes,), jnp.float64))
                          for t in range(T)])
        v_ref, volts, targets = _numpy_euler(
            gt000.W.astype(np.float64), conn.edge_src, conn.edge_dst, gt000.tau.astype(np.float64),
            gt000.V_rest.astype(np.float64), conn.input_node_index.reshape(-1), np.asarray(v0), stim, dt,
            noise, clamp)
        np.testing.assert_allclose(np.asarray(traj.voltage), volts, rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(np.asarray(traj.target), targets, rtol=1e-9, atol=1e-8)
        np.testing.assert_allclose(np.asarray(v_last), v_ref, rtol=1e-9, atol=1e-9)


def test_chunks_concatenate_exactly(conn, gt000):
    circuit = S.make_circuit(conn, gt000)
    stim = jnp.asarray(np.random.default_rng(1).uniform(0, 1, (10, conn.n_inputs)), jnp.float32)
    key = jax.random.PRNGKey(7)
    v0 = circuit.V_rest
    v_all, tr_all = S.simulate(circuit, v0, stim, key)
    v_a, tr_a = S.simulate(circuit, v0, stim[:4], key, t0=0)
    v_b, tr_b = S.simulate(circuit, v_a, stim[4:], key, t0=4)
    np.testing.assert_array_equal(np.asarray(v_all), np.asarray(v_b))
    np.testing.assert_array_equal(np.asarray(tr_all.voltage),
                                  np.concatenate([tr_a.voltage, tr_b.voltage]))
    # recorded target is the noise-free rhs at the recorded state
    np.testing.assert_allclose(np.asarray(tr_all.target[3]),
                               np.asarray(S.rhs(circuit, tr_all.voltage[3], stim[3])), rtol=1e-5, atol=1e-3)
    # and the noise really is there: v(t+1) - v(t) - dt*y(t) has std ~ 0.05
    resid = np.asarray(tr_all.voltage[1:] - tr_all.voltage[:-1] - 0.02 * tr_all.target[:-1])
    assert 0.045 < resid.std() < 0.055


def test_expand_frame(conn):
    lum = np.arange(217, dtype=np.float32)
    stim = S.expand_frame(conn, lum)
    assert stim.shape == (1736,)
    np.testing.assert_array_equal(stim.reshape(8, 217), np.tile(lum, (8, 1)))
    # every R_k node of hexal h gets lum[h] (input_node_index rows are R1..R8)
    x = np.zeros(conn.n_nodes, np.float32)
    x[conn.input_node_index.reshape(-1)] = stim
    for k in range(8):
        np.testing.assert_array_equal(x[conn.input_node_index[k]], lum)
