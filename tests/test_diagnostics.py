"""Diagnostics on hand-computed cases; the --models experiment's argument handling."""

import numpy as np
import pytest

from fvjax.evaluate import diagnostics as D

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


def test_understand_end_to_end(tmp_path):
    import json

    from experiments.understand import main

    # a small eye (extent 2, all 65 types): the comparison machinery, not the science, is under test
    rc = main(["--models", "flyvis_initial:2,prior:1", "--n-frames", "120", "--quiet",
               "--out", str(tmp_path), "--set", "training.n_iter=4", "--set", "training.steps_per_call=4",
               "--set", "simulation.extent=2",
               "--set", "simulation.n_test_frames=30", "--set", "simulation.sequence_frames=[20, 30]"])
    assert rc == 0
    rows = json.loads((tmp_path / "comparison.json").read_text())
    assert [r["model"] for r in rows] == ["flyvis_initial2", "prior1"]
    assert all(r["mechanism"] in ("direct", "partial", "compensation") for r in rows)
    table = (tmp_path / "comparison.md").read_text()
    assert "W_sum_corr_in" in table and "prior1" in table
    assert "recovery mechanism:" in (tmp_path / "prior1" / "analysis.log").read_text()


def test_rest_identifiability_by_hand():
    """A constant regressor explains the constant exactly (residual 0); a regressor 1 + eps s with s
    = +-1 of mean 0 leaves eps^2 / (1 + eps^2)."""
    T, eps = 400, 0.1
    alt = np.where(np.arange(T) % 2 == 0, 1.0, -1.0)
    V = np.zeros((T, 4))
    V[:, 0] = alt                        # target 0: its own voltage is zero-mean
    V[:, 1] = 2.0                        # constant source of 0
    V[:, 2] = -3.0 + 0 * alt             # target 2: own voltage -3 (constant: explains 1 alone)
    V[:, 3] = 1.0 + eps * np.roll(alt, 1)   # source of target 0 too, fluctuating
    src, dst = np.array([1, 3]), np.array([0, 0])
    r = D.rest_identifiability(V, src, dst, 4)
    assert r[0] == pytest.approx(0.0, abs=1e-20)     # 1 = 0.5 * ReLU(v_1)
    assert r[2] == pytest.approx(0.0, abs=1e-20)     # 1 = -v_2 / 3
    # neuron 3 has no input and v_3 = 1 + eps s (s = +-1, mean 0): residual eps^2 / (1 + eps^2)
    assert r[3] == pytest.approx(eps**2 / (1 + eps**2), rel=1e-9)
    # neuron 1: v_1 = 2 constant -> 0
    assert r[1] == pytest.approx(0.0, abs=1e-20)


def test_rest_identifiability_matches_projection():
    """Against 1 - 1'P1/T with the hat matrix P = X (X'X)^-1 X' built per neuron in float64."""
    rng = np.random.default_rng(0)
    T, n = 60, 6
    V = rng.normal(0.3, 1.0, (T, n))
    src, dst = np.array([1, 2, 3, 0, 5, 4, 2]), np.array([0, 0, 0, 1, 1, 2, 2])
    got = D.rest_identifiability(V, src, dst, n)
    for i in range(n):
        J = sorted(set(src[dst == i]))
        X = np.column_stack([V[:, i]] + [np.maximum(V[:, j], 0) for j in J])
        P = X @ np.linalg.inv(X.T @ X) @ X.T
        assert got[i] == pytest.approx(1 - np.ones(T) @ P @ np.ones(T) / T, rel=1e-8)


def test_vrest_table_reads_errors_and_offsets():
    rec = {"V_rest": np.array([0.1, 0.2, -0.9]), "V_rest_data": np.array([2.0, 0.0, -1.0])}
    weight, shape = np.array([-1.0, 0.5, 0.25]), np.array([-1.0, -0.5, 0.75])
    table = D.vrest_table(rec, np.zeros(3), weight, shape, np.array([0, 1, 2]), ["a", "b", "c"])
    assert table["per_type"]["c"] == {"error_probe": pytest.approx(-0.9), "error_data": -1.0,
                                      "offset_weights": 0.25, "offset_shape": 0.75}
    assert table["r_error_data_offset"] == pytest.approx(1.0)       # error = -(weight + shape) exactly
    assert table["r_error_data_offset_weights"] == pytest.approx(np.corrcoef([2, 0, -1], [1, -0.5, -0.25])[0, 1])


