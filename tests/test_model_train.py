import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fvjax import model as M
from fvjax.config import load_config
from fvjax.connectome import build_from_spec
from fvjax.train import (Batch, SeqBatch, coefficients, init_state, make_optimizer, make_steps,
                         one_step_loss, recurrent_loss, regularizers)
from fvjax.train.losses import l2
from fvjax.train.step import StepConfig


def _toy_graph(extent=2):
    spec = {"nodes": [{"name": n, "pattern": ["stride", [1, 1]]} for n in ("R1", "A", "B")],
            "edges": [{"src": "R1", "tar": "A", "alpha": 1, "offsets": [[[0, 0], 2.0], [[1, 0], 1.0]]},
                      {"src": "A", "tar": "B", "alpha": -1, "offsets": [[[0, 0], 1.5], [[0, 1], 1.0]]},
                      {"src": "B", "tar": "A", "alpha": 1, "offsets": [[[0, 0], 3.0]]}],
            "input_units": ["R1"], "output_units": ["B"]}
    conn = build_from_spec(spec, extent)
    graph = M.Graph(jnp.asarray(conn.edge_src), jnp.asarray(conn.edge_dst),
                    jnp.asarray(conn.input_node_index.reshape(-1)))
    return conn, graph


def _spec(conn, **kw):
    return M.ModelSpec(n_nodes=conn.n_nodes, n_edges=conn.n_edges, hidden_dim=8, hidden_dim_update=8, **kw)


def _randomize(params, key):
    """Non-trivial embeddings (init is all ones)."""
    params = dict(params)
    params["a"] = jax.random.normal(key, params["a"].shape, params["a"].dtype)
    return params


def test_per_node_g_phi_equals_per_edge_float64():
    conn, graph = _toy_graph()
    with jax.enable_x64(True):
        spec = _spec(conn)
        params = _randomize(M.init(jax.random.PRNGKey(0), spec, jnp.float64), jax.random.PRNGKey(1))
        v = jax.random.normal(jax.random.PRNGKey(2), (3, conn.n_nodes), jnp.float64)
        msg = M.messages(params, spec, graph, v)
        # explicit per-edge loop in numpy
        src, dst = np.asarray(graph.src), np.asarray(graph.dst)
        ref = np.zeros((3, conn.n_nodes))
        for e in range(len(src)):
            x = jnp.concatenate([v[:, src[e], None], jnp.broadcast_to(params["a"][src[e]], (3, 2))], -1)
            h = np.asarray(M.mlp_apply(params["g_phi"], x))[:, 0] ** 2
            ref[:, dst[e]] += np.asarray(params["W"])[e] * h
        np.testing.assert_allclose(np.asarray(msg), ref, rtol=1e-12, atol=1e-12)


def test_mlp_init_statistics():
    layers = M.mlp_init(jax.random.PRNGKey(0), [5, 400, 400, 1])
    first = np.asarray(layers[0]["w"])
    assert np.abs(first).max() <= 1 / np.sqrt(5) and np.abs(first).max() > 0.9 / np.sqrt(5)
    assert abs(np.asarray(layers[1]["w"]).std() - 0.1) < 0.005
    assert (np.asarray(layers[1]["b"]) == 0).all()


def test_w_init_modes():
    conn, _ = _toy_graph()
    assert (M.init(jax.random.PRNGKey(0), _spec(conn, w_init_mode="zeros"))["W"] == 0).all()
    big = M.ModelSpec(n_nodes=10, n_edges=200_000)
    w = np.asarray(M.init(jax.random.PRNGKey(0), big)["W"])
    assert abs(w.std() * np.sqrt(200_000) - 1.0) < 0.01
    with pytest.raises(ValueError, match="w_init_mode"):
        M.init(jax.random.PRNGKey(0), _spec(conn, w_init_mode="xavier"))


def test_regularizers_against_numpy():
    conn, graph = _toy_graph()
    cfg = load_config(None, {"training.coeff_W_L2": 1e-3, "training.coeff_g_phi_weight_L2": 0.01,
                             "training.coeff_W_L1_rate": 0.0, "training.coeff_f_theta_weight_L1_rate": 0.0,
                             "training.g_phi_weight_L1_annealing": "exponential",
                             "training.coeff_g_phi_weight_L1_rate": 0.0, "training.g_phi_diff_perturbation": "additive"})
    c = coefficients(cfg.training, 0)
    spec = _spec(conn)
    params = _randomize(M.init(jax.random.PRNGKey(0), spec), jax.random.PRNGKey(1))
    v0 = jax.random.normal(jax.random.PRNGKey(3), (conn.n_nodes,))
    xnorm = 0.7
    terms = regularizers(params, spec, v0, xnorm, c)
    W = np.asarray(params["W"], np.float64)
    assert terms["W_L1"] == pytest.approx(3.5e-5 * np.abs(W).sum(), rel=1e-5)
    assert terms["W_L2"] == pytest.approx(1e-3 * np.sqrt((W**2).sum()), rel=1e-5)
    g = [np.asarray(p, np.float64) for p in jax.tree.leaves(params["g_phi"])]
    assert terms["g_phi_weight"] == pytest.approx(sum(0.29 * np.abs(p).sum() + 0.01 * np.sqrt((p**2).sum()) for p in g), rel=1e-5)

    def g2(v):
        x = np.concatenate([np.asarray(v)[:, None], np.asarray(params["a"])], -1)
        for layer in params["g_phi"][:-1]:
            x = np.maximum(x @ np.asarray(layer["w"]) + np.asarray(layer["b"]), 0)
        return (x @ np.asarray(params["g_phi"][-1]["w"]) + np.asarray(params["g_phi"][-1]["b"]))[:, 0] ** 2

    v = np.asarray(v0)
    expect_diff = 750 * np.sqrt((np.maximum(g2(v) - g2(v + 0.05 * xnorm), 0) ** 2).sum())
    assert terms["g_phi_diff"] == pytest.approx(expect_diff, rel=1e-4, abs=1e-6)
    expect_norm = 0.9 * np.sqrt(((g2(np.full_like(v, 2 * xnorm)) - 2 * xnorm) ** 2).sum())
    assert terms["g_phi_norm"] == pytest.approx(expect_norm, rel=1e-5)
    # the Node-21 default: multiplicative perturbation v * 1.05
    node21 = regularizers(params, spec, v0, xnorm, coefficients(load_config().training, 0))
    expect_mult = 750 * np.sqrt((np.maximum(g2(v) - g2(v * 1.05), 0) ** 2).sum())
    assert node21["g_phi_diff"] == pytest.approx(expect_mult, rel=1e-4, abs=1e-6)
    assert expect_mult != pytest.approx(expect_diff, rel=1e-2)


