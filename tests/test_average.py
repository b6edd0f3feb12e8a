"""Parameter averaging (training.ema_decay): the running average against a float64 numpy
re-implementation, its place in the optimizer state (checkpoints, resume), and what reads it."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from fvjax.config import ConfigError, load_config
from fvjax.train import fit, init_state, make_optimizer, model_params, track_average
from fvjax.train import loop as L
from fvjax.train.average import AverageState


def test_average_matches_float64_reference():
    """Twenty Adam steps on a quadratic: the tracked average equals a numpy float64 recurrence over
    the parameters Adam produced, with the warm-up decay min(d, (1 + t) / (10 + t))."""
    decay = 0.9
    opt = optax.chain(optax.adam(0.1), track_average(decay))
    params = {"w": jnp.array([1.0, -2.0, 3.0]), "b": jnp.array(0.5)}
    state = opt.init(params)
    avg = {k: np.asarray(v, np.float64) for k, v in params.items()}
    for t in range(1, 21):
        grads = jax.tree.map(lambda p: 2 * p, params)
        updates, state = opt.update(grads, state, params)
        params = optax.apply_updates(params, updates)
        d = min(decay, (1 + t) / (10 + t))
        avg = {k: d * avg[k] + (1 - d) * np.asarray(params[k], np.float64) for k in avg}
    tracked = state[1]
    assert int(tracked.count) == 20
    for k in avg:
        np.testing.assert_allclose(np.asarray(tracked.average[k]), avg[k], rtol=1e-6)
        assert not np.allclose(avg[k], np.asarray(params[k]))   # the average lags the parameters
    # the transformation leaves the updates alone
    plain = optax.adam(0.1)
    u1, _ = plain.update({"w": jnp.ones(3), "b": jnp.array(1.0)}, plain.init(params))
    u2, _ = opt.update({"w": jnp.ones(3), "b": jnp.array(1.0)}, opt.init(params), params)
    for a, b in zip(jax.tree.leaves(u1), jax.tree.leaves(u2)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_model_params_reads_the_average_only_when_kept():
    params = {"W": jnp.zeros(4), "g_phi": jnp.ones(2), "f_theta": jnp.ones(2), "a": jnp.ones(2)}
    off = init_state(params, make_optimizer(load_config().training))
    assert not any(isinstance(x, AverageState) for x in
                   jax.tree.leaves(off.opt_state, is_leaf=lambda x: isinstance(x, AverageState)))
    assert model_params(off) is off.params   # ema_decay 0: the optimizer state is as before (old checkpoints resume)
    on = init_state(params, make_optimizer(load_config(None, {"training.ema_decay": 0.99}).training))
    on = on._replace(opt_state=(on.opt_state[0], on.opt_state[1]._replace(average={**params, "W": jnp.full(4, 7.0)})))
    np.testing.assert_array_equal(np.asarray(model_params(on)["W"]), 7.0)


@pytest.mark.parametrize("sets, key", [({"training.ema_decay": 1.0}, "training.ema_decay"),
                                       ({"training.ema_decay": 0.99, "training.W_refit_every": 10},
                                        "training.ema_decay")])
def test_bad_settings_are_refused(sets, key):
    with pytest.raises(ConfigError, match=key):
        load_config(None, sets)
    with pytest.raises(ValueError, match="decay"):
        track_average(0.0)


def test_fit_evaluates_and_resumes_the_average(tmp_path, tiny_pde_n2, interrupted):
    """A fit with ema_decay: the checks and the result see the average (not the last parameters), and a
    run interrupted after a checkpoint resumes to the same average."""
    from fvjax.networks import generate_dataset
    from fvjax.dataset import load_dataset
    from fvjax import model as M

    training = {"n_iter": 12, "steps_per_call": 4, "eval_every": 6, "eval_budget": 1.0, "ema_decay": 0.5}
    cfg = tiny_pde_n2(20, 200, training)
    data = load_dataset(generate_dataset(cfg, tmp_path / "ds", progress=False))
    graph = M.dense_graph(20, data.input_index)
    seen = []

    def check(params, it):
        seen.append(params)
        return {"w_sum": float(jnp.sum(M.weights(params, M_spec[0])))}

    from fvjax.train import model_spec
    M_spec = [model_spec(cfg, 20, int(graph.src.shape[0]))]
    full = fit(cfg, data, graph, tmp_path / "full", progress=False, on_eval=check)
    assert len(seen) == 4   # two checks, each of the last iterate, then of the average
    for a, b in zip(jax.tree.leaves(seen[-1]), jax.tree.leaves(full.params)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))   # the last check is at the end
    header, *rows = (tmp_path / "full" / "metrics_during.csv").read_text().splitlines()
    assert header == "iteration,w_sum,w_sum_last" and len(rows) == 2
    end = rows[-1].split(",")
    assert float(end[1]) == pytest.approx(float(jnp.sum(M.weights(full.params, M_spec[0]))), abs=1e-5)
    assert float(end[1]) != pytest.approx(float(end[2]), abs=1e-6)
    state, _ = L.restore_checkpoint(L.latest_checkpoint(tmp_path / "full"),
                                    init_state(full.params, make_optimizer(cfg.training)))
    assert any(not np.allclose(np.asarray(a), np.asarray(b))
               for a, b in zip(jax.tree.leaves(state.params), jax.tree.leaves(full.params)))
    for a, b in zip(jax.tree.leaves(model_params(state)), jax.tree.leaves(full.params)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))

    interrupted(lambda: fit(cfg, data, graph, tmp_path / "cut", progress=False, checkpoint_every_s=0.0, on_eval=check))
    resumed = fit(cfg, data, graph, tmp_path / "cut", progress=False, on_eval=check)
    for a, b in zip(jax.tree.leaves(full.params), jax.tree.leaves(resumed.params)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-8)


def test_adam_restarts_keep_the_average_unless_the_parameters_jumped():
    """After an embedding snap the average restarts at the snapped parameters; at the restart that
    ends the frozen epoch it carries on (docs/decisions.md)."""
    from fvjax.train.optim import fresh_moments

    opt = make_optimizer(load_config(None, {"training.ema_decay": 0.99}).training)
    params = {"W": jnp.zeros(4), "g_phi": jnp.ones(2), "f_theta": jnp.ones(2), "a": jnp.ones(2)}
    state = opt.init(params)
    state = (state[0], AverageState(jnp.asarray(5, jnp.int32), {**params, "W": jnp.full(4, 3.0)}))
    moved = {**params, "W": jnp.full(4, 7.0)}
    kept = fresh_moments(opt, state, moved, keep_average=True)[1]
    assert int(kept.count) == 5 and float(kept.average["W"][0]) == 3.0
    reset = fresh_moments(opt, state, moved)[1]
    assert int(reset.count) == 0 and float(reset.average["W"][0]) == 7.0

