"""The epoch-end embedding snap (``training.sparsity: replace_embedding_function``, fvjax.train.snap):
clustering and replacement on hand-made profiles, the f_theta refit against numpy, the reference's
due condition, the frozen epoch and exact resume in a tiny PDE_N2 fit, and the config keys."""

import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fvjax import model as M
from fvjax.config import SPARSITY_MODES, ConfigError, load_config
from fvjax.train import snap as S


def _np_mlp(layers, x):
    for layer in layers[:-1]:
        x = np.maximum(x @ np.asarray(layer["w"], np.float64) + np.asarray(layer["b"], np.float64), 0)
    return (x @ np.asarray(layers[-1]["w"], np.float64) + np.asarray(layers[-1]["b"], np.float64))[..., 0]


def _np_profiles(params, grid):
    """f_theta([u, a_i]) on the grid for every neuron, float64 numpy (additive update: msg = e = 0)."""
    a = np.asarray(params["a"], np.float64)
    n, p = len(a), len(grid)
    x = np.concatenate([np.broadcast_to(grid, (n, p))[..., None], np.broadcast_to(a[:, None], (n, p, a.shape[1]))], -1)
    return _np_mlp(params["f_theta"], x)


def test_two_obvious_groups_cluster_and_snap_to_medians():
    grid = np.linspace(-1, 1, 30)
    # neurons 0-2 follow one shape, 3-6 another (small offsets inside each group)
    prof = np.array([np.tanh(grid) + d for d in (0.0, 0.01, -0.02)] + [-grid**2 + d for d in (0.0, 0.02, 0.01, -0.01)])
    labels = S.cluster_profiles(prof, 0.1)
    np.testing.assert_array_equal(labels, [0, 0, 0, 1, 1, 1, 1])
    assert S.cluster_profiles(prof, 2.0).tolist() == [0] * 7        # a distance above every gap: one cluster
    assert len(set(S.cluster_profiles(prof, 1e-6))) == 7             # below every gap: singletons
    a = np.array([[1.0, 5.0], [2.0, 7.0], [9.0, 6.0], [0.0, 0.0], [4.0, 1.0], [2.0, 3.0], [10.0, -1.0]])
    med = S.cluster_medians(a, labels)
    np.testing.assert_array_equal(med, [[2.0, 6.0], [3.0, 0.5]])    # by hand: medians of 3 and of 4 values
    np.testing.assert_array_equal(med[labels][4], [3.0, 0.5])
    # deterministic, and blind to a row permutation
    perm = np.random.default_rng(0).permutation(7)
    again = S.cluster_profiles(prof[perm], 0.1)
    np.testing.assert_array_equal(again[:, None] == again[None], labels[perm][:, None] == labels[perm][None])
    assert again[0] == 0                                             # clusters numbered by their first row


def test_voltage_grid_follows_the_data():
    v = np.arange(1001.0)
    grid = S.voltage_grid(v)
    assert len(grid) == 200 and grid[0] == pytest.approx(10.0) and grid[-1] == pytest.approx(990.0)


def _spec(n=6):
    return M.ModelSpec(n_nodes=n, n_edges=n * n, variant="dense", hidden_dim=6, hidden_dim_update=8,
                       g_phi_positive=False, edge_embedding=False, update="additive", w_init_mode="randn")