def test_annealing_and_safe_norm():
    cfg = load_config(None, {"training.regul_annealing_rate": 0.5})
    assert float(coefficients(cfg.training, 0).W_L1) == 0.0
    assert float(coefficients(cfg.training, 1).W_L1) == pytest.approx(3.5e-5 * (1 - np.exp(-0.5)), rel=1e-5)
    assert float(coefficients(cfg.training, 0).g_phi_diff) == 750.0  # not annealed
    # Node-21 per-term rates: W_L1 (0.5) and f_theta L1 (0.4) are off in epoch 0, ramp up after
    node21 = load_config().training
    c0, c2 = coefficients(node21, 0), coefficients(node21, 2)
    assert float(c0.W_L1) == 0.0 and float(c0.f_theta_weight_L1) == 0.0
    # g_phi L1 in the Node-21 code's form 1 - exp(-rate**epoch): 0.29 (1 - 1/e) = 0.183 in epoch 0
    assert float(c0.g_phi_weight_L1) == pytest.approx(0.29 * (1 - np.exp(-1.0)), rel=1e-6)
    assert float(c2.g_phi_weight_L1) == pytest.approx(0.29 * (1 - np.exp(-0.25)), rel=1e-6)
    assert float(c0.f_theta_weight_L2) == pytest.approx(0.001) and float(c0.W_L2) == pytest.approx(2.5e-6)
    later = load_config(None, {"training.g_phi_weight_L1_annealing": "exponential"}).training
    assert float(coefficients(later, 0).g_phi_weight_L1) == 0.0
    assert float(c2.f_theta_weight_L1) == pytest.approx(0.5 * (1 - np.exp(-0.8)), rel=1e-5)
    assert float(c2.W_L1) == pytest.approx(3.5e-5 * (1 - np.exp(-1.0)), rel=1e-5)
    grad = jax.grad(lambda x: l2(x))(jnp.zeros(3))
    assert np.isfinite(np.asarray(grad)).all()


@pytest.mark.parametrize("recurrent", [False, True])
def test_loss_gradient_finite_differences(recurrent):
    conn, graph = _toy_graph()
    with jax.enable_x64(True):
        spec = _spec(conn, activation="tanh")
        params = _randomize(M.init(jax.random.PRNGKey(0), spec, jnp.float64), jax.random.PRNGKey(1))
        params["W"] = params["W"] * 100
        c = coefficients(load_config().training, 0)
        k = jax.random.split(jax.random.PRNGKey(5), 3)
        if recurrent:
            batch = SeqBatch(jax.random.normal(k[0], (2, 4, conn.n_nodes), jnp.float64),
                             jax.random.uniform(k[1], (2, 3, conn.n_inputs), jnp.float64))
            loss = lambda p: recurrent_loss(p, spec, graph, batch, 0.7, c, k[2], 0.02, 0.0)[0]  # noqa: E731
        else:
            batch = Batch(jax.random.normal(k[0], (2, conn.n_nodes), jnp.float64),
                          jax.random.normal(k[1], (2, conn.n_nodes), jnp.float64),
                          jax.random.uniform(k[2], (2, conn.n_inputs), jnp.float64))
            loss = lambda p: one_step_loss(p, spec, graph, batch, 0.7, c)[0]  # noqa: E731
        grads = jax.grad(loss)(params)
        loss = jax.jit(loss)   # 50 evaluations below: compiled once instead of dispatched op by op
        flat, unravel = jax.flatten_util.ravel_pytree(params)
        gflat, _ = jax.flatten_util.ravel_pytree(grads)
        # the embeddings are detached inside g_phi_diff/g_phi_norm (by design), so finite differences
        # over `a` would disagree; check every other parameter group here, `a` in the test below
        n_a = params["a"].size
        a_slice = jax.flatten_util.ravel_pytree({**jax.tree.map(jnp.zeros_like, params), "a": jnp.ones_like(params["a"])})[0]
        candidates = np.flatnonzero(np.asarray(a_slice) == 0)
        assert len(candidates) == len(flat) - n_a
        rng = np.random.default_rng(0)
        for i in rng.choice(candidates, 25, replace=False):
            e = np.zeros(len(flat))
            e[i] = 1e-6
            fd = (loss(unravel(flat + e)) - loss(unravel(flat - e))) / 2e-6
            assert float(gflat[i]) == pytest.approx(float(fd), rel=1e-4, abs=1e-6), i


