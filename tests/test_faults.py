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
    assert code == 2 and "training.lr" in err and "another run folder" in err
    assert (run_dir / "config.yaml").read_bytes() == before
    assert sorted(p.name for p in run_dir.iterdir()) == ["config.yaml"]


def test_same_settings_resume_passes_the_check(tmp_path):
    """Keys that change nothing computed (steps_per_call, eval_every) and keys added since the folder
    was written (filled with their defaults) do not block a resume."""
    from fvjax.pipeline import check_run_settings

    cfg = load_config(None, {"training.n_iter": 10})
    data = yaml.safe_load(yaml.safe_dump({"simulation": {"seed": 0}, "training": {"n_iter": 10, "eval_every": 3}}))
    Path(tmp_path / "config.yaml").write_text(yaml.safe_dump(data))
    check_run_settings(cfg, tmp_path)
