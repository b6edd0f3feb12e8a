"""load_run / compare_runs and the ``fvjax`` console command on tiny runs (from a temporary directory;
the ``two_runs`` fixture is in conftest.py, shared with test_tuning.py)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest


def test_load_run_per_type(two_runs):
    import fvjax

    run = fvjax.load_run(two_runs[0])
    assert run.config.simulation.seed == 3 and run.config.simulation.ground_truth == "flyvis_000"
    metrics = json.loads((two_runs[0] / "metrics.json").read_text())
    assert run.metrics["connectivity_R2"] == metrics["connectivity_R2"]
    assert list(run.loss["iteration"]) == [4, 8] and "connectivity_R2" in run.during
    from fvjax.connectome import build_connectome

    eye = build_connectome(2)   # the fixture's extent-2 eye: all 65 types
    table = run.per_type
    assert run.config.simulation.extent == 2 and len(table) == 65 and table["n_neurons"].sum() == eye.n_nodes
    l1 = table.set_index("type").loc["L1"]
    gt = np.load(os.path.join(os.path.dirname(fvjax.__file__), "groundtruth", "flyvis", "model_000.npz"))
    assert l1["tau_true"] == pytest.approx(float(gt["tau_per_type"][8]))
    i = run.nodes.node_type == 8
    assert l1["tau_learned"] == pytest.approx(float(np.median(run.recovered["tau"][i])))
    assert 0 < l1["cluster_share"] <= 1
    params, spec = run.params()
    assert params["W"].shape == (eye.n_edges,) and spec.n_nodes == eye.n_nodes


def test_compare_runs(two_runs):
    import fvjax

    table, summary = fvjax.compare_runs(two_runs)
    assert list(table["seed"]) == [3, 4]
    vals = table["connectivity_R2"].to_numpy()
    assert summary.loc["connectivity_R2", "mean"] == pytest.approx(vals.mean())
    assert summary.loc["connectivity_R2", "std"] == pytest.approx(vals.std())
    assert summary.loc["connectivity_R2", "n"] == 2


def test_compare_names_runs_evaluated_before_a_metric_existed(two_runs, tmp_path, capsys):
    """A metric absent from one run's metrics.json is NaN in its row, left out of n, and named in a note."""
    import shutil

    from fvjax.cli import compare

    old = tmp_path / "old_seed4"
    shutil.copytree(two_runs[1], old, ignore=shutil.ignore_patterns("checkpoints", "plots"))
    metrics = json.loads((old / "metrics.json").read_text())
    del metrics["V_rest_R2_offset"]
    (old / "metrics.json").write_text(json.dumps(metrics))
    assert compare([str(two_runs[0]), str(old)]) == 0
    out = capsys.readouterr().out
    assert "note: V_rest_R2_offset is not in the metrics.json of old_seed4 (" in out
    assert out.count("note:") == 1
    import fvjax

    table, summary = fvjax.compare_runs([two_runs[0], old])
    assert summary.attrs["absent"] == {"V_rest_R2_offset": ["old_seed4"]}
    assert summary.loc["V_rest_R2_offset", "n"] == 1 and summary.loc["connectivity_R2", "n"] == 2
    assert np.isnan(table.loc[1, "V_rest_R2_offset"])


def test_compare_sets_aside_the_seed_summary_a_glob_also_matches(two_runs, tmp_path, capsys):
    """`fvjax compare runs/vrest/default_seed*` (the README's command) also matches the
    default_seeds3-4_summary.json that the two seeds' command wrote beside their folders: named, not an error."""
    from fvjax.cli import compare

    out_dir = two_runs[0].parent
    matched = sorted(str(p) for p in out_dir.glob("default_seed*"))
    assert str(out_dir / "default_seeds3-4_summary.json") in matched and len(matched) == 3
    assert compare(matched[::-1]) == 0
    out = capsys.readouterr().out
    assert "note: skipped " + str(out_dir / "default_seeds3-4_summary.json") in out
    assert 0 < out.index("default_seed3 ") < out.index("default_seed4 ")   # rows by seed, whatever the order given
    assert compare([str(out_dir / "default_seeds3-4_summary.json")]) == 2   # nothing left to compare
    assert "no run folders" in capsys.readouterr().err
    other = tmp_path / "notes.json"
    other.write_text("{}")
    assert compare([str(two_runs[0]), str(other)]) == 2   # any other file is still not a run folder
    assert "is not a run folder" in capsys.readouterr().err


def test_console_command_from_any_directory(two_runs, tmp_path):
    exe = [sys.executable, "-m", "fvjax.cli"]
    shown = subprocess.run([*exe, "show", str(two_runs[0]), "--csv", "t.csv"], cwd=tmp_path, capture_output=True,
                           text=True, timeout=300)
    assert shown.returncode == 0, shown.stderr
    assert "connectivity_R2" in shown.stdout and "Mi9" in shown.stdout and (tmp_path / "t.csv").is_file()
    compared = subprocess.run([*exe, "compare", *map(str, two_runs)], cwd=tmp_path, capture_output=True, text=True,
                              timeout=300)
    assert compared.returncode == 0 and "default_seed4" in compared.stdout and "mean" in compared.stdout
    bad = subprocess.run([*exe, "show", str(tmp_path)], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "not a run folder" in bad.stderr and "Traceback" not in bad.stderr
    unknown = subprocess.run([*exe, "nope"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert unknown.returncode == 2 and "vrest" in unknown.stderr


def test_last_iterate_of_an_averaging_run(tmp_path, capsys):
    """A run with training.ema_decay reports its average in metrics.json; Run.evaluate() reproduces
    those numbers from the checkpoint, Run.evaluate(last=True) and ``fvjax show RUN --last-iterate``
    score the trained parameters themselves."""
    import fvjax
    from fvjax.cli import main as cli
    from fvjax.experiments.vrest import main
    from .test_cluster import TINY_ARGS

    assert main(["--seed", "1", "--out", str(tmp_path), *TINY_ARGS, "--set", "training.ema_decay=0.5"]) == 0
    run = fvjax.load_run(tmp_path / "default_seed1")
    averaged, last = run.params()[0], run.params(last=True)[0]
    assert not np.allclose(np.asarray(averaged["W"]), np.asarray(last["W"]))
    again = run.evaluate()
    for key in ("connectivity_R2", "tau_R2", "V_rest_R2"):
        assert again[key] == pytest.approx(run.metrics[key], rel=1e-6, abs=1e-9)
    scored = run.evaluate(last=True)
    assert scored["connectivity_R2"] != pytest.approx(run.metrics["connectivity_R2"], rel=1e-6, abs=1e-9)
    capsys.readouterr()
    assert cli(["show", str(tmp_path / "default_seed1"), "--last-iterate"]) == 0
    out = capsys.readouterr().out
    assert "last iterate" in out and f"connectivity_R2              {scored['connectivity_R2']:.4f}" in out
