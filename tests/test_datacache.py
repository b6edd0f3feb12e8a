"""Shared, content-addressed datasets: one dataset per distinct data setting, found again by every
run that needs it, built once under concurrency; old run folders keep their own data/."""

import json
import threading

import numpy as np
import yaml

from fvjax import pipeline
from fvjax.config import load_config
from fvjax.datacache import cache_root, dataset_dir, dataset_name


def test_name_depends_on_exactly_the_data_settings(tmp_path):
    base = load_config(None, {"simulation.n_frames": 100})
    same = [{"simulation.chunk_frames": 7}, {"simulation.measurement_noise_level": 0.1},
            {"simulation.data_cache": str(tmp_path)}, {"training.lr_W": 1e-2, "training.seed": 5},
            {"graph_model.hidden_dim": 8}]
    for change in same:
        assert dataset_name(base.replace(**change)) == dataset_name(base), change
    other = [{"simulation.seed": 1}, {"simulation.n_frames": 101}, {"simulation.noise_model_level": 0.0},
             {"simulation.ground_truth": "prior"}, {"simulation.visual_input_type": "natural"},
             {"simulation.blank_prefix_fraction": 0.5}]
    names = {dataset_name(base.replace(**change)) for change in other}
    assert len(names) == len(other) and dataset_name(base) not in names
    assert dataset_name(base).startswith("flyvis-") and len(dataset_name(base)) == len("flyvis-") + 16
    # a key added later is named only away from its default, so older datasets keep their names
    from fvjax.datacache import data_settings
    assert "blank_prefix_fraction" not in data_settings(base)["simulation"]


def test_a_ground_truth_file_is_identified_by_its_content(tmp_path):
    gt = tmp_path / "gt.npz"
    np.savez(gt, tau=np.ones(3))
    cfg = load_config(None, {"simulation.ground_truth": str(gt)})
    first = dataset_name(cfg)
    np.savez(gt, tau=np.full(3, 2.0))          # same path, other tables: other data
    assert dataset_name(cfg) != first


def test_cache_location_and_old_run_folders(tmp_path):
    cfg = load_config(None, {})
    assert cache_root(cfg, tmp_path / "runs" / "a") == (tmp_path / "runs" / "datasets").resolve()
    custom = cfg.replace(**{"simulation.data_cache": str(tmp_path / "cache")})
    assert dataset_dir(custom, tmp_path / "runs" / "a") == (tmp_path / "cache").resolve() / dataset_name(cfg)
    old = tmp_path / "runs" / "b"
    (old / "data").mkdir(parents=True)
    (old / "data" / "manifest.json").write_text("{}")   # a run folder from before the cache keeps its data
    assert dataset_dir(cfg, old) == old / "data"


def test_two_runs_share_one_dataset(tmp_path):
    from fvjax.experiments.vrest import main

    common = ["--seed", "2", "--n-frames", "120", "--n-iter", "4", "--quiet", "--out", str(tmp_path / "runs"),
              "--set", "simulation.ground_truth=flyvis_initial", "--set", "simulation.extent=2",
              "--set", "simulation.n_test_frames=20", "--set", "training.steps_per_call=4"]
    assert main(common) == 0
    assert main(common + ["--preset", "paper", "--n-iter", "4", "--n-frames", "120"]) == 0
    runs = [tmp_path / "runs" / "default_seed2", tmp_path / "runs" / "paper_seed2"]
    dirs = {json.loads((r / "metrics.json").read_text())["data_dir"] for r in runs}
    assert len(dirs) == 1 and not any((r / "data").exists() for r in runs)
    (shared,) = dirs
    assert [p.name for p in (tmp_path / "runs" / "datasets").iterdir() if p.is_dir()] == [shared.split("/")[-1]]
    for r in runs:   # the run's config records where its data are
        recorded = yaml.safe_load((r / "config.yaml").read_text())["simulation"]["data_cache"]
        assert recorded == str((tmp_path / "runs" / "datasets").resolve())


def test_concurrent_runs_build_a_dataset_once(tmp_path, monkeypatch):
    cfg = load_config(None, {"simulation.n_frames": 40, "simulation.n_test_frames": 4, "simulation.extent": 2,
                             "simulation.ground_truth": "flyvis_initial"})
    real, calls = pipeline.generate_dataset, []
    monkeypatch.setattr(pipeline, "generate_dataset", lambda *a, **k: calls.append(1) or real(*a, **k))
    folder = tmp_path / dataset_name(cfg)
    out = []
    workers = [threading.Thread(target=lambda: out.append(pipeline.ensure_dataset(cfg, folder, progress=False)))
               for _ in range(3)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert len(calls) == 1 and len(out) == 3 and all(d.path == folder and len(d.train) == 40 for d in out)