def test_embedding_gradient_skips_detached_regularizers():
    conn, graph = _toy_graph()
    with jax.enable_x64(True):
        spec = _spec(conn, activation="tanh")
        params = _randomize(M.init(jax.random.PRNGKey(0), spec, jnp.float64), jax.random.PRNGKey(1))
        k = jax.random.split(jax.random.PRNGKey(5), 3)
        batch = Batch(jax.random.normal(k[0], (2, conn.n_nodes), jnp.float64),
                      jax.random.normal(k[1], (2, conn.n_nodes), jnp.float64),
                      jax.random.uniform(k[2], (2, conn.n_inputs), jnp.float64))
        full = coefficients(load_config().training, 0)
        data_only = full._replace(g_phi_diff=0.0 * full.g_phi_diff, g_phi_norm=0.0 * full.g_phi_norm)
        g_full = jax.grad(lambda p: one_step_loss(p, spec, graph, batch, 0.7, full)[0])(params)["a"]
        g_data = jax.grad(lambda p: one_step_loss(p, spec, graph, batch, 0.7, data_only)[0])(params)["a"]
        np.testing.assert_allclose(np.asarray(g_full), np.asarray(g_data), rtol=1e-12)
        # and those (data-only) embedding gradients match finite differences
        loss = lambda a: one_step_loss({**params, "a": a}, spec, graph, batch, 0.7, data_only)[0]  # noqa: E731
        a0 = np.asarray(params["a"])
        for idx in [(0, 0), (3, 1), (10, 0)]:
            e = np.zeros_like(a0)
            e[idx] = 1e-6
            fd = (loss(jnp.asarray(a0 + e)) - loss(jnp.asarray(a0 - e))) / 2e-6
            assert float(g_data[idx]) == pytest.approx(float(fd), rel=1e-4, abs=1e-7)


def test_scanned_steps_equal_single_steps():
    conn, graph = _toy_graph()
    cfg = load_config(None, {"training.grad_clip_W": 0.5, "training.learning_rate_update_start": 3e-3})
    spec = _spec(conn)
    opt = make_optimizer(cfg.training)
    single, scanned = make_steps(spec, opt, StepConfig())
    c = coefficients(cfg.training, 0)
    k = jax.random.split(jax.random.PRNGKey(0), 3)
    K = 5
    batches = Batch(jax.random.normal(k[0], (K, 2, conn.n_nodes)), jax.random.normal(k[1], (K, 2, conn.n_nodes)),
                    jax.random.uniform(k[2], (K, 2, conn.n_inputs)))
    keys = jax.random.split(jax.random.PRNGKey(9), K)
    params = M.init(jax.random.PRNGKey(1), spec)
    s1 = init_state(params, opt)
    for i in range(K):
        s1, _ = single(s1, jax.tree.map(lambda x: x[i], batches), keys[i], graph, 0.7, c)
    s2, terms = scanned(init_state(M.init(jax.random.PRNGKey(1), spec), opt), batches, keys, graph, 0.7, c)
    for a, b in zip(jax.tree.leaves(s1.params), jax.tree.leaves(s2.params)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-7)
    assert int(s2.step) == K and terms["data"].shape == (K,)


def _one_step_setup(cfg, spec, conn, graph):
    """Randomised parameters, a random 2-frame batch and a function running one training step on them."""
    opt = make_optimizer(cfg.training)
    single, _ = make_steps(spec, opt, StepConfig())
    params = _randomize(M.init(jax.random.PRNGKey(1), spec), jax.random.PRNGKey(2))
    k = jax.random.split(jax.random.PRNGKey(0), 3)
    batch = Batch(jax.random.normal(k[0], (2, conn.n_nodes)), jax.random.normal(k[1], (2, conn.n_nodes)),
                  jax.random.uniform(k[2], (2, conn.n_inputs)))
    return params, batch, lambda p: single(init_state(p, opt), batch, k[0], graph, 0.7, coefficients(cfg.training, 0))[0]


def test_learning_rate_partitions():
    """One Adam step moves each group by its own learning rate (Adam's first step is lr * sign(g))."""
    conn, graph = _toy_graph()
    # W_L1 on from the first step keeps every W gradient far above Adam's eps
    cfg = load_config(None, {"training.lr": 1e-3, "training.lr_W": 2e-3, "training.lr_embedding": 3e-3,
                             "training.learning_rate_update_start": 4e-3, "training.coeff_W_L1_rate": 0.0})
    params, batch, step = _one_step_setup(cfg, _spec(conn), conn, graph)
    before = jax.tree.map(np.asarray, params)
    state = step(params)
    for group, lr in (("g_phi", 1e-3), ("W", 2e-3), ("a", 3e-3), ("f_theta", 4e-3)):
        moved = np.abs(np.concatenate([np.ravel(np.asarray(a) - b) for a, b in
                                       zip(jax.tree.leaves(state.params[group]), jax.tree.leaves(before[group]))]))
        assert np.isclose(np.max(moved), lr, rtol=1e-3), group


