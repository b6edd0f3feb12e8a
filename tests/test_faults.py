"""Faults a user can cause, and what fvjax guarantees when they happen (docs/data.md, run folders)."""

from pathlib import Path

import yaml

from fvjax.config import dump_config, load_config


def test_resume_with_other_settings_is_refused(tmp_path, capsys):
    """A run folder started with one learning rate is never continued (or relabelled) with another:
    exit 2, the differing key named, config.yaml untouched, nothing else written."""
    from experiments.vrest import PRESETS, main

    run_dir = tmp_path / "runs" / "default_seed3"
    run_dir.mkdir(parents=True)
    cfg = load_config(None, {**PRESETS["default"], "simulation.seed": 3, "training.seed": 3})
    dump_config(cfg, run_dir / "config.yaml")
    before = (run_dir / "config.yaml").read_bytes()
    code = main(["--seed", "3", "--out", str(tmp_path / "runs"), "--lr", "3e-3", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "training.lr: 0.0012 there, 0.003 now" in err and "another run folder" in err
    assert "--set KEY=VALUE" in err
    # values are shown as --set reads them back (strings quoted, tuples as lists)
    assert 'training.g_phi_diff_perturbation: "multiplicative" there, "additive" now' in err
    assert (run_dir / "config.yaml").read_bytes() == before
    assert sorted(p.name for p in run_dir.iterdir()) == ["config.yaml"]


def test_same_settings_resume_passes_the_check(tmp_path):
    """Keys that change nothing computed (steps_per_call, eval_every) and keys added since the folder
    was written, at the value the folder was made with (config.BEFORE_KEY), do not block a resume."""
    from fvjax.pipeline import check_run_settings

    cfg = load_config(None, {"training.n_iter": 10, "simulation.scene_luminance": [0.3, 0.7],
                             "simulation.scene_contrast": [0.1, 0.6]})
    data = yaml.safe_load(yaml.safe_dump({"simulation": {"seed": 0}, "training": {"n_iter": 10, "eval_every": 3}}))
    Path(tmp_path / "config.yaml").write_text(yaml.safe_dump(data))
    check_run_settings(cfg, tmp_path)


def test_g_phi_linear_slope_of_older_folders(tmp_path):
    """A folder from before training.g_phi_linear_slope used the tangent: with g_phi_linear on, continuing
    it with today's secant is refused and it reads as tangent; with the term off the key changes nothing."""
    import pytest

    from fvjax.pipeline import RunMismatch, check_run_settings
    from fvjax.runs import load_run

    from fvjax.config import SimulationConfig

    today = SimulationConfig()   # today's scene statistics, so only the slope differs
    sim = {"scene_luminance": list(today.scene_luminance), "scene_contrast": list(today.scene_contrast)}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({"simulation": sim,
                                                          "training": {"n_iter": 10, "coeff_g_phi_linear": 0.9}}))
    assert load_run(tmp_path).config.training.g_phi_linear_slope == "tangent"
    assert load_config(None).training.g_phi_linear_slope == "secant"
    on = {"training.n_iter": 10, "training.coeff_g_phi_linear": 0.9}
    with pytest.raises(RunMismatch, match=r"training.g_phi_linear_slope: \"tangent\" there"):
        check_run_settings(load_config(None, on), tmp_path)
    check_run_settings(load_config(None, {**on, "training.g_phi_linear_slope": "tangent"}), tmp_path)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({"simulation": sim, "training": {"n_iter": 10}}))
    check_run_settings(load_config(None, {"training.n_iter": 10}), tmp_path)


def test_a_folder_older_than_a_key_keeps_the_value_it_was_made_with(tmp_path, monkeypatch):
    """A config.yaml that predates a key was made with the key's BEFORE_KEY value, not with whatever
    the default is today: reading it must say so, and continuing it under another value is refused."""
    import pytest

    from fvjax import config as C
    from fvjax.pipeline import RunMismatch, check_run_settings
    from fvjax.runs import load_run

    # pretend scene_luminance was introduced with (0.4, 0.6) and its default changed since
    monkeypatch.setitem(C.BEFORE_KEY, "simulation", {**C.BEFORE_KEY["simulation"], "scene_luminance": [0.4, 0.6]})
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({"simulation": {"seed": 0}, "training": {"n_iter": 10}}))
    assert load_run(tmp_path).config.simulation.scene_luminance == (0.4, 0.6)
    assert load_config(None).simulation.scene_luminance != (0.4, 0.6)
    with pytest.raises(RunMismatch, match=r"simulation.scene_luminance: \[0.4, 0.6\] there"):
        check_run_settings(load_config(None, {"training.n_iter": 10}), tmp_path)
    check_run_settings(load_config(None, {"training.n_iter": 10, "simulation.scene_luminance": [0.4, 0.6],
                                          "simulation.scene_contrast": C.BEFORE_KEY["simulation"]["scene_contrast"]}),
                       tmp_path)


