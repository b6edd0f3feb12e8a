import pickle
import zipfile
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from fvjax.groundtruth import from_tables, load_flyvis_checkpoint, load_npz, load_torch_zip, save_npz

FIXTURE = Path(__file__).parent / "fixtures" / "flyvis_like_checkpoint.pt"


def _fixture_tables():
    rng = np.random.default_rng(2026)
    tau = rng.uniform(0.02, 0.3, 65).astype(np.float32)
    bias = rng.normal(0.5, 0.1, 65).astype(np.float32)
    strength = rng.uniform(0.0, 0.1, 604).astype(np.float32)
    logc = np.log(rng.uniform(0.05, 100.0, 2355)).astype(np.float32)
    return tau, bias, strength, logc


def test_model000_W_bit_for_bit(gt000, model000):
    np.testing.assert_array_equal(gt000.W, model000["W"])
    np.testing.assert_array_equal(gt000.tau, model000["tau"])
    np.testing.assert_array_equal(gt000.V_rest, model000["V_rest"])


def test_from_tables_against_hand_formula(conn, model000):
    # float64 recomputation of W = sign * count * max(strength, 0), independent of from_tables
    strength = model000["syn_strength_per_edge_type"].astype(np.float64).copy()
    strength[0] = -1.0  # negative strengths are clamped to 0 like flyvis
    gt = from_tables(conn, model000["tau_per_type"], model000["V_rest_per_type"], strength)
    expect = (conn.edge_type_sign[conn.edge_type].astype(np.float64)
              * conn.group_n_syn[conn.edge_group] * np.maximum(strength, 0)[conn.edge_type])
    np.testing.assert_allclose(gt.W, expect, rtol=1e-6, atol=0)
    assert (gt.W[conn.edge_type == 0] == 0).all()


def test_from_tables_shape_errors(conn):
    with pytest.raises(ValueError, match="tau_per_type must have shape"):
        from_tables(conn, np.ones(3), np.ones(65), np.ones(604))
    with pytest.raises(ValueError, match="> 0"):
        from_tables(conn, np.zeros(65), np.ones(65), np.ones(604))


def test_torch_zip_reader_on_real_torch_file():
    ckpt = load_torch_zip(FIXTURE)
    tau, bias, strength, logc = _fixture_tables()
    np.testing.assert_array_equal(ckpt["network"]["nodes_bias"], bias)
    np.testing.assert_array_equal(ckpt["network"]["edges_syn_count"], logc)
    np.testing.assert_array_equal(ckpt["decoder"]["w_t"], np.arange(12.0).reshape(3, 4).T)
    assert ckpt["decoder"]["n"] == 232080 and ckpt["decoder"]["n"].dtype == np.int64


def test_load_flyvis_checkpoint(conn):
    tau, bias, strength, logc = _fixture_tables()
    gt = load_flyvis_checkpoint(FIXTURE, conn)
    np.testing.assert_array_equal(gt.tau_per_type, tau)
    np.testing.assert_array_equal(gt.V_rest, bias[conn.node_type])
    np.testing.assert_allclose(gt.syn_count, np.exp(logc.astype(np.float64)), rtol=1e-6)
    expect = conn.edge_sign * np.exp(logc.astype(np.float64))[conn.edge_group] * strength[conn.edge_type]
    np.testing.assert_allclose(gt.W, expect, rtol=1e-5)


def test_checkpoint_refuses_foreign_classes(tmp_path):
    path = tmp_path / "evil.pt"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("archive/data.pkl", pickle.dumps({"x": Fraction(1, 3)}))
    with pytest.raises(pickle.UnpicklingError, match="fractions.Fraction"):
        load_torch_zip(path)
    (tmp_path / "legacy.pt").write_bytes(b"\x80\x02not a zip")
    with pytest.raises(ValueError, match="not a torch zip"):
        load_torch_zip(tmp_path / "legacy.pt")


def test_checkpoint_missing_keys(tmp_path, conn):
    path = tmp_path / "partial.pt"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("archive/data.pkl", pickle.dumps({"network": {"nodes_bias": 1}}))
    with pytest.raises(KeyError, match="nodes_time_const"):
        load_flyvis_checkpoint(path, conn)


def test_npz_roundtrip_and_graph_check(tmp_path, conn, gt000):
    save_npz(tmp_path / "gt.npz", gt000, conn)
    back = load_npz(tmp_path / "gt.npz", conn)
    for a, b in zip(gt000, back):
        np.testing.assert_array_equal(a, b)
    np.savez(tmp_path / "bad.npz", tau_per_type=gt000.tau_per_type, V_rest_per_type=gt000.V_rest_per_type,
             syn_strength_per_edge_type=gt000.syn_strength, edge_src=conn.edge_src[::-1])
    with pytest.raises(ValueError, match="edge_src differs"):
        load_npz(tmp_path / "bad.npz", conn)
    np.savez(tmp_path / "missing.npz", tau_per_type=gt000.tau_per_type)
    with pytest.raises(KeyError, match="V_rest_per_type"):
        load_npz(tmp_path / "missing.npz", conn)


def test_bundled_model000_rebuilds_shared_tables(conn, model000):
    """The package's model-000 tables reproduce the shared per-node and per-edge arrays: tau and
    V_rest exactly; W within 3 float32 ulp: flyvis's synapse counts went through torch's float32
    exp(log(count)) (1 ulp off the exact count in 267 groups), then two roundings of the product."""
    from fvjax.groundtruth import load_bundled

    gt = load_bundled(conn)
    np.testing.assert_array_equal(gt.tau, model000["tau"])
    np.testing.assert_array_equal(gt.V_rest, model000["V_rest"])
    ulp = np.spacing(np.abs(model000["W"]).astype(np.float32))
    assert (np.abs(gt.W - model000["W"]) <= 3 * ulp).all()
    assert np.array_equal(np.sign(gt.W), np.sign(model000["W"]))


def test_default_ground_truth_is_model000_whatever_the_seed(conn, model000):
    from fvjax.config import load_config
    from fvjax.networks.flyvis import resolve_ground_truth

    for seed in (0, 7):
        gt = resolve_ground_truth(load_config(None, {"simulation.seed": seed}), conn, progress=False)
        np.testing.assert_array_equal(gt.tau, model000["tau"])
        np.testing.assert_allclose(gt.W, model000["W"], rtol=4e-7, atol=0)


def test_flyvis_results_folder(conn, tmp_path):
    """A downloaded flyvis ensemble member (folder with best_chkpt, or only chkpts/) is a ground truth."""
    import shutil

    from fvjax.config import load_config
    from fvjax.networks.flyvis import resolve_ground_truth

    tau, bias, strength, logc = _fixture_tables()
    member = tmp_path / "results" / "flow" / "0000" / "049"
    (member / "chkpts").mkdir(parents=True)
    shutil.copy(FIXTURE, member / "chkpts" / "chkpt_00000")
    cfg = load_config(None, {"simulation.ground_truth": str(member)})
    gt = resolve_ground_truth(cfg, conn)
    np.testing.assert_array_equal(gt.tau_per_type, tau)
    shutil.copy(FIXTURE, member / "best_chkpt")
    np.testing.assert_array_equal(resolve_ground_truth(cfg, conn).V_rest, bias[conn.node_type])
    empty = tmp_path / "results" / "flow" / "0000" / "011"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="best_chkpt"):
        resolve_ground_truth(load_config(None, {"simulation.ground_truth": str(empty)}), conn)