def test_grad_clip_W_limits_update_direction():
    from fvjax.train.optim import make_optimizer as mk

    cfg = load_config(None, {"training.grad_clip_W": 1e-3, "training.lr_W": 1.0})
    opt = mk(cfg.training)
    params = {"W": jnp.ones(4), "g_phi": [], "f_theta": [], "a": jnp.ones((1, 1))}
    grads = {"W": jnp.array([3.0, 4.0, 0.0, 0.0]), "g_phi": [], "f_theta": [], "a": jnp.zeros((1, 1))}
    state = opt.init(params)
    # with clipping the Adam moments see the clipped gradient (norm 1e-3)
    clipped, _ = jax.tree.map(np.asarray, opt.update(grads, state, params))
    assert np.allclose(clipped["W"][:2], -1.0, atol=1e-3)  # Adam normalises; the direction survives


def test_lr_W_warmup_ramps_only_W():
    """lr_W_warmup_iters = 4: W's Adam steps (constant gradients, so each is the learning rate) are
    0, 1/4, 2/4, 3/4, 1, 1 of lr_W; the other groups step at their full rate from the start."""
    from fvjax.train.optim import lr_multiplier
    from fvjax.train.optim import make_optimizer as mk

    cfg = load_config(None, {"training.lr_W_warmup_iters": 4, "training.lr_W": 0.1, "training.lr": 0.01})
    opt = mk(cfg.training)
    params = {"W": jnp.zeros(3), "g_phi": [{"w": jnp.zeros((1, 1)), "b": jnp.zeros(1)}], "f_theta": [],
              "a": jnp.zeros((1, 1))}
    grads = jax.tree.map(jnp.ones_like, params)

    def steps(optimizer, n=6):   # -updates of the first element of W, g_phi's first weight and a, per step
        state, out = optimizer.init(params), []
        for _ in range(n):
            updates, state = optimizer.update(grads, state, params)
            out.append([float(-updates["W"][0]), float(-updates["g_phi"][0]["w"][0, 0]), float(-updates["a"][0, 0])])
        return np.array(out).T

    steps_W, steps_g, steps_a = steps(opt)
    np.testing.assert_allclose(steps_W, [0.0, 0.025, 0.05, 0.075, 0.1, 0.1], rtol=1e-4, atol=1e-9)  # Adam eps
    np.testing.assert_allclose(steps_g, 0.01, rtol=1e-4)
    np.testing.assert_allclose(steps_a, cfg.training.lr_embedding, rtol=1e-4)
    # on top of a scheduler the ramp multiplies it: step k is min(k / 4, 1) * cosine(k) * lr_W
    sched = load_config(None, {"training.lr_W_warmup_iters": 4, "training.lr_W": 0.1, "training.lr": 0.01,
                               "training.lr_embedding": 0.01, "training.lr_scheduler": "cosine_warm_restarts", "training.lr_scheduler_T0": 8})
    cosine = lr_multiplier(sched.training, 0.1, 0.01 * sched.training.lr_scheduler_eta_min_ratio)
    steps_W = steps(mk(sched.training))[0]
    want = [min(k / 4, 1) * float(cosine(k)) for k in range(6)]   # eta_min: ratio x the smallest rate, 0.01
    assert want[5] < 0.09   # the cosine has come down, so a ramp that ignored it would fail
    np.testing.assert_allclose(steps_W, want, rtol=1e-4, atol=1e-9)


def test_lr_schedules_hand_values():
    from fvjax.train.optim import lr_multiplier

    cfg = load_config(None, {"training.lr_scheduler": "cosine_warm_restarts", "training.lr_scheduler_T0": 100,
                             "training.lr_scheduler_T_mult": 2}).training
    f = lr_multiplier(cfg, 1.0, 0.01)
    assert float(f(0)) == pytest.approx(1.0)
    assert float(f(50)) == pytest.approx(0.01 + 0.99 * 0.5, rel=1e-5)     # half-way down the first cosine
    assert float(f(100)) == pytest.approx(1.0, rel=1e-5)                  # restart; next period is 200
    assert float(f(200)) == pytest.approx(0.01 + 0.99 * 0.5, rel=1e-4)
    warm = load_config(None, {"training.lr_scheduler": "linear_warmup_cosine", "training.lr_scheduler_T0": 1000,
                              "training.lr_scheduler_warmup_iters": 10}).training
    g = lr_multiplier(warm, 1.0, 0.01)
    assert 0.49 < float(g(5)) < 0.51 and float(g(20)) > 0.99  # ramp x cosine(~1)
    assert lr_multiplier(load_config().training, 0.3, 0.0) == 0.3  # "none": a constant


def test_flyvis_B_variant():
    conn, graph = _toy_graph()
    with jax.enable_x64(True):
        spec = _spec(conn, variant="flyvis_B")
        assert spec.edge_input_size == 6
        params = _randomize(M.init(jax.random.PRNGKey(0), spec, jnp.float64), jax.random.PRNGKey(1))
        v = jax.random.normal(jax.random.PRNGKey(2), (2, conn.n_nodes), jnp.float64)
        msg = np.asarray(M.messages(params, spec, graph, v))
        src, dst, a = np.asarray(graph.src), np.asarray(graph.dst), np.asarray(params["a"])
        ref = np.zeros((2, conn.n_nodes))
        for e in range(len(src)):  # g_phi sees [v_i, v_j, a_i, a_j] with i = target, j = source
            x = np.concatenate([np.asarray(v)[:, [dst[e]]], np.asarray(v)[:, [src[e]]],
                                np.tile(a[dst[e]], (2, 1)), np.tile(a[src[e]], (2, 1))], -1)
            ref[:, dst[e]] += np.asarray(params["W"])[e] * np.asarray(M.mlp_apply(params["g_phi"], jnp.asarray(x)))[:, 0] ** 2
        np.testing.assert_allclose(msg, ref, rtol=1e-12, atol=1e-12)
        c = coefficients(load_config().training, 0)
        batch = Batch(v, v[::-1] * 3, jax.random.uniform(jax.random.PRNGKey(3), (2, conn.n_inputs), jnp.float64))
        loss, terms = one_step_loss(params, spec, graph, batch, 0.7, c)
        assert terms["g_phi_norm"] > 0 and np.isfinite(float(loss))
        grads = jax.grad(lambda p: one_step_loss(p, spec, graph, batch, 0.7, c)[0])(params)
        assert all(np.isfinite(np.asarray(g)).all() for g in jax.tree.leaves(grads))
        from fvjax.evaluate import metrics as MT

        slopes = MT.g_phi_fits(params, spec, jnp.full(conn.n_nodes, 0.5), jnp.full(conn.n_nodes, 0.2))[0]
        assert slopes.shape == (conn.n_nodes,) and np.isfinite(np.asarray(slopes)).all()


