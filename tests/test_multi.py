"""Several seeds trained as one vmapped program (fvjax.train.fit_many, pipeline.run_vmapped,
``experiments.vrest --seeds --vmap``) give what one run after another gives."""

import json

import jax
import numpy as np
import pytest

from fvjax.config import ConfigError
from tests.conftest import SMALL_EYE, TINY_VREST

TINY = {"n_epochs": 1, "n_iter": 12, "batch_size": 4, "steps_per_call": 4, "w_init_mode": "randn_scaled",
        "eval_every": 4}


def _seeded(cfg, seed):
    return cfg.replace(**{"simulation.seed": seed, "training.seed": seed})


@pytest.mark.parametrize("extra", [{}, {"ema_decay": 0.9}], ids=["plain", "ema"])
def test_fit_many_equals_sequential_fits(tmp_path, tiny_pde_n2, extra):
    """With ``training.ema_decay`` each model's result is its own running average, as in a lone fit."""
    from fvjax import model as M
    from fvjax.dataset import load_dataset
    from fvjax.networks import generate_dataset
    from fvjax.train import fit, fit_many

    base = tiny_pde_n2(16, 200, {**TINY, **extra})
    cfgs = [_seeded(base, s) for s in (1, 2)]
    datas = [load_dataset(generate_dataset(c, tmp_path / f"data{i}", progress=False)) for i, c in enumerate(cfgs)]
    graph = M.dense_graph(16, datas[0].input_index)
    assert not np.array_equal(datas[0].train.voltage[:5], datas[1].train.voltage[:5])   # the seeds' own data
    evals = [[], []]
    many = fit_many(cfgs, datas, graph, [tmp_path / "v1", tmp_path / "v2"], progress=False,
                    on_evals=[lambda p, it, e=e: e.append(it) or {"x": 0.0} for e in evals])
    for i, (cfg, data) in enumerate(zip(cfgs, datas)):
        one = fit(cfg, data, graph, tmp_path / f"s{i}", progress=False)
        for a, b in zip(*(jax.tree.leaves(r.params) for r in (many[i], one))):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=2e-5, atol=2e-6)
        assert [r["data"] for r in many[i].history] == pytest.approx([r["data"] for r in one.history], rel=1e-5)
        assert many[i].iterations == 12 and evals[i] == [it for it in (4, 8, 12) for _ in range(1 + bool(extra))]   # ema: last, then average
        assert (tmp_path / f"v{i + 1}" / "loss.csv").is_file() and list((tmp_path / f"v{i + 1}" / "checkpoints").iterdir())
    assert not np.allclose(np.asarray(many[0].params["W"]), np.asarray(many[1].params["W"]))


def test_fit_many_refuses_configs_that_differ_in_more_than_seeds(tiny_pde_n2):
    from fvjax.train.multi import check_same_but_seeds

    base = tiny_pde_n2(16, 200, TINY)
    check_same_but_seeds([_seeded(base, 1), _seeded(base, 2)])
    with pytest.raises(ConfigError, match="differ only in their seeds; these differ: training.lr"):
        check_same_but_seeds([base, base.replace(**{"training.lr": 1e-2})])
    with pytest.raises(ConfigError, match="do not support training.sparsity"):
        snap = base.replace(**{"training.sparsity": "replace_embedding_function"})
        check_same_but_seeds([snap, _seeded(snap, 3)])


@pytest.mark.slow
def test_vrest_vmap_equals_the_sequential_runs(two_runs, tmp_path):
    """``--seeds 3-4 --vmap`` with the settings of the shared tiny sequential runs (conftest.two_runs):
    the same metrics, up to float rounding (slow; the default suite checks fit_many against sequential fits
    on a tiny network above)."""
    from fvjax.experiments import vrest

    out = tmp_path / "runs"
    assert vrest.main(["--seeds", "3-4", "--vmap", "--out", str(out), *TINY_VREST, *SMALL_EYE]) == 0
    for seq in two_runs:
        vm = json.loads((out / seq.name / "metrics.json").read_text())
        ref = json.loads((seq / "metrics.json").read_text())
        for key in ("connectivity_R2", "tau_R2", "V_rest_R2", "test_R2", "final_loss"):
            assert vm[key] == pytest.approx(ref[key], rel=1e-3, abs=1e-4, nan_ok=True), key
        assert (out / seq.name / "plots" / "recovery.png").is_file()
    assert vrest.main(["--seeds", "3-4", "--vmap", "--jobs", "2", "--out", str(out)]) == 2