def test_drift_command_on_a_tiny_run(two_runs, capsys):
    """experiments.drift on a finished tiny run: the drift table and the V_rest section, whose
    vrest.json agrees with a recomputation from recovered.npz and the run's own data."""
    import json

    from fvjax.experiments import drift
    from fvjax.runs import load_run

    run = two_runs[1]
    assert drift.main([str(run), "--top", "3"]) == 0
    out = capsys.readouterr().out
    assert "V_rest error per type" in out and (run / "drift.json").is_file()
    table = json.loads((run / "vrest.json").read_text())
    r = load_run(run)
    rec, gt, nodes = r.recovered, r.ground_truth, r.nodes
    mine = np.asarray(nodes.node_type) == list(nodes.type_names).index("Mi1")
    assert table["per_type"]["Mi1"]["error_data"] == pytest.approx(float(np.median((rec["V_rest_data"] - gt.V_rest)[mine])))
    assert len(table["per_type"]) == 65 and -1 <= table["r_error_data_offset"] <= 1
    assert set(table["per_type"]["Mi1"]) == {"error_probe", "error_data", "offset_weights", "offset_shape"}


def test_activity_stats_reports_rest_identifiability():
    """experiments.stimulus_stats' summary on a 4-neuron toy: per-type medians of rest_identifiability."""
    from types import SimpleNamespace

    from fvjax.experiments.stimulus_stats import activity_stats

    rng = np.random.default_rng(1)
    V = rng.normal(0.5, 1.0, (300, 4))
    V[:, 1] = 2.0                                  # a constant source
    conn = SimpleNamespace(node_type=np.array([0, 0, 1, 1]), n_types=2, type_names=["A", "B"], n_nodes=4,
                           edge_src=np.array([1, 2, 0]), edge_dst=np.array([0, 3, 2]))
    stats = activity_stats(conn, SimpleNamespace(W=np.array([1.0, -1.0, 0.5])), V)
    ident = D.rest_identifiability(V, conn.edge_src, conn.edge_dst, 4)
    assert ident[0] < 1e-20 and ident[1] < 1e-20          # neuron 0 hears the constant; neuron 1 is it
    assert stats["rest_identifiability"] == {"A": pytest.approx(0.0, abs=1e-20),
                                             "B": pytest.approx(float(np.median(ident[2:])))}
    assert stats["median_rest_identifiability"] == pytest.approx(float(np.median(ident[2:])) / 2)


def test_message_offset_parts_sum_to_the_mean_message_difference():
    """Against the direct definition: the time-mean of gain_i sum_j W_ij g(v_j(t)) minus
    sum_j W_true,ij ReLU(v_j(t)), for a g that is not a ReLU (offset and curvature)."""
    rng = np.random.default_rng(3)
    n, T = 5, 50
    V = rng.normal(0.4, 0.6, (T, n))
    src, dst = np.array([0, 1, 2, 3, 4, 0, 2]), np.array([1, 2, 3, 4, 0, 3, 1])
    W_raw, W_true = rng.normal(0, 1, 7), rng.normal(0, 1, 7)
    gain, slope = rng.uniform(0.5, 2, n), rng.uniform(0.5, 1.5, n)
    G = slope * np.maximum(V, 0) + 0.1 + 0.05 * V**2          # (T, n): g of each source over time
    weight, shape = D.message_offset_parts(gain, G.mean(0), slope, np.maximum(V, 0).mean(0), W_raw, W_true, src, dst, n)
    learned = np.stack([gain * np.bincount(dst, W_raw * G[t, src], minlength=n) for t in range(T)])
    true = np.stack([np.bincount(dst, W_true * np.maximum(V[t, src], 0), minlength=n) for t in range(T)])
    np.testing.assert_allclose(weight + shape, (learned - true).mean(0), rtol=1e-12, atol=1e-12)
    # with g a ReLU of slope r the shape part vanishes and the weight part is minus rest_shift_from_weights
    w2, s2 = D.message_offset_parts(gain, slope * np.maximum(V, 0).mean(0), slope, np.maximum(V, 0).mean(0),
                                    W_raw, W_true, src, dst, n)
    np.testing.assert_allclose(s2, 0, atol=1e-12)
    dW = gain[dst] * W_raw * slope[src] - W_true
    np.testing.assert_allclose(w2, np.bincount(dst, dW * np.maximum(V, 0).mean(0)[src], minlength=n), rtol=1e-12)