def test_measurement_noise_batches():
    """sigma_m > 0: the one-step batch reads v(t) + n(t) and targets y(t) + (n(t+1) - n(t)) / dt, with
    n(t) the same sample every time frame t is read; windows get n on every frame; sigma_m = 0 is a no-op."""
    from fvjax.train.step import measurement_noise, noisy_batch

    n, dt = 5, 0.02
    rng = np.random.default_rng(0)
    batch = Batch(jnp.asarray(rng.normal(size=(2, n)), jnp.float32), jnp.asarray(rng.normal(size=(2, n)), jnp.float32),
                  jnp.zeros((2, 1)), jnp.asarray([3, 10], jnp.int32))
    sc = StepConfig(dt=dt, measurement_noise=0.1, measurement_seed=4)
    noisy = noisy_batch(batch, sc)
    n3, n4, n10, n11 = (np.asarray(measurement_noise(4, jnp.asarray(t), n, 0.1)) for t in (3, 4, 10, 11))
    np.testing.assert_allclose(noisy.voltage, np.stack([batch.voltage[0] + n3, batch.voltage[1] + n10]), rtol=1e-6)
    np.testing.assert_allclose(noisy.target, np.stack([batch.target[0] + (n4 - n3) / dt,
                                                       batch.target[1] + (n11 - n10) / dt]), rtol=1e-5, atol=1e-5)
    assert 0.05 < np.std(np.concatenate([n3, n4, n10, n11])) < 0.2 and not np.allclose(n3, n4)
    seq = SeqBatch(jnp.zeros((1, 3, n)), jnp.zeros((1, 2, 1)), jnp.asarray([10], jnp.int32))
    np.testing.assert_allclose(noisy_batch(seq, sc).voltage[0, 1], n11, rtol=1e-6)
    assert noisy_batch(batch, StepConfig()) is batch
    other_seed = np.asarray(measurement_noise(5, jnp.asarray(3), n, 0.1))
    assert not np.allclose(other_seed, n3)


def test_f_theta_interaction_zero_for_additive_and_hand_value():
    """The coupling term vanishes for an f_theta without voltage-message coupling (a linear one) and
    equals the hand-computed mixed difference for a ReLU one (float64 numpy)."""
    from fvjax.train.losses import f_theta_interaction

    conn, graph = _toy_graph()
    with jax.enable_x64(True):
        spec = M.ModelSpec(n_nodes=conn.n_nodes, n_edges=conn.n_edges, hidden_dim=8, hidden_dim_update=8,
                           activation="none")
        params = jax.tree.map(lambda x: jnp.asarray(x, jnp.float64), M.init(jax.random.PRNGKey(0), spec))
        rng = np.random.default_rng(0)
        v, m, e = (jnp.asarray(rng.normal(size=(1, conn.n_nodes))) for _ in range(3))
        assert np.abs(np.asarray(f_theta_interaction(params, spec, v, m, e))).max() < 1e-12
        spec = M.ModelSpec(n_nodes=conn.n_nodes, n_edges=conn.n_edges, hidden_dim=8, hidden_dim_update=8)
        params = jax.tree.map(lambda x: jnp.asarray(x, jnp.float64), M.init(jax.random.PRNGKey(1), spec))
        got = np.asarray(f_theta_interaction(params, spec, v, m, e))[0]
        a = np.asarray(params["a"])

        def f(vv, mm):
            x = np.concatenate([np.asarray(vv)[0][:, None], a, np.asarray(mm)[0][:, None], np.asarray(e)[0][:, None]], 1)
            for layer in params["f_theta"][:-1]:
                x = np.maximum(x @ np.asarray(layer["w"]) + np.asarray(layer["b"]), 0)
            return (x @ np.asarray(params["f_theta"][-1]["w"]) + np.asarray(params["f_theta"][-1]["b"]))[:, 0]

        z = np.zeros_like(np.asarray(v))
        np.testing.assert_allclose(got, f(v, m) - f(v, z) - f(z, m) + f(z, z), rtol=1e-9, atol=1e-12)
        assert np.abs(got).max() > 1e-6


def test_additivity_penalty_only_when_asked():
    conn, graph = _toy_graph()
    spec = _spec(conn)
    params = _randomize(M.init(jax.random.PRNGKey(0), spec), jax.random.PRNGKey(1))
    rng = np.random.default_rng(0)
    batch = Batch(jnp.asarray(rng.normal(size=(2, conn.n_nodes)), jnp.float32),
                  jnp.asarray(rng.normal(size=(2, conn.n_nodes)), jnp.float32),
                  jnp.asarray(rng.uniform(size=(2, conn.n_inputs)), jnp.float32))
    c = coefficients(load_config(None, {"training.coeff_f_theta_additive": 0.5}).training, 0)
    _, off = one_step_loss(params, spec, graph, batch, 0.7, c)
    _, on = one_step_loss(params, spec, graph, batch, 0.7, c, additive=True)
    assert "f_theta_additive" not in off and float(on["f_theta_additive"]) > 0