def test_fit_many_holds_each_seeds_own_silent_sources(tmp_path, tiny_pde_n2, monkeypatch):
    """training.hold_silent_sources under vmap: each seed keeps W at 0 on its own silent sources'
    edges and ends where its lone fit ends. (The tiny network's neurons are all active, so which
    sources count as silent is replaced by a rule that differs between the seeds' data.)"""
    from fvjax import model as M
    from fvjax.dataset import load_dataset
    from fvjax.networks import generate_dataset
    from fvjax.train import fit, fit_many
    from fvjax.train import loop as L

    def quiet_half(voltage):   # the neurons whose mean voltage is above the median count as active
        mean = np.asarray(voltage).mean(axis=0)
        return mean > np.median(mean)
    monkeypatch.setattr(L, "ever_active", quiet_half)
    base = tiny_pde_n2(16, 200, {**TINY, "hold_silent_sources": True}, signal_model_name="flyvis_A")
    cfgs = [_seeded(base, s) for s in (1, 2)]
    datas = [load_dataset(generate_dataset(c, tmp_path / f"data{i}", progress=False)) for i, c in enumerate(cfgs)]
    graph = M.dense_graph(16, datas[0].input_index)
    silent = [~quiet_half(d.train.voltage)[np.asarray(graph.src)] for d in datas]
    assert silent[0].sum() == 128 and not np.array_equal(silent[0], silent[1])
    many = fit_many(cfgs, datas, graph, [tmp_path / "v1", tmp_path / "v2"], progress=False)
    for i, (cfg, data) in enumerate(zip(cfgs, datas)):
        W = np.asarray(many[i].params["W"])
        assert np.all(W[silent[i]] == 0) and np.mean(W[~silent[i]] != 0) > 0.9
        one = fit(cfg, data, graph, tmp_path / f"s{i}", progress=False)
        for a, b in zip(*(jax.tree.leaves(r.params) for r in (many[i], one))):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=2e-5, atol=2e-6)


def test_fit_many_solves_each_seed_on_its_own_data(tmp_path, tiny_pde_n2):
    """training.refit_every under vmap: at iteration 4 of 12 each seed's W and b are solved on its own data
    and training goes on from them, ending where its lone fit ends; each seed writes its refits.csv."""
    from fvjax import model as M
    from fvjax.dataset import load_dataset
    from fvjax.networks import generate_dataset
    from fvjax.train import fit, fit_many

    # a well-conditioned solve (ridge 1e-2), so that float rounding between vmapped and lone steps stays small
    base = tiny_pde_n2(16, 200, {**TINY, "refit_every": 4, "refit_frames": 100, "refit_ridge": 1e-2},
                       signal_model_name="flyvis_A")
    cfgs = [_seeded(base, s) for s in (1, 2)]
    datas = [load_dataset(generate_dataset(c, tmp_path / f"data{i}", progress=False)) for i, c in enumerate(cfgs)]
    graph = M.dense_graph(16, datas[0].input_index)
    many = fit_many(cfgs, datas, graph, [tmp_path / "v1", tmp_path / "v2"], progress=False)
    for i, (cfg, data) in enumerate(zip(cfgs, datas)):
        one = fit(cfg, data, graph, tmp_path / f"s{i}", progress=False)
        for a, b in zip(*(jax.tree.leaves(r.params) for r in (many[i], one))):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=2e-5, atol=2e-6)
        rows = (tmp_path / f"v{i + 1}" / "refits.csv").read_text().splitlines()
        assert [r.split(",")[0] for r in rows[1:]] == ["4", "8"]   # not after the last iteration
        assert np.abs(np.asarray(many[i].params["b"])).max() > 0   # the solves moved b (lr_bias 0)
    assert not np.allclose(np.asarray(many[0].params["b"]), np.asarray(many[1].params["b"]))