def test_offset_by_source_by_hand_and_sums_to_the_weight_part():
    """Two target neurons of type 1 with inputs from types 0 and 2 (hand-computed), and over random
    data the per-source offsets add up to the type's mean weight part of message_offset_parts."""
    node_type = np.array([0, 0, 1, 1, 2])
    src, dst = np.array([0, 1, 4, 4, 0]), np.array([2, 3, 2, 3, 4])
    rate = np.array([1.0, 2.0, 0.5, 0.5, 4.0])
    W_true, w_star = np.array([1.0, 1.0, -1.0, 0.0, 9.0]), np.array([2.0, 1.5, -1.0, 0.5, 0.0])
    out = D.offset_by_source(w_star, W_true, rate, src, dst, node_type, target=1)
    assert set(out) == {0, 2}                         # the edge into type 2 is not counted
    # type 0 -> 1: (2 - 1) * 1 + (1.5 - 1) * 2 = 2 over two neurons; type 2 -> 1: (0.5 - 0) * 4 = 2 over two
    assert out[0] == {"edges": 2, "W_true": 1.0, "W_star": 1.75, "rate": 1.5, "offset": 1.0}
    assert out[2] == {"edges": 2, "W_true": -0.5, "W_star": -0.25, "rate": 4.0, "offset": 1.0}

    rng = np.random.default_rng(5)
    n, m = 30, 200
    node_type, src, dst = rng.integers(0, 4, n), rng.integers(0, n, m), rng.integers(0, n, m)
    rate, gain, slope = rng.uniform(0, 2, n), rng.uniform(0.5, 2, n), rng.uniform(0.5, 1.5, n)
    W_raw, W_true = rng.normal(0, 1, m), rng.normal(0, 1, m)
    weight, _ = D.message_offset_parts(gain, slope * rate, slope, rate, W_raw, W_true, src, dst, n)
    w_star = gain[dst] * W_raw * slope[src]
    for t in range(4):
        parts = D.offset_by_source(w_star, W_true, rate, src, dst, node_type, target=t)
        np.testing.assert_allclose(sum(r["offset"] for r in parts.values()), weight[node_type == t].mean(), rtol=1e-12)


def test_drift_command_rejects_an_unknown_cell_type(two_runs, capsys):
    from fvjax.experiments import drift

    assert drift.main([str(two_runs[0]), "--by-source", "L3,Nope"]) == 2
    err = capsys.readouterr().err
    assert "--by-source" in err and "Nope" in err and "L3," in err and "Traceback" not in err


def test_drift_command_splits_the_offset_by_source(two_runs, capsys):
    from fvjax.experiments import drift

    assert drift.main([str(two_runs[0]), "--top", "2", "--by-source", "L3"]) == 0
    out = capsys.readouterr().out
    assert "into L3, per source type" in out and "\n  L4 " in out


def test_drift_command_without_checkpoints_skips_the_vrest_table(two_runs, tmp_path, capsys):
    import shutil

    from fvjax.experiments import drift

    run = tmp_path / "copy"
    shutil.copytree(two_runs[1], run, ignore=shutil.ignore_patterns("checkpoints", "vrest.json"))
    assert drift.main([str(run), "--top", "2"]) == 0
    captured = capsys.readouterr()
    assert "V_rest table skipped" in captured.err and "checkpoint" in captured.err
    assert "Traceback" not in captured.err and not (run / "vrest.json").exists()


