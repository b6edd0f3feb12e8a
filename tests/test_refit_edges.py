"""The end-of-training least-squares refit of an edge-list W and a per-neuron constant b
(``training.refit_at_end``, fvjax.train.refit.refit_edges; docs/training.md)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fvjax import model as M
from fvjax.config import MESSAGE_LINEAR, ConfigError, load_config
from fvjax.train.refit import edge_features, edge_least_squares
from tests.conftest import SMALL_EYE, TINY_VREST


def _graph(rng, n: int, n_edges: int):
    """Random distinct edges (no self-loops) with targets of different in-degree, neuron 0 without inputs."""
    pairs = np.unique(np.stack([rng.integers(0, n, n_edges), rng.integers(1, n, n_edges)], 1), axis=0)
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    rng.shuffle(pairs)
    return pairs[:, 0], pairs[:, 1]


def _reference(H, R, src, dst, kept, W0, b0, ridge):
    """Independent float64 reference: per target, an augmented lstsq over [H_src | 1] with
    sqrt(lam) I rows pulling towards (W0, b0)."""
    W, b = np.where(kept, W0, 0.0), b0.astype(np.float64).copy()
    for i in range(len(b0)):
        edges = [e for e in range(len(src)) if dst[e] == i and kept[e]]
        X = np.column_stack([H[:, src[edges]], np.ones(len(H))])
        x0 = np.r_[W0[edges], b0[i]]
        lam = ridge * np.trace(X.T @ X) / X.shape[1]
        A = np.vstack([X, np.sqrt(lam) * np.eye(X.shape[1])])
        sol = np.linalg.lstsq(A, np.r_[R[:, i], np.sqrt(lam) * x0], rcond=None)[0]
        W[edges], b[i] = sol[:-1], sol[-1]
    return W, b


def test_edge_least_squares_matches_per_neuron_lstsq():
    rng = np.random.default_rng(0)
    n, T = 12, 300
    src, dst = _graph(rng, n, 60)
    E = len(src)
    kept = rng.random(E) > 0.2
    H = np.maximum(rng.standard_normal((T, n)), 0) + 0.1 * rng.standard_normal((T, n))
    W_true, b_true = rng.standard_normal(E) * kept, rng.standard_normal(n)
    msg = np.zeros((T, n))
    np.add.at(msg.T, dst, (W_true[:, None] * H[:, src].T))
    R = msg + b_true + 0.05 * rng.standard_normal((T, n))
    W0, b0 = rng.standard_normal(E), rng.standard_normal(n)
    for ridge in (0.0, 0.3):
        W, b, (before, after) = edge_least_squares(H, R, src, dst, kept, W0, b0, ridge, block=500)
        W_ref, b_ref = _reference(H, R, src, dst, kept, W0, b0, ridge)
        np.testing.assert_allclose(W, W_ref, rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(b, b_ref, rtol=1e-8, atol=1e-10)
        assert not W[~kept].any()        # edges not learned are held at 0
        msg_after, msg_before = np.zeros((T, n)), np.zeros((T, n))
        np.add.at(msg_after.T, dst, (W[:, None] * H[:, src].T))
        np.add.at(msg_before.T, dst, (W0 * kept)[:, None] * H[:, src].T)
        assert after == pytest.approx(np.sqrt(np.mean((R - msg_after - b) ** 2)), rel=1e-9)
        assert before == pytest.approx(np.sqrt(np.mean((R - msg_before - b0) ** 2)), rel=1e-9)
    assert after < before
    # noise-free and unregularised: the exact W and b
    R0 = msg + b_true
    W, b, _ = edge_least_squares(H, R0, src, dst, kept, W0, b0, 0.0)
    np.testing.assert_allclose(W, W_true, atol=1e-8)
    np.testing.assert_allclose(b, b_true, atol=1e-8)
    # an overwhelming ridge leaves everything where it was
    W, b, _ = edge_least_squares(H, R, src, dst, kept, W0, b0, 1e9)
    np.testing.assert_allclose(W, W0 * kept, atol=1e-6)
    np.testing.assert_allclose(b, b0, atol=1e-6)


def test_edge_least_squares_solves_on_one_blas_thread(monkeypatch):
    """The solve runs under a one-thread BLAS limit (with other work on the cores the default pool was 4.7-30x
    slower, benchmarks/refit.py --threads) and the limit is lifted afterwards."""
    from threadpoolctl import threadpool_info

    import fvjax.train.refit as FR

    def blas_threads():
        return [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]

    before, seen, solve = blas_threads(), [], FR.solve_edges
    monkeypatch.setattr(FR, "solve_edges", lambda *a, **k: seen.append(blas_threads()) or solve(*a, **k))
    rng = np.random.default_rng(1)
    src, dst = _graph(rng, 6, 20)
    H, R = rng.random((50, 6)), rng.random((50, 6))
    W, b, _ = FR.edge_least_squares(H, R, src, dst, np.ones(len(src), bool), np.zeros(len(src)), np.zeros(6), 0.1)
    assert len(seen) == 1 and seen[0] and all(n == 1 for n in seen[0]) and blas_threads() == before
    W_ref, b_ref = _reference(H, R, src, dst, np.ones(len(src), bool), np.zeros(len(src)), np.zeros(6), 0.1)
    np.testing.assert_allclose(W, W_ref, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("update, field", [("gain", "none"), ("additive", "none"), ("gain", "visual")])
def test_refit_recovers_the_W_and_b_that_made_the_targets(update, field):
    """Targets made by the model itself (M.apply, segment sums) with some W and b: the features invert
    the update exactly, so the unregularised refit from another W and b returns those. With a learned
    visual field the input is the field at the frames' indices, not the recorded stimulus."""
    rng = np.random.default_rng(1)
    n, T, n_in = 10, 80, 3
    src, dst = _graph(rng, n, 40)
    spec = M.ModelSpec(n_nodes=n, n_edges=len(src), variant="flyvis_A", hidden_dim=8, hidden_dim_update=8,
                       update=update, neuron_bias=True, field=field, siren_hidden=8, siren_layers=1, omega=3.0,
                       T_period=40.0)
    graph = M.Graph(jnp.asarray(src, jnp.int32), jnp.asarray(dst, jnp.int32), jnp.asarray([1, 4, 7], jnp.int32),
                    input_xy=jnp.asarray(rng.uniform(-1, 1, (n_in, 2))))
    with jax.enable_x64(True):
        params = M.init(jax.random.PRNGKey(3), spec, jnp.float64)
        params["a"] = jnp.asarray(rng.standard_normal((n, 2)))
        # a g_phi that varies with v by O(1) (at init it is almost flat, so [H | 1] would be ill-conditioned)
        params["g_phi"] = jax.tree.map(lambda x: 3.0 * x, params["g_phi"])
        if update == "gain":   # a gain visibly away from 1
            params["f_gain"] = jax.tree.map(lambda x: x + 0.3 * jnp.asarray(rng.standard_normal(x.shape)),
                                            params["f_gain"])
        W_true, b_true = rng.standard_normal(len(src)), rng.standard_normal(n)
        v = jnp.asarray(2.0 * rng.standard_normal((T, n)) + 0.5)
        recorded = jnp.asarray(rng.standard_normal((T, n_in)))
        frames = np.arange(T) * 3 + 5   # training-frame indices of the rows
        stim = M.visual_field(params, spec, graph, jnp.asarray(frames)) if field == "visual" else recorded
        assert field == "none" or float(jnp.std(stim)) > 1e-3
        target, _ = M.apply({**params, "W": jnp.asarray(W_true), "b": jnp.asarray(b_true)}, spec, graph, v, stim)
        H, R = edge_features(params, spec, graph, v, recorded, np.asarray(target), chunk=30, frames=frames)
    W, b, (_, after) = edge_least_squares(H, R, src, dst, np.ones(len(src), bool), np.zeros(len(src)),
                                          np.zeros(n), 0.0)
    np.testing.assert_allclose(W, W_true, atol=1e-7)
    np.testing.assert_allclose(b, b_true, atol=1e-7)
    assert after < 1e-8


