import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fvjax import dataset as D
from fvjax.config import load_config
from fvjax.generate import main as generate_main
from fvjax.networks import generate_dataset
from fvjax.networks.flyvis import check_network, dataset_ground_truth, resolve_ground_truth
from fvjax.simulate import expand_frame, make_circuit, simulate, steady_state


@pytest.fixture
def small_cfg(shared_data):
    return load_config(None, {
        "simulation.ground_truth": str(shared_data / "flyvis_model_000.npz"),
        "simulation.n_frames": 150, "simulation.n_test_frames": 40, "simulation.chunk_frames": 64,
        "simulation.sequence_frames": [20, 30], "simulation.seed": 3,
    })


def test_generate_and_load(tmp_path, small_cfg, conn, gt000):
    out = generate_dataset(small_cfg, tmp_path / "ds", progress=False)
    data = D.load_dataset(out)
    assert data.train.voltage.shape == (150, conn.n_nodes)
    assert data.train.stimulus.shape == (150, conn.n_inputs)
    assert data.test.target.shape == (40, conn.n_nodes)
    D.verify_dataset(out)
    np.testing.assert_array_equal(dataset_ground_truth(data, conn).W, gt000.W)
    assert data.manifest["seed"] == 3 and data.manifest["config"]["simulation"]["n_frames"] == 150
    # chunked writing equals one uninterrupted simulation from the same steady state and key
    circuit = make_circuit(conn, gt000)
    v0 = steady_state(circuit, n_steps=100)
    lum = np.asarray(data.train.stimulus[:, :217])
    _, traj = simulate(circuit, v0, jnp.asarray(expand_frame(conn, lum)),
                       jax.random.fold_in(jax.random.PRNGKey(3), 0))
    np.testing.assert_array_equal(np.asarray(traj.voltage), data.train.voltage)
    # targets are the noise-free rhs; the residual of the Euler update is the process noise
    resid = data.train.voltage[1:] - data.train.voltage[:-1] - 0.02 * data.train.target[:-1]
    assert 0.045 < float(np.std(resid)) < 0.055
    # the test split starts again from the steady state, with its own noise stream
    np.testing.assert_allclose(data.test.voltage[0], np.asarray(v0), atol=1e-6)


def test_killed_run_leaves_nothing_complete(tmp_path, small_cfg, monkeypatch):
    calls = {"n": 0}
    real = D._Writer.write

    def dying_write(self, start, **chunks):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt  # as if killed mid-run
        real(self, start, **chunks)

    monkeypatch.setattr(D._Writer, "write", dying_write)
    with pytest.raises(KeyboardInterrupt):
        generate_dataset(small_cfg, tmp_path / "ds", progress=False)
    assert not (tmp_path / "ds").exists()
    with pytest.raises(FileNotFoundError, match="unfinished run"):
        D.load_dataset(tmp_path / "ds")


def test_existing_output_and_checksum(tmp_path, small_cfg):
    out = generate_dataset(small_cfg, tmp_path / "ds", progress=False)
    with pytest.raises(FileExistsError, match="overwrite"):
        generate_dataset(small_cfg, out, progress=False)
    arr = np.load(out / "train" / "target.npy", mmap_mode="r+")
    arr[5, 5] += 1.0
    arr.flush()
    with pytest.raises(ValueError, match="train/target.npy: checksum mismatch"):
        D.verify_dataset(out)


def test_bad_inputs_are_named(tmp_path, conn):
    cfg = load_config(None, {"simulation.n_neurons": 1000})
    with pytest.raises(ValueError, match="simulation.n_neurons = 1000"):
        check_network(cfg, conn)
    cfg = load_config(None, {"simulation.ground_truth": str(tmp_path / "nope.npz")})
    with pytest.raises(FileNotFoundError, match="simulation.ground_truth"):
        resolve_ground_truth(cfg, conn)


def test_cli(tmp_path, shared_data, capsys):
    rc = generate_main(["--out", str(tmp_path / "cli"), "--n-frames", "60", "--quiet",
                        "--set", f"simulation.ground_truth={shared_data / 'flyvis_model_000.npz'}",
                        "--set", "simulation.n_test_frames=20"])
    assert rc == 0
    manifest = json.loads((tmp_path / "cli" / "manifest.json").read_text())
    assert manifest["splits"]["train"]["arrays"]["voltage"]["shape"][0] == 60
    assert generate_main(["--out", str(tmp_path / "x"), "--set", "simulation.n_frame=3"]) == 2
    assert "did you mean n_frames" in capsys.readouterr().err


def test_read_rows_equals_indexing_without_mapping_pages(tmp_path):
    from fvjax.dataset import read_rows

    arr = np.random.default_rng(0).normal(size=(50, 7, 3)).astype(np.float32)
    np.save(tmp_path / "a.npy", arr)
    mm = np.load(tmp_path / "a.npy", mmap_mode="r")
    rows = np.array([[4, 49], [0, 4]])
    np.testing.assert_array_equal(read_rows(mm, rows), arr[rows.reshape(-1)])
    np.testing.assert_array_equal(read_rows(arr, [3, 1]), arr[[3, 1]])       # in-memory: plain indexing
    with pytest.raises(IndexError, match="out of range"):
        read_rows(mm, [50])
    np.save(tmp_path / "empty.npy", np.zeros((50, 0), np.float32))     # no driven inputs
    assert read_rows(np.load(tmp_path / "empty.npy", mmap_mode="r"), [3, 7]).shape == (2, 0)


def test_per_neuron_scores_chunked_equals_whole():
    from fvjax.evaluate.metrics import per_neuron_scores

    rng = np.random.default_rng(1)
    true, pred = rng.normal(size=(40, 10)), rng.normal(size=(40, 10))
    true[:, 3] = 1.0                                   # a flat trace -> NaN
    whole, chunked = per_neuron_scores(true, pred, chunk=100), per_neuron_scores(true, pred, chunk=3)
    for key in whole:
        np.testing.assert_allclose(chunked[key], whole[key], equal_nan=True)
    assert np.isnan(whole["pearson"][3])