def test_refit_moves_profiles_to_the_cluster_median_and_touches_f_theta_only():
    spec = _spec()
    params = M.init(jax.random.PRNGKey(0), spec)
    params["a"] = 3 * jax.random.normal(jax.random.PRNGKey(1), params["a"].shape)   # spread: distinct profiles
    grid = np.linspace(-2, 2, 25)
    old = _np_profiles(params, grid)
    np.testing.assert_allclose(np.asarray(S.profiles(params, spec, grid)), old, rtol=1e-5, atol=1e-5)
    labels = np.array([0, 0, 1, 1, 1, 2])
    target = np.stack([np.median(old[labels == k], 0) for k in labels])       # numpy, by cluster
    np.testing.assert_allclose(S.cluster_medians(old, labels)[labels], target)
    snapped = {**params, "a": jnp.asarray(S.cluster_medians(params["a"], labels)[labels], jnp.float32)}
    start = np.linalg.norm(_np_profiles(snapped, grid) - target)
    out, (before, after) = S.refit_f_theta(snapped, spec, grid, target, lr=1e-2, steps=400)
    assert before == pytest.approx(start, rel=1e-4)
    final = np.linalg.norm(_np_profiles(out, grid) - target)
    assert after == pytest.approx(final, rel=1e-3, abs=1e-5)
    assert final < 0.25 * start and start > 0.02     # measured: 0.054 -> 0.009
    for key in ("W", "g_phi", "a"):
        for x, y in zip(jax.tree.leaves(out[key]), jax.tree.leaves(snapped[key])):
            np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    assert any(not np.array_equal(x, y) for x, y in zip(jax.tree.leaves(out["f_theta"]),
                                                          jax.tree.leaves(snapped["f_theta"])))
    _, (b20, a20) = S.refit_f_theta(snapped, spec, grid, target, lr=1e-2)   # the default 20 steps lower it too
    assert a20 < b20
    # a rate that overshoots from the first step: the refit keeps its start rather than a worse model
    kept, (b, a) = S.refit_f_theta({**snapped, "f_theta": out["f_theta"]}, spec, grid, target, lr=5.0)
    assert a <= b
    assert np.linalg.norm(_np_profiles(kept, grid) - target) == pytest.approx(a, rel=1e-3, abs=1e-5)


def test_due_condition_is_the_references():
    tr = load_config(None, {"training.n_epochs": 10, "training.sparsity": "replace_embedding_function"}).training
    assert [e for e in range(10) if S.snap_due(tr, e)] == [3]           # epoch 7 fails 7 < 10 - 4
    assert [e for e in range(10) if S.frozen_groups(tr, e)] == [4]
    assert S.frozen_groups(tr, 4) == ("a", "g_phi")
    one = load_config(None, {"training.n_epochs": 1, "training.sparsity": "replace_embedding_function"}).training
    assert not S.snap_due(one, 0)
    for freq in (1, 2):
        assert not S.snap_due(dataclasses.replace(one, sparsity_freq=freq), 0)
    assert not any(S.snap_due(load_config(None, {"training.n_epochs": 10}).training, e) for e in range(10))
    unfixed = load_config(None, {"training.n_epochs": 10, "training.sparsity": "replace_embedding_function",
                                 "training.fix_cluster_embedding": False}).training
    assert S.snap_due(unfixed, 3) and not any(S.frozen_groups(unfixed, e) for e in range(10))
    assert set(S.SNAPS) == set(SPARSITY_MODES)


def test_config_keys_and_refusals():
    cfg = load_config(None, {"training.sparsity": "replace_embedding_function", "training.sparsity_freq": 2,
                             "training.cluster_distance_threshold": 0.2, "training.fix_cluster_embedding": False})
    tr = cfg.training
    assert (tr.sparsity, tr.sparsity_freq, tr.cluster_distance_threshold, tr.fix_cluster_embedding) == \
        ("replace_embedding_function", 2, 0.2, False)
    d = load_config().training
    defaults = (d.sparsity, d.sparsity_freq, d.cluster_distance_threshold, d.fix_cluster_embedding)
    assert defaults == ("none", 4, 0.1, True)
    with pytest.raises(ConfigError, match=r"training.sparsity: 'foo' is not one of \['none', 'replace_embedding"):
        load_config(None, {"training.sparsity": "foo"})
    with pytest.raises(ConfigError, match="training.sparsity_freq: 0 is below the minimum 1"):
        load_config(None, {"training.sparsity_freq": 0})
    with pytest.raises(ConfigError, match="cluster_distance_threshold: 0.0 must be above 0"):
        load_config(None, {"training.cluster_distance_threshold": 0})
    with pytest.raises(ConfigError, match="did you mean sparsity_freq"):
        load_config(None, {"training.sparsity_frq": 4})


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, tiny_pde_n2):
    from fvjax.dataset import load_dataset
    from fvjax.networks import generate_dataset
    cfg = tiny_pde_n2(16, 200, {"n_epochs": 2, "n_iter": 8, "batch_size": 4, "steps_per_call": 4,
                                "w_init_mode": "randn_scaled", "sparsity": "replace_embedding_function",
                                "sparsity_freq": 1, "cluster_distance_threshold": 0.05})
    data = load_dataset(generate_dataset(cfg, tmp_path_factory.mktemp("snap") / "data", progress=False))
    return cfg, data, M.dense_graph(16, data.input_index)