def test_yaml_duplicate_keys_and_bad_yaml(tmp_path, capsys):
    from fvjax.experiments.vrest import main

    dup = tmp_path / "dup.yaml"
    dup.write_text("training:\n  lr: 1.0e-3\n  lr: 2.0e-3\n")
    assert main(["--config", str(dup), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "dup.yaml" in err and "'lr' appears twice" in err and "line 3" in err
    bad = tmp_path / "bad.yaml"
    bad.write_text("training: [unclosed\n")
    assert main(["--config", str(bad), "--quiet"]) == 2
    assert "bad.yaml is not valid YAML" in capsys.readouterr().err


def test_non_finite_config_values_are_refused():
    import pytest

    from fvjax.config import ConfigError

    for key in ("training.lr", "training.coeff_W_L2", "simulation.noise_model_level"):
        for value in (float("nan"), float("inf")):
            with pytest.raises(ConfigError, match=f"{key.split('.')[1]}.*not a finite number"):
                load_config(None, {key: value})


def test_nan_parameters_stop_training_and_keep_finite_checkpoints(tmp_path, monkeypatch):
    """A NaN in any loss term or parameter stops training with FloatingPointError before a
    checkpoint can be written; earlier checkpoints stay and are finite."""
    import jax.numpy as jnp
    import numpy as np
    import pytest

    from fvjax.train import loop

    assert loop.params_finite({"a": jnp.ones(3)}) and not loop.params_finite({"a": jnp.asarray([1.0, np.nan])})
    real = loop.make_steps

    def poisoned(spec, optimizer, sc):
        single, scanned = real(spec, optimizer, sc)

        def scanned_nan(state, *args):
            state, terms = scanned(state, *args)
            w = state.params["W"]
            bad = jnp.where(state.step >= 8, w.at[0].set(jnp.nan), w)
            return state._replace(params={**state.params, "W": bad}), terms
        return single, scanned_nan

    monkeypatch.setattr(loop, "make_steps", poisoned)
    from fvjax.config import load_config as lc
    from fvjax.dataset import load_dataset
    from fvjax.networks import generate_dataset
    from fvjax.pipeline import network

    cfg = lc(None, {"simulation.n_frames": 60, "simulation.n_test_frames": 20, "training.n_iter": 16,
                    "training.steps_per_call": 4, "training.eval_every": 4})
    data = load_dataset(generate_dataset(cfg, tmp_path / "data", progress=False))
    graph = network(data, cfg)[2]
    with pytest.raises(FloatingPointError, match="iteration 8.*parameters not finite"):
        loop.fit(cfg, data, graph, tmp_path / "run", progress=False, checkpoint_every_s=0.0)
    ckpt = loop.latest_checkpoint(tmp_path / "run")
    assert ckpt is not None and ckpt.step == 4 and ckpt.name == "4"


def test_generate_refuses_to_delete_a_foreign_folder(tmp_path, capsys):
    from fvjax.generate import main

    precious = tmp_path / "thesis"
    precious.mkdir()
    (precious / "chapter1.tex").write_text("years of work")
    code = main(["--out", str(precious), "--overwrite", "--n-frames", "20", "--quiet"])
    assert code == 2 and "not an fvjax dataset" in capsys.readouterr().err
    assert (precious / "chapter1.tex").read_text() == "years of work"


def test_damaged_or_swapped_dataset_is_refused(tmp_path):
    import numpy as np
    import pytest

    from fvjax.dataset import DatasetError, load_dataset, remove_stale_partials
    from fvjax.networks import generate_dataset

    cfg = load_config(None, {"simulation.n_frames": 20, "simulation.n_test_frames": 8})
    path = generate_dataset(cfg, tmp_path / "d", progress=False)
    load_dataset(path)
    gt = path / "ground_truth.npz"
    original = gt.read_bytes()
    with np.load(gt) as d:
        arrays = {k: d[k] for k in d.files}
    arrays["W"] = arrays["W"] * 1.01
    np.savez(gt, **arrays)
    with pytest.raises(DatasetError, match="ground_truth.npz differs"):
        load_dataset(path)
    gt.write_bytes(original)
    volt = path / "train" / "voltage.npy"
    volt.write_bytes(volt.read_bytes()[:-100])
    with pytest.raises(DatasetError, match="voltage.npy cannot be read"):
        load_dataset(path)
    stale = tmp_path / "d.partial-999999999"
    stale.mkdir()
    assert remove_stale_partials(path) == [stale] and not stale.exists()


def test_one_writer_per_run_folder(tmp_path, capsys):
    """A live process's lock refuses a second writer (exit 2); a dead process's lock is taken over."""
    import json
    import socket
    import subprocess
    import sys

    from fvjax.experiments.vrest import main
    from fvjax.pipeline import run_lock

    run_dir = tmp_path / "runs" / "default_seed0"
    run_dir.mkdir(parents=True)
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (run_dir / ".lock").write_text(json.dumps({"host": socket.gethostname(), "pid": sleeper.pid}))
        assert main(["--seed", "0", "--out", str(tmp_path / "runs"), "--quiet"]) == 2
        assert f"being written by process {sleeper.pid}" in capsys.readouterr().err
    finally:
        sleeper.kill()
        sleeper.wait()
    with run_lock(run_dir):   # the owner is gone now: taken over, then released
        assert json.loads((run_dir / ".lock").read_text())["pid"] != sleeper.pid
    assert "taking over" in capsys.readouterr().out and not (run_dir / ".lock").exists()
    (run_dir / ".lock").write_text("")   # a process killed between creating and filling its lock
    with run_lock(run_dir):
        pass
    assert "taking over" in capsys.readouterr().out


def test_too_small_dataset_is_refused_up_front(tmp_path, capsys):
    """A test split too short for a rollout is refused before training (exit 2), not scored as NaN."""
    from fvjax.experiments.vrest import main

    code = main(["--seed", "0", "--out", str(tmp_path), "--n-frames", "40", "--n-iter", "4", "--quiet",
                 "--set", "simulation.n_test_frames=1"])
    err = capsys.readouterr().err
    assert code == 2 and "1 test frame(s)" in err and "n_test_frames" in err
    assert not (tmp_path / "default_seed0" / "metrics.json").exists()
    assert not list((tmp_path / "default_seed0").glob("checkpoints/*"))


def test_verify_data_flag_catches_a_flipped_byte_and_debug_shows_the_traceback(tmp_path, capsys):
    import pytest

    from fvjax.dataset import DatasetError
    from fvjax.experiments.vrest import main

    args = ["--seed", "0", "--out", str(tmp_path), "--n-frames", "40", "--n-iter", "4", "--quiet",
            "--set", "simulation.n_test_frames=1"]
    assert main(args) == 2                     # generates the data, then refuses the 1-frame test split
    (target,) = (tmp_path / "datasets").glob("flyvis-*/train/target.npy")   # the shared dataset cache
    raw = bytearray(target.read_bytes())
    raw[-5] ^= 0xFF                            # same size, one byte changed: only a re-hash sees it
    target.write_bytes(bytes(raw))
    capsys.readouterr()
    assert main(args + ["--verify-data"]) == 2
    assert "target.npy: checksum mismatch" in capsys.readouterr().err
    with pytest.raises(DatasetError):
        main(args + ["--verify-data", "--debug"])


def test_bad_seed_ranges_exit_2(capsys):
    from fvjax.experiments.vrest import main

    assert main(["--seeds", "1-x"]) == 2 and "not a seed or a range" in capsys.readouterr().err
    assert main(["--seeds", "5-1"]) == 2 and "is empty" in capsys.readouterr().err


def test_interrupted_swap_restores_the_old_dataset(tmp_path):
    """A crash between the two renames of a dataset swap leaves DIR.old-<pid>: it is put back."""
    import os

    from fvjax.dataset import load_dataset, remove_stale_partials
    from fvjax.networks import generate_dataset

    cfg = load_config(None, {"simulation.n_frames": 20, "simulation.n_test_frames": 8})
    path = generate_dataset(cfg, tmp_path / "d", progress=False)
    os.replace(path, tmp_path / "d.old-999999999")
    remove_stale_partials(path)
    assert load_dataset(path).manifest["config"]["simulation"]["n_frames"] == 20