@pytest.mark.parametrize("changes, key", [
    ({"graph_model.signal_model_name": "dense"}, "refit_at_end"),
    ({"graph_model.update_type": "generic"}, "refit_at_end"),
    ({"training.ema_decay": 0.99}, "ema_decay"),
])
def test_refit_at_end_config_guards(changes, key):
    assert set(MESSAGE_LINEAR) == set(M.UPDATES)   # every update rule says whether the refit applies
    base = {"training.refit_at_end": True, "graph_model.update_type": "gain"}
    assert load_config(None, base).training.refit_at_end
    with pytest.raises(ConfigError, match=key):
        load_config(None, {**base, **changes})


def test_recipe_run_refits_at_end_and_keeps_it(two_runs, capsys):
    """experiments.vrest's fvjax recipe refits at the end: metrics.json scores the refit (and keeps the trained
    parameters' quick scores), RUN/refit.npz holds W and b for the final step, Run.params gives them
    (refit=False gives the trained W), Run.evaluate reproduces metrics.json, and re-running the command
    reuses the stored refit instead of solving again."""
    import json

    import fvjax
    from fvjax.experiments import vrest

    run_dir = two_runs[0]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["refit_rms_after"] < metrics["refit_rms_before"]
    assert {"before_refit_connectivity_R2", "before_refit_V_rest_R2"} <= set(metrics)
    with np.load(run_dir / "refit.npz") as f:
        stored = {k: f[k] for k in ("W", "b", "step")}
    assert int(stored["step"]) == metrics["iterations"] == 8
    run = fvjax.load_run(run_dir)
    params, _ = run.params()
    np.testing.assert_array_equal(np.asarray(params["W"]), stored["W"])
    np.testing.assert_array_equal(np.asarray(params["b"]), stored["b"])
    trained, _ = run.params(refit=False)
    assert "b" not in trained and not np.allclose(np.asarray(trained["W"]), stored["W"])
    again = run.evaluate()
    for key in ("connectivity_R2", "V_rest_R2", "tau_R2"):
        assert again[key] == pytest.approx(metrics[key], rel=1e-6, abs=1e-9, nan_ok=True), key
    assert again["V_rest_R2"] != pytest.approx(metrics["before_refit_V_rest_R2"], rel=1e-6, abs=1e-9)
    stamp = (run_dir / "refit.npz").stat().st_mtime_ns
    assert vrest.main(["--seed", "3", "--out", str(run_dir.parent), *TINY_VREST, *SMALL_EYE]) == 0
    assert (run_dir / "refit.npz").stat().st_mtime_ns == stamp
    rerun = json.loads((run_dir / "metrics.json").read_text())
    for key in ("connectivity_R2", "V_rest_R2", "refit_rms_after", "before_refit_V_rest_R2"):
        assert rerun[key] == metrics[key], key