def test_make_steps_is_memoised_across_epochs():
    """fit calls make_steps once per epoch: equal settings must reuse the compiled program."""
    conn, _ = _toy_graph()
    spec = _spec(conn)
    opt = make_optimizer(load_config().training)
    first = make_steps(spec, opt, StepConfig())
    assert make_steps(spec, opt, StepConfig()) is first
    assert make_steps(spec, opt, StepConfig(recurrent=True)) is not first


def test_ode_methods_in_config_have_solvers():
    import dataclasses

    from fvjax.config import TrainingConfig
    from fvjax.train.ode import SOLVERS
    choices = next(f for f in dataclasses.fields(TrainingConfig) if f.name == "ode_method").metadata.get("choices")
    assert set(choices) == set(SOLVERS)


def test_g_phi_zero_penalty_hand_value_and_gate():
    """c ||g_phi(0, a_j)^2||_2: with g_phi's last layer zeroed but its bias b, g^2 = b^2 everywhere, so
    the term is c sqrt(N) b^2; a random g_phi against numpy; off (and gradient-free) at c = 0."""
    conn, graph = _toy_graph()
    spec = _spec(conn)
    params = _randomize(M.init(jax.random.PRNGKey(0), spec), jax.random.PRNGKey(1))
    v0 = jax.random.normal(jax.random.PRNGKey(3), (conn.n_nodes,))
    c = coefficients(load_config(None, {"training.coeff_g_phi_zero": 0.4}).training, 0)
    const = jax.tree.map(lambda x: x, params)
    const["g_phi"][-1] = {"w": jnp.zeros_like(params["g_phi"][-1]["w"]), "b": jnp.full_like(params["g_phi"][-1]["b"], 0.3)}
    assert float(regularizers(const, spec, v0, 0.7, c)["g_phi_zero"]) == pytest.approx(0.4 * np.sqrt(conn.n_nodes) * 0.09, rel=1e-5)

    x = np.concatenate([np.zeros((conn.n_nodes, 1)), np.asarray(params["a"], np.float64)], -1)
    for layer in params["g_phi"][:-1]:
        x = np.maximum(x @ np.asarray(layer["w"], np.float64) + np.asarray(layer["b"], np.float64), 0)
    g0 = (x @ np.asarray(params["g_phi"][-1]["w"], np.float64) + np.asarray(params["g_phi"][-1]["b"], np.float64))[:, 0]
    expect = 0.4 * np.sqrt(np.sum(g0**4))
    assert expect > 1e-6
    assert float(regularizers(params, spec, v0, 0.7, c)["g_phi_zero"]) == pytest.approx(expect, rel=1e-5)

    _assert_gated_g_phi_term("g_phi_zero", params, spec, v0, c)


def _assert_gated_g_phi_term(term, params, spec, v0, c):
    """At the config's default (0) the term is 0 and sends no gradient; at ``c`` its gradient reaches
    g_phi only (the embeddings are detached, as in g_phi_norm; W is not in it)."""
    off = coefficients(load_config().training, 0)
    assert float(regularizers(params, spec, v0, 0.7, off)[term]) == 0.0

    def grad_of(coeffs):
        return jax.grad(lambda q: regularizers(q, spec, v0, 0.7, coeffs)[term])(params)

    g_on, g_off = grad_of(c), grad_of(off)
    assert np.abs(np.asarray(g_on["g_phi"][0]["w"])).max() > 0
    assert np.all(np.asarray(g_on["a"]) == 0) and np.all(np.asarray(g_on["W"]) == 0)
    assert all(np.all(np.asarray(leaf) == 0) for leaf in jax.tree.leaves(g_off))


def test_off_the_line_hand_values():
    """g(v) - v g'(v) where v > 0: a line through the origin gives 0, an offset line its offset, v^2 gives -v^2."""
    from fvjax.train.losses import off_the_line

    v = jnp.array([-1.0, 0.0, 0.5, 2.0])
    np.testing.assert_allclose(off_the_line(lambda x: 3.0 * x, v), 0.0, atol=1e-7)
    np.testing.assert_allclose(off_the_line(lambda x: 2.0 * x + 0.5, v), [0, 0, 0.5, 0.5], atol=1e-7)
    np.testing.assert_allclose(off_the_line(lambda x: x**2, v), [0, 0, -0.25, -4.0], atol=1e-6)


def test_off_the_secant_hand_values():
    """The secant form: exact for lines (0 through the origin, the offset otherwise), v0 (v1 - v0) off
    the tangent form for v^2 (whose value there is -v0^2), 0 where v0 <= 0 or v1 <= v0."""
    from fvjax.train.losses import off_the_secant

    v0, v1 = jnp.array([-1.0, 0.0, 0.5, 2.0]), jnp.array([-0.9, 0.1, 0.6, 2.0])
    np.testing.assert_allclose(off_the_secant(v0, v1, 3 * v0, 3 * v1), 0.0, atol=1e-6)
    np.testing.assert_allclose(off_the_secant(v0, v1, 2 * v0 + 0.5, 2 * v1 + 0.5), [0, 0, 0.5, 0], atol=1e-6)
    np.testing.assert_allclose(off_the_secant(v0, v1, v0**2, v1**2), [0, 0, -0.25 - 0.05, 0], atol=1e-6)