def test_averaged_checkpoints_r2_by_hand():
    """Two checkpoints scattered symmetrically around the truth: each alone has R^2 below 1, their
    mean recovers it exactly; k larger than the number of checkpoints is left out."""
    from fvjax.evaluate.diagnostics import averaged_checkpoints_r2
    from fvjax.evaluate.metrics import r2_filtered

    w = np.array([1.0, -2.0, 0.5, 3.0, -1.0])
    noise = np.array([0.3, -0.2, 0.4, -0.1, 0.2])
    snaps = {4: {"W": w + 2 * noise}, 8: {"W": w + noise}, 12: {"W": w - noise}}
    out = averaged_checkpoints_r2(snaps, w, counts=(2, 3, 4))
    assert set(out) == {2, 3}
    assert out[2] == pytest.approx(1.0)
    assert out[3] == pytest.approx(r2_filtered(w, w + 2 * noise / 3)[0])
    assert r2_filtered(w, snaps[12]["W"])[0] < 0.99


def test_connectivity_ceiling_by_hand():
    """Three neurons, source 1 never above 0: its two edges are unidentifiable; the ceiling is the R^2
    of the true W against W with those edges at 0, computed here by hand."""
    from fvjax.dataset import ever_active
    from fvjax.evaluate.diagnostics import connectivity_ceiling, identifiable_scores
    from fvjax.evaluate.metrics import r2_filtered

    voltage = np.array([[0.5, -1.0, 0.2], [-0.3, -0.2, 0.4], [1.0, -0.5, -0.1]])
    np.testing.assert_array_equal(ever_active(voltage, chunk=2), [True, False, True])
    src = np.array([0, 1, 1, 2, 0])
    W = np.array([1.0, -2.0, 0.5, 3.0, -1.0])
    out = connectivity_ceiling(ever_active(voltage), W, src, ["A", "B"], np.array([0, 1, 0]))
    assert out["silent_sources"] == 1 and out["silent_edges"] == 2
    assert out["silent_weight_share"] == pytest.approx(4.25 / 15.25)
    x, y = W, np.array([1.0, 0.0, 0.0, 3.0, -1.0])
    r = np.corrcoef(x, y)[0, 1]
    assert out["ceiling_R2"] == pytest.approx(r ** 2)
    assert out["silent_per_type"] == {"B": 1}
    assert connectivity_ceiling(np.ones(3, bool), W, src)["ceiling_R2"] == pytest.approx(1.0)
    # a W* right on the seen edges and wild on the silent ones: perfect on the identifiable edges only
    wrong_on_silent = np.array([1.0, 2.0, -2.0, 3.0, -1.0])   # within the outlier filter's 5 of the truth
    scores = identifiable_scores(W, wrong_on_silent, src, ever_active(voltage))
    assert scores["connectivity_R2_identifiable"] == pytest.approx(1.0)
    assert r2_filtered(W, wrong_on_silent)[0] < 0.9   # unmasked, the silent edges count
    assert scores["connectivity_ceiling_R2"] == pytest.approx(r ** 2) and scores["silent_sources"] == 1


def test_least_squares_weights_recover_an_exact_equation():
    """Data made by the true equation (tau 0.1, V_rest 0.3) with one always-silent source: the fit
    returns every seen weight exactly and 0 for the silent one (min-norm, its column is all zeros)."""
    from fvjax.evaluate.diagnostics import least_squares_weights

    rng = np.random.default_rng(0)
    V = rng.normal(0.2, 1.0, (500, 4))
    V[:, 3] = -1.0 - rng.random(500)      # never above 0
    src = np.array([1, 2, 3])
    w = np.array([0.7, -1.2, 0.9])
    E = np.zeros_like(V)
    E[:, 0] = rng.normal(size=500)
    Y = np.zeros_like(V)
    Y[:, 0] = (-V[:, 0] + 0.3 + np.maximum(V[:, src], 0) @ w + E[:, 0]) / 0.1
    got = least_squares_weights(V, Y, E, 0, np.arange(3), src)
    np.testing.assert_allclose(got, [0.7, -1.2, 0.0], atol=1e-9)