def run_W(run_dir):
    import fvjax

    return fvjax.load_run(run_dir).params(refit=False)[0]["W"]


def test_refit_command_on_a_finished_run(two_runs, tmp_path, capsys, monkeypatch):
    """python -m experiments.refit RUN: scores the trained and the refit parameters with the full evaluation
    into RUN/refit_check.json (the trained column is the run's before-refit state, the refit column with the
    recipe's settings is what metrics.json reports), leaves refit.npz alone; bad input exits 2."""
    import json

    from fvjax.experiments.refit import main

    run_dir = two_runs[1]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    stamp = (run_dir / "refit.npz").stat().st_mtime_ns
    assert main([str(run_dir)]) == 0
    check = json.loads((run_dir / "refit_check.json").read_text())
    assert check["rms_after"] == pytest.approx(metrics["refit_rms_after"], rel=1e-6)
    for key in ("connectivity_R2", "V_rest_R2", "tau_R2"):
        assert check["refit"][key] == pytest.approx(metrics[key], rel=1e-5, abs=1e-7, nan_ok=True), key
        assert check["trained"][key] == pytest.approx(metrics[f"before_refit_{key}"], rel=1e-5, abs=1e-7,
                                                  nan_ok=True), key
    assert (run_dir / "refit.npz").stat().st_mtime_ns == stamp
    assert "refit" in capsys.readouterr().out
    from fvjax.cli import main as cli

    assert cli(["show", str(run_dir)]) == 0
    shown = capsys.readouterr().out
    assert f"before the end-of-training refit of W and b: connectivity_R2 {metrics['before_refit_connectivity_R2']:.4f}" in shown
    import fvjax.train.refit as refit_module

    starts, solve = [], refit_module.refit_edges
    monkeypatch.setattr(refit_module, "refit_edges", lambda params, *rest: starts.append(params) or solve(params, *rest))
    assert main([str(run_dir), "--from-zero"]) == 0   # the solve starts from (and its ridge pulls towards) W = 0, b = 0
    zero = json.loads((run_dir / "refit_check.json").read_text())
    assert zero["from_zero"] and len(starts) == 1 and "b" not in starts[0]
    assert not np.any(np.asarray(starts[0]["W"])) and np.any(np.asarray(run_W(run_dir)))
    assert json.dumps(zero["trained"]) == json.dumps(check["trained"])   # the same trained column (NaN-safe)
    assert main([str(tmp_path / "nope")]) == 2
    assert main([str(run_dir), "--ridge", "-1"]) == 2
    assert "error" in capsys.readouterr().err