@pytest.mark.parametrize("slope,perturbation", [("tangent", "multiplicative"), ("secant", "multiplicative"),
                                                ("secant", "additive")])
def test_g_phi_linear_penalty_against_numpy_and_gate(slope, perturbation):
    """c ||g(v) - v g'(v)||_2 over the sources with v > 0, against a float64 numpy g_phi: g' by central
    differences (tangent) or the secant to g_phi_diff's comparison point v (1 + delta) / v + delta xnorm;
    off (and gradient-free) at c = 0; the embeddings get no gradient."""
    conn, graph = _toy_graph()
    with jax.enable_x64(True):
        spec = _spec(conn, activation="tanh")
        params = _randomize(M.init(jax.random.PRNGKey(0), spec, jnp.float64), jax.random.PRNGKey(1))
        v0 = jax.random.normal(jax.random.PRNGKey(3), (conn.n_nodes,), jnp.float64)
        c = coefficients(load_config(None, {"training.coeff_g_phi_linear": 0.4, "training.g_phi_linear_slope": slope,
                                            "training.g_phi_diff_perturbation": perturbation}).training, 0)

        def g_np(v):
            x = np.concatenate([np.asarray(v)[:, None], np.asarray(params["a"])], -1)
            for layer in params["g_phi"][:-1]:
                x = np.tanh(x @ np.asarray(layer["w"]) + np.asarray(layer["b"]))
            h = (x @ np.asarray(params["g_phi"][-1]["w"]) + np.asarray(params["g_phi"][-1]["b"]))[:, 0]
            return h**2 if spec.g_phi_positive else h

        v = np.asarray(v0)
        if slope == "tangent":
            slope = (g_np(v + 1e-6) - g_np(v - 1e-6)) / 2e-6
        else:
            v1 = v * 1.05 if perturbation == "multiplicative" else v + 0.05 * 0.7
            slope = (g_np(v1) - g_np(v)) / np.where(v1 != v, v1 - v, 1.0)
        expect = 0.4 * np.sqrt(np.sum(np.where(v > 0, g_np(v) - v * slope, 0.0) ** 2))
        assert expect > 1e-3 and 0 < (v > 0).sum() < len(v)
        assert float(regularizers(params, spec, v0, 0.7, c)["g_phi_linear"]) == pytest.approx(expect, rel=1e-6)

        _assert_gated_g_phi_term("g_phi_linear", params, spec, v0, c)


def test_neuron_bias_adds_a_per_neuron_constant_input_float64():
    """training.lr_bias > 0: params gain b (N,) = 0; the update is the bias-free one at msg + b exactly
    (float64, every update rule): for additive the update rises by b_i, for gain by (1 + f_gain) b_i, and
    the probes' intercepts by as much with their slopes unchanged, so the V_rest read-outs include it.
    lr_bias 0: no b, and the optimizer state is the one without it."""
    from fvjax.evaluate.metrics import data_partials, f_theta_fits
    from fvjax.train.loop import model_spec

    conn, graph = _toy_graph()
    assert "b" not in M.init(jax.random.PRNGKey(0), model_spec(load_config(None, {}), conn.n_nodes, conn.n_edges))
    spec = model_spec(load_config(None, {"training.lr_bias": 1e-2}), conn.n_nodes, conn.n_edges)
    assert spec.neuron_bias
    rng = np.random.default_rng(0)
    b, v0 = rng.normal(size=conn.n_nodes), rng.normal(size=(3, conn.n_nodes))
    with jax.enable_x64(True):
        for update in M.UPDATES:
            s = M.ModelSpec(**{**spec.__dict__, "update": update, "hidden_dim": 8, "hidden_dim_update": 8})
            params = _randomize(M.init(jax.random.PRNGKey(1), s, jnp.float64), jax.random.PRNGKey(2))
            np.testing.assert_array_equal(params["b"], 0.0)
            v, stim = jnp.asarray(v0), jnp.asarray(rng.uniform(size=(3, conn.n_inputs)))
            plain = {k: x for k, x in params.items() if k != "b"}
            plain_spec = M.ModelSpec(**{**s.__dict__, "neuron_bias": False})
            msg = M.messages(plain, plain_spec, graph, v)
            e = M.node_stimulus(graph, stim, s.n_nodes)
            want = M.update_function(plain, plain_spec, v, params["a"], msg + jnp.asarray(b), e)
            with_b = M.apply({**params, "b": jnp.asarray(b)}, s, graph, v, stim)[0]
            np.testing.assert_allclose(np.asarray(with_b), np.asarray(want), atol=1e-12)
            f0 = data_partials({**params, "b": jnp.zeros(conn.n_nodes)}, s, graph, v, stim)["f"]
            f1 = data_partials({**params, "b": jnp.asarray(b)}, s, graph, v, stim)["f"]
            np.testing.assert_allclose(np.asarray(f1), np.asarray(want), atol=1e-12)
            if update == "generic":   # f_theta sees msg itself: no closed form for the shift
                continue
            shift = b * (np.asarray(M.message_gain(params, s, params["a"])) if update == "gain" else 1.0)
            np.testing.assert_allclose(np.asarray(f1 - f0), np.broadcast_to(shift, v.shape), atol=1e-12)
            mu, sd = jnp.zeros(conn.n_nodes), jnp.ones(conn.n_nodes)
            s0, o0 = (np.asarray(x) for x in f_theta_fits({**params, "b": jnp.zeros(conn.n_nodes)}, s, mu, sd, chunk=8))
            s1, o1 = (np.asarray(x) for x in f_theta_fits({**params, "b": jnp.asarray(b)}, s, mu, sd, chunk=8))
            np.testing.assert_allclose(s1, s0, atol=1e-9)
            np.testing.assert_allclose(o1 - o0, shift, atol=1e-9)
    no_bias = load_config(None, {}).training
    assert "b" not in make_optimizer(no_bias).init(M.init(jax.random.PRNGKey(0), _spec(conn))).inner_states
    assert "b" in make_optimizer(load_config(None, {"training.lr_bias": 1e-2}).training).init(params).inner_states


