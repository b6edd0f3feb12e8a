"""Diagnostics on hand-computed cases; the --models experiment's argument handling."""

import numpy as np
import pytest

from fvjax import diagnostics as D

# 3 neurons, 4 edges: 0->1 (+2), 1->2 (-1), 2->0 (+1), 0->2 (+3)
SRC = np.array([0, 1, 2, 0])
DST = np.array([1, 2, 0, 2])
W_TRUE = np.array([2.0, -1.0, 1.0, 3.0])


def test_w_sums_by_hand():
    w_in, w_out = D.w_sums(W_TRUE, SRC, DST, 3)
    np.testing.assert_allclose(w_in, [1.0, 2.0, 2.0])     # into 0: 1; into 1: 2; into 2: -1 + 3
    np.testing.assert_allclose(w_out, [5.0, -1.0, 1.0])   # out of 0: 2 + 3; of 1: -1; of 2: 1


def test_correlations_and_mechanisms():
    scaled = 0.5 * W_TRUE
    corr = D.w_sum_correlation(W_TRUE, scaled, SRC, DST, 3)
    assert corr["in"] == pytest.approx(1.0) and corr["out"] == pytest.approx(1.0)
    inverted = D.w_sum_correlation(W_TRUE, -W_TRUE, SRC, DST, 3)
    assert inverted["in"] == pytest.approx(-1.0) and inverted["out"] == pytest.approx(-1.0)
    assert D.recovery_mechanism(corr["in"], corr["out"]) == "direct"
    assert D.recovery_mechanism(inverted["in"], inverted["out"]) == "compensation"
    # the seeds' four models (001): 003 direct, 041 partial, 011 compensation
    assert D.recovery_mechanism(0.68, 0.94) == "direct"
    assert D.recovery_mechanism(-0.19, 0.31) == "partial"
    assert D.recovery_mechanism(-0.46, -0.84) == "compensation"


def test_sign_match_ignores_true_zeros():
    learned = np.array([1.0, 1.0, 1.0, -1.0, 5.0])
    true = np.array([2.0, -1.0, 1.0, 3.0, 0.0])
    assert D.sign_match_rate(true, learned) == pytest.approx(2 / 4)


def test_diagnose_collects_everything():
    node_type = np.array([0, 1, 1])
    scalars, arrays = D.diagnose(W_TRUE, -W_TRUE, 2 * W_TRUE, SRC, DST, node_type, 2)
    assert scalars["mechanism"] == "compensation"
    assert scalars["sign_match_raw"] == 0.0 and scalars["sign_match_corrected"] == 1.0
    assert scalars["W_sum_corr_in_corrected"] == pytest.approx(1.0)
    assert scalars["W_true_frac_positive"] == pytest.approx(0.75)
    assert scalars["W_learned_mean"] == pytest.approx(2 * W_TRUE.mean())
    assert arrays["W_R2_per_target_type"].shape == (2,)


def test_understand_parses_models(tmp_path):
    from experiments.understand import main, parse_model

    assert parse_model("prior:3") == ("prior3", {"simulation.ground_truth": "prior", "simulation.seed": 3})
    f = tmp_path / "m.npz"
    f.write_bytes(b"x")
    assert parse_model(str(f))[0] == "m"
    with pytest.raises(ValueError, match="prior:<seed>"):
        parse_model("prior:x")
    with pytest.raises(ValueError, match="existing file"):
        parse_model("nonexistent.npz")
    assert main(["--models", "prior:1,bogus"]) == 2


def test_understand_end_to_end(tmp_path, shared_data):
    import json

    from experiments.understand import main

    rc = main(["--models", f"{shared_data / 'flyvis_model_000.npz'},prior:1", "--n-frames", "120", "--quiet",
               "--out", str(tmp_path), "--set", "training.n_iter=4", "--set", "training.steps_per_call=4",
               "--set", "simulation.n_test_frames=30", "--set", "simulation.sequence_frames=[20, 30]"])
    assert rc == 0
    rows = json.loads((tmp_path / "comparison.json").read_text())
    assert [r["model"] for r in rows] == ["flyvis_model_000", "prior1"]
    assert all(r["mechanism"] in ("direct", "partial", "compensation") for r in rows)
    table = (tmp_path / "comparison.md").read_text()
    assert "W_sum_corr_in" in table and "prior1" in table
    assert "recovery mechanism:" in (tmp_path / "prior1" / "analysis.log").read_text()