def test_refit_every_sets_W_and_b_to_the_solve_and_training_goes_on(two_runs, tmp_path):
    """training.refit_every: at iteration 4 of 8 W and b are what refit_edges gives for the parameters a run
    without it has at 4 (same seed, so the same steps up to there); the check at 4 sees them, refits.csv
    records the solve, b (lr_bias 0) stays where the refit put it while the other parameters go on learning,
    and no refit is made at the last iteration (refit_at_end's job)."""
    import csv

    import fvjax
    from fvjax.train import fit
    from fvjax.train.loop import model_spec, training_graph
    from fvjax.train.refit import refit_edges

    run = fvjax.load_run(two_runs[0])
    base = {"training.n_iter": 8, "training.steps_per_call": 4, "training.eval_every": 4, "training.eval_budget": 1.0,
            "training.refit_at_end": False}
    seen = {}

    def grab(tag):
        return lambda p, it: seen.setdefault(tag, {}).__setitem__(it, jax.tree.map(np.asarray, p)) or {}

    plain_cfg = run.config.replace(**base)
    fit(plain_cfg, run.dataset, run.graph, tmp_path / "plain", progress=False, on_eval=grab("plain"))
    cfg = run.config.replace(**base, **{"training.refit_every": 4})
    assert cfg.training.neuron_bias and not plain_cfg.training.neuron_bias
    fit(cfg, run.dataset, run.graph, tmp_path / "every", progress=False, on_eval=grab("every"))

    spec = model_spec(plain_cfg, run.dataset.train.voltage.shape[1], int(run.graph.src.shape[0]))
    graph = training_graph(plain_cfg, run.dataset, run.graph, spec)
    want, (before, after) = refit_edges(jax.tree.map(jnp.asarray, seen["plain"][4]), spec, graph, run.dataset,
                                        cfg.training.refit_frames, cfg.training.refit_ridge)
    got = seen["every"][4]
    np.testing.assert_allclose(got["W"], np.asarray(want["W"]), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(got["b"], np.asarray(want["b"]), rtol=1e-5, atol=1e-7)
    assert np.abs(got["b"]).max() > 1e-4 and not np.allclose(got["W"], seen["plain"][4]["W"])
    np.testing.assert_array_equal(got["f_theta"][0]["w"], seen["plain"][4]["f_theta"][0]["w"])
    with open(tmp_path / "every" / "refits.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["iteration"]) for r in rows] == [4]
    assert float(rows[0]["rms_after"]) == pytest.approx(after, rel=1e-4) and after < before
    last = seen["every"][8]
    np.testing.assert_array_equal(last["b"], got["b"])          # lr_bias 0: only the refits move b
    assert not np.allclose(last["W"], got["W"])                  # W goes on learning by gradient
    assert not np.array_equal(last["f_theta"][0]["w"], got["f_theta"][0]["w"])


@pytest.mark.parametrize("changes, key", [
    ({"graph_model.signal_model_name": "dense"}, "refit_every"),
    ({"graph_model.update_type": "generic"}, "refit_every"),
    ({"training.ema_decay": 0.99}, "refit_every"),
])
def test_refit_every_config_guards(changes, key):
    base = {"training.refit_every": 1000, "graph_model.update_type": "gain"}
    assert load_config(None, base).training.neuron_bias
    with pytest.raises(ConfigError, match=key):
        load_config(None, {**base, **changes})
