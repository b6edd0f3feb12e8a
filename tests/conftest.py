"""Shared fixtures. The flyvis parity data lives in ../shared/data (never copied into the repo)."""

import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]


def pytest_configure(config):
    """One persistent XLA compilation cache for this test session, fresh each session (so never stale), in a
    temporary folder that the worker processes of the cluster and --jobs tests, and pytest-xdist's workers
    (``-n 2``, the README's command), inherit through the environment: equal programs built by different
    tests, or by a test and its workers, compile once
    (benchmarks/README.md, "The test suite's compilation cache"). A JAX_COMPILATION_CACHE_DIR already set
    is left alone."""
    import tempfile

    if "JAX_COMPILATION_CACHE_DIR" in os.environ:
        return
    folder = tempfile.mkdtemp(prefix="fvjax-test-xla-cache-")
    config._fvjax_xla_cache = folder
    os.environ.update({"JAX_COMPILATION_CACHE_DIR": folder, "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
                       "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0"})
    import jax

    jax.config.update("jax_compilation_cache_dir", folder)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


def pytest_unconfigure(config):
    import shutil

    folder = getattr(config, "_fvjax_xla_cache", None)
    if folder:
        shutil.rmtree(folder, ignore_errors=True)
        for key in ("JAX_COMPILATION_CACHE_DIR", "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS",
                    "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"):
            os.environ.pop(key, None)


def shared_data_dir() -> Path:
    return Path(os.environ.get("FVJAX_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    path = shared_data_dir()
    if not (path / "flyvis_model_000.npz").is_file():
        pytest.skip(f"flyvis parity data not found in {path} (set FVJAX_SHARED_DATA)")
    return path


@pytest.fixture(scope="session")
def model000(shared_data):
    with np.load(shared_data / "flyvis_model_000.npz") as d:
        return {k: d[k] for k in d.files}


@pytest.fixture(scope="session")
def conn():
    from fvjax.connectome import build_connectome

    return build_connectome(8)


@pytest.fixture(scope="session")
def gt000(conn, shared_data):
    from fvjax.groundtruth import load_npz

    return load_npz(shared_data / "flyvis_model_000.npz", conn)


# experiments.vrest at toy size: 200 frames, 8 iterations (two checks), 40 test frames
TINY_VREST = ["--n-frames", "200", "--n-iter", "8", "--quiet", "--set", "training.steps_per_call=4",
              "--set", "training.eval_every=4", "--set", "simulation.n_test_frames=40"]
# an extent-2 eye (all 65 cell types, 1,203 neurons, 28,904 edges): for the tests of what is done with a finished run
SMALL_EYE = ["--set", "simulation.extent=2"]


@pytest.fixture(scope="session")
def default_run(tmp_path_factory):
    """The main job's command at toy size on the full extent-8 network: seed 3, 200 frames, 8 iterations."""
    from fvjax.experiments import vrest

    out = tmp_path_factory.mktemp("runs")
    assert vrest.main(["--seed", "3", "--out", str(out), *TINY_VREST]) == 0
    return out / "default_seed3"


@pytest.fixture(scope="session")
def two_runs(tmp_path_factory):
    """Two tiny finished model-000 runs on an extent-2 eye (seeds 3 and 4: 200 frames, 8 iterations): the
    machinery that reads, refits, compares and diagnoses runs is under test, not the science."""
    from fvjax.experiments import vrest

    out = tmp_path_factory.mktemp("runs")
    assert vrest.main(["--seeds", "3-4", "--out", str(out), *TINY_VREST, *SMALL_EYE]) == 0
    return out / "default_seed3", out / "default_seed4"


# A tiny PDE_N2 network (docs/synthetic.md) and the reference's signal GNN at toy width: shared by the
# tests that generate, fit or snap on one. (tests/test_dataset_checksum.py keeps its own, pinned config.)
TINY_PDE_N2 = {"network": "synthetic", "synthetic_model": "PDE_N2", "n_test_frames": 40, "seed": 2,
               "delta_t": 0.01, "noise_model_level": 0.0, "steady_state_time": 0.5}
TINY_SIGNAL_GNN = {"signal_model_name": "dense", "g_phi_positive": False, "hidden_dim": 8, "hidden_dim_update": 8,
                   "update_type": "additive", "g_phi_input": "voltage"}


@pytest.fixture(scope="session")
def tiny_pde_n2():
    """Factory: ``tiny_pde_n2(n_neurons, n_frames, training, **graph_model)`` -> Config."""
    from fvjax.config import from_dict

    def make(n_neurons: int, n_frames: int, training: dict, **graph_model):
        return from_dict({"simulation": {**TINY_PDE_N2, "n_neurons": n_neurons, "n_frames": n_frames},
                          "graph_model": {**TINY_SIGNAL_GNN, **graph_model}, "training": training})
    return make


@pytest.fixture
def interrupted(monkeypatch):
    """``interrupted(start)``: call ``start()`` (a fit) so that it dies right after writing its first
    checkpoint, as a killed job would; the checkpoint writer is restored afterwards."""
    from fvjax.train import loop as L

    def run(start):
        real_save = L.save_checkpoint

        def save_then_die(*args, **kwargs):
            real_save(*args, **kwargs)
            raise KeyboardInterrupt

        monkeypatch.setattr(L, "save_checkpoint", save_then_die)
        try:
            with pytest.raises(KeyboardInterrupt):
                start()
        finally:
            monkeypatch.setattr(L, "save_checkpoint", real_save)
    return run