def test_fit_snaps_freezes_a_and_g_phi_and_resumes_exactly(tmp_path, tiny, interrupted):
    from fvjax.train import fit
    from fvjax.train import loop as L
    from fvjax.train.checkpoint import Checkpoint, restore_checkpoint

    cfg, data, graph = tiny
    full = fit(cfg, data, graph, tmp_path / "full", progress=False)
    snaps = json.loads((tmp_path / "full" / "snaps.json").read_text())
    assert [s["epoch"] for s in snaps] == [0] and 1 <= snaps[0]["n_clusters"] <= 16
    labels = np.array(snaps[0]["labels"])
    # the checkpoint at the end of epoch 0 holds the snapped embeddings (one value per cluster) and a fresh Adam
    ckpt = L.latest_checkpoint(tmp_path / "full")   # the end of epoch 1; epoch 0's is kept too (keep 2)
    step0 = ckpt.path.parent / str(cfg.training.n_iter)
    like = L.init_state(M.init(jax.random.PRNGKey(0), full.spec), L.make_optimizer(cfg.training))
    end0, meta = restore_checkpoint(Checkpoint(step0, cfg.training.n_iter), like)
    assert (meta["epoch"], meta["iteration"]) == (1, 0)
    a0 = np.asarray(end0.params["a"])
    assert all(len(np.unique(a0[labels == k], axis=0)) == 1 for k in range(snaps[0]["n_clusters"]))
    assert all(float(jnp.abs(x).max()) == 0 for x in jax.tree.leaves(end0.opt_state)
               if jnp.issubdtype(x.dtype, jnp.floating))                      # moments reset
    assert int(end0.step) == cfg.training.n_iter                               # the step counter kept
    # epoch 1 (frozen): a and g_phi do not move, W and f_theta do
    for key in ("a", "g_phi"):
        for x, y in zip(jax.tree.leaves(full.params[key]), jax.tree.leaves(end0.params[key])):
            np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    for key in ("W", "f_theta"):
        assert any(not np.array_equal(x, y) for x, y in zip(jax.tree.leaves(full.params[key]),
                                                              jax.tree.leaves(end0.params[key])))
    assert np.abs(a0 - 1.0).max() > 1e-4       # a (initialised to ones) learned in epoch 0, before the snap
    # stop right after the end-of-epoch-0 checkpoint, resume: the same final parameters
    interrupted(lambda: fit(cfg, data, graph, tmp_path / "cut", progress=False))
    assert L.latest_checkpoint(tmp_path / "cut").step == cfg.training.n_iter
    resumed = fit(cfg, data, graph, tmp_path / "cut", progress=False)
    for x, y in zip(jax.tree.leaves(full.params), jax.tree.leaves(resumed.params)):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-6, atol=1e-8)
    assert json.loads((tmp_path / "cut" / "snaps.json").read_text()) == snaps


def test_paper_recipe_of_the_synthetic_experiment():
    from fvjax.experiments.synthetic import build_config, main, parser

    cfg = build_config(parser().parse_args(["--model", "PDE_N2", "--recipe", "paper", "--time-steps", "1"]))
    tr = cfg.training
    assert (tr.n_epochs, tr.batch_size, tr.data_augmentation_loop, tr.n_iter, tr.sparsity, tr.sparsity_freq) == \
        (10, 8, 50, 0, "replace_embedding_function", 4)
    assert [e for e in range(10) if S.snap_due(tr, e)] == [3]
    from fvjax.train import n_iterations
    assert n_iterations(cfg, cfg.simulation.n_frames) == 125000          # the reference's Niter
    assert build_config(parser().parse_args(["--model", "PDE_N2"])).training.sparsity == "none"
    assert main(["--recipe", "paper", "--time-steps", "1"]) == 2           # tanh has no paper recipe
