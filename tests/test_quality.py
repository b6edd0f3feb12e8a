"""Slow science checks (``python -m pytest -m slow``): a reduced model-000 training must recover the
connectivity. Sizes and floors are documented in docs/results.md with the measurements behind them.

Run alone on 2 cores it takes about 10 minutes per case. The model-000 cases run on the default
stimulus (`scenes` since 2026-12-03, with brighter statistics since later that day; the floor was
fixed on `natural` and not changed, and the three cases were measured on each, docs/results.md).
"""

import json

import pytest

# The recipe fvjax used before 2026-12-01: randn_scaled W, no W_L2, g_phi L1 at full strength,
# additive g_phi_diff step. Kept to show what the fix changed.
BEFORE = {"training.w_init_mode": "randn_scaled", "training.coeff_W_L2": 0.0,
          "training.g_phi_weight_L1_annealing": "exponential", "training.coeff_g_phi_weight_L1_rate": 0.0,
          "training.g_phi_diff_perturbation": "additive"}
REDUCED = ["--n-frames", "4000", "--n-iter", "8000", "--set", "simulation.n_test_frames=200",
           "--set", "training.eval_every=4000"]
FLOOR = 0.85   # connectivity R^2 (reference definition) after 8,000 iterations


def _reduced_run(tmp_path, sets: dict, recipe: str = "reference") -> dict:
    from fvjax.experiments import vrest
    from fvjax.experiments.vrest import main

    extra = [x for k, v in sets.items() for x in ("--set", f"{k}={v}")]
    assert main(["--seed", "1", "--quiet", "--recipe", recipe, "--out", str(tmp_path), *REDUCED, *extra]) == 0
    return json.loads((tmp_path / vrest.run_name("default", recipe, 1) / "metrics.json").read_text())


@pytest.mark.slow
def test_quality_model000_connectivity(tmp_path):
    """The recipe as the reference ran it recovers model 000's connectivity in a reduced run."""
    metrics = _reduced_run(tmp_path, {})
    assert metrics["connectivity_R2"] >= FLOOR, metrics["connectivity_R2"]
    assert metrics["connectivity_R2_data"] >= FLOOR


@pytest.mark.slow
def test_quality_fvjax_recipe(tmp_path):
    """experiments.vrest's default recipe (gain-form update, silent-source pin, additive g_phi_diff,
    silent sources held) in the same reduced run:
    connectivity and tau above the same floor (chosen before this case was measured)."""
    metrics = _reduced_run(tmp_path, {}, recipe="fvjax")
    assert metrics["connectivity_R2"] >= FLOOR, metrics["connectivity_R2"]
    assert metrics["tau_R2"] >= FLOOR, metrics["tau_R2"]


@pytest.mark.slow
def test_quality_previous_recipe_falls_short(tmp_path):
    """The pre-2026-12-01 recipe, same reduced run: documents the gap the fix closed."""
    metrics = _reduced_run(tmp_path, BEFORE)
    assert metrics["connectivity_R2"] < FLOOR, metrics["connectivity_R2"]


# Reduced seed-003 case: the reference's PDE_N2 network (N = 1000, 20,000 frames, seed 0) and 6,000
# iterations. The GNN before 2026-12-01 (generic f_theta([u, a, msg, e]), g_phi([u, a]), the flyvis
# regularisers, W from zeros) is what `--model PDE_N2` trained then; measured in docs/results.md.
PDE_N2_BEFORE = {"graph_model.update_type": "generic", "graph_model.g_phi_input": "voltage_embedding",
                 "training.w_init_mode": "zeros", "training.coeff_f_theta_zero": 0.0, "training.coeff_W_L1": 1e-5,
                 "training.coeff_W_L2": 2.5e-6, "training.coeff_g_phi_diff": 750.0, "training.coeff_g_phi_norm": 0.9,
                 "training.coeff_f_theta_weight_L2": 0.001}
PDE_N2_FLOOR = 0.2   # connectivity R^2 (W k against g W) after 6,000 iterations


def _pde_n2_run(tmp_path, sets: dict, n_frames: int = 20000, n_iter: int = 6000) -> dict:
    from fvjax.experiments.synthetic import main

    extra = [x for k, v in sets.items() for x in ("--set", f"{k}={v}")]
    assert main(["--model", "PDE_N2", "--time-steps", "1", "--n-iter", str(n_iter), "--n-frames", str(n_frames),
                 "--quiet", "--out", str(tmp_path), "--set", f"training.eval_every={n_iter // 2}", *extra]) == 0
    return json.loads((tmp_path / "PDE_N2" / "seed0" / "ts1" / "metrics.json").read_text())


@pytest.mark.slow
def test_quality_pde_n2_signal_gnn(tmp_path):
    """On 20,000 frames the reference's signal GNN learns the PDE_N2 couplings, far from R^2 0.99."""
    metrics = _pde_n2_run(tmp_path, {})
    assert metrics["connectivity_R2"] >= PDE_N2_FLOOR, metrics["connectivity_R2"]


# The seed-003 study calls a run converged at connectivity R^2 > 0.9; with the reference's 100,000 frames
# (the preset since 2026-12-01) that is reached within 12,000 iterations, while on 20,000 frames the
# same GNN stays near 0.33 there (docs/results.md).
PDE_N2_CONVERGED = 0.9


@pytest.mark.slow
def test_quality_pde_n2_converges_on_the_reference_frames(tmp_path):
    metrics = _pde_n2_run(tmp_path, {}, n_frames=100000, n_iter=12000)
    assert metrics["connectivity_R2"] > PDE_N2_CONVERGED, metrics["connectivity_R2"]


@pytest.mark.slow
def test_quality_pde_n2_previous_gnn_falls_short(tmp_path):
    metrics = _pde_n2_run(tmp_path, PDE_N2_BEFORE)
    assert metrics["connectivity_R2"] < PDE_N2_FLOOR, metrics["connectivity_R2"]