def test_neuron_bias_learns_at_its_own_rate():
    """One Adam step moves b by lr_bias (Adam's first step is lr * sign(g)) and the other groups by
    theirs; with the additive update b's gradient is the batch's summed residual of each neuron
    (checked in sign)."""
    from fvjax.train.loop import model_spec

    conn, graph = _toy_graph()
    cfg = load_config(None, {"training.lr_bias": 5e-3, "training.lr": 1e-3, "training.coeff_W_L1_rate": 0.0,
                             "graph_model.update_type": "additive"})
    spec = M.ModelSpec(**{**model_spec(cfg, conn.n_nodes, conn.n_edges).__dict__, "hidden_dim": 8, "hidden_dim_update": 8})
    params, batch, step = _one_step_setup(cfg, spec, conn, graph)
    pred = M.apply(params, spec, graph, batch.voltage, batch.stimulus)[0]
    residual = np.asarray(pred - batch.target).sum(0)   # d loss / d b_i has the sign of this sum
    g_before = np.asarray(params["g_phi"][0]["w"])   # (the step donates its input buffers)
    state = step(params)
    moved = np.asarray(state.params["b"])
    np.testing.assert_allclose(np.abs(moved), 5e-3, rtol=1e-3)
    assert np.all(np.sign(moved) == -np.sign(residual))
    g_moved = np.max(np.abs(np.asarray(state.params["g_phi"][0]["w"]) - g_before))
    assert np.isclose(g_moved, 1e-3, rtol=1e-3)


def test_centre_W_is_adam_in_centred_coordinates_float64():
    """training.centre_W: three steps equal Adam run by hand on the reparameterised loss
    L(W, b_c - M W), (M W)_i = sum_{e: j->i} W_e mu_j, mapped back (b = b_c - M W); jax.grad of the
    composition is the independent reference for the step's hand-written gradient and update maps.
    Without the centres the same steps differ (so the test can fail)."""
    import optax

    from fvjax.train.loop import model_spec
    from fvjax.train.losses import one_step_loss

    conn, graph = _toy_graph()
    cfg = load_config(None, {"training.lr_bias": 5e-3, "training.centre_W": True, "training.coeff_W_L1_rate": 0.0})
    tr = cfg.training
    with jax.enable_x64(True):
        spec = M.ModelSpec(**{**model_spec(cfg, conn.n_nodes, conn.n_edges).__dict__, "hidden_dim": 8,
                              "hidden_dim_update": 8})
        params = _randomize(M.init(jax.random.PRNGKey(1), spec, jnp.float64), jax.random.PRNGKey(2))
        k = jax.random.split(jax.random.PRNGKey(0), 4)
        mu = jax.random.uniform(k[3], (conn.n_nodes,), jnp.float64, 0.2, 1.5)
        batch = Batch(jax.random.normal(k[0], (2, conn.n_nodes), jnp.float64),
                      jax.random.normal(k[1], (2, conn.n_nodes), jnp.float64),
                      jax.random.uniform(k[2], (2, conn.n_inputs), jnp.float64))
        coeffs = coefficients(tr, 0)
        opt = make_optimizer(tr)
        single, _ = make_steps(spec, opt, StepConfig())
        mean_input = lambda W: jax.ops.segment_sum(W * mu[graph.src], graph.dst, num_segments=conn.n_nodes)  # noqa: E731

        def run(g):
            state = init_state(jax.tree.map(jnp.array, params), opt)
            for _ in range(3):
                state = single(state, batch, k[0], g, 0.7, coeffs)[0]
            return state.params

        def loss_centred(q):
            return one_step_loss({**q, "b": q["b"] - mean_input(q["W"])}, spec, graph, batch, 0.7, coeffs)[0]

        q = {**params, "b": params["b"] + mean_input(params["W"])}
        s = opt.init(q)
        for _ in range(3):
            u, s = opt.update(jax.grad(loss_centred)(q), s, q)
            q = optax.apply_updates(q, u)
        want = {**q, "b": q["b"] - mean_input(q["W"])}
        got = run(graph._replace(centre=mu))
        for name in ("W", "b", "a"):
            np.testing.assert_allclose(np.asarray(got[name]), np.asarray(want[name]), rtol=1e-9, atol=1e-12)
        plain = run(graph)
        assert np.max(np.abs(np.asarray(plain["b"]) - np.asarray(want["b"]))) > 1e-4


def test_centre_W_refuses_what_it_cannot_do():
    from fvjax.config import ConfigError

    with pytest.raises(ConfigError, match="lr_bias"):
        load_config(None, {"training.centre_W": True})
    with pytest.raises(ConfigError, match="ema_decay"):
        load_config(None, {"training.centre_W": True, "training.lr_bias": 1e-3, "training.ema_decay": 0.999})
