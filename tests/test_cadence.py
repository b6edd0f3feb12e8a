"""The in-training check schedule (grid + time budget) and the TensorBoard curves."""

import struct
import sys
import time

import numpy as np
import pytest

from fvjax.config import ConfigError, load_config
from fvjax.train import fit
from fvjax.train.cadence import EvalCadence

from .test_fit import graph, small_data  # noqa: F401  (fixtures)


def test_cadence_skips_grid_points_over_budget():
    c = EvalCadence(every=10, budget=0.1, started=1000.0)
    assert not c.due(5, now=1001.0)                 # not a grid point
    assert c.due(10, now=1010.0)                    # first check: cost unknown, always run
    c.record(5.0)                                   # 5 s of checks after 10 s of training
    assert not c.due(20, now=1030.0)                # 25 s trained: 5 + 5 > 2.5
    assert c.skipped == 1
    assert c.due(110, now=1105.0)                   # 100 s trained: 5 + 5 <= 10
    c.record(5.0)
    assert c.share(now=1110.0) == pytest.approx(10.0 / 100.0)
    assert EvalCadence(10, 1.0, started=1.0).due(30, now=2.0)       # budget 1: every grid point
    assert not EvalCadence(10, 0.0, started=1.0).due(30, now=2.0)   # budget 0: none


def _cfg(**kw):
    base = {"training.n_iter": 24, "training.steps_per_call": 2, "training.eval_every": 2}
    return load_config(None, {**base, **kw})


def test_fit_keeps_checks_within_budget(tmp_path, small_data, graph):  # noqa: F811
    seen = []

    def slow_check(params, it):
        seen.append(it)
        time.sleep(0.6)
        return {"x": float(it)}

    t0 = time.time()
    fit(_cfg(), small_data, graph, tmp_path / "a", progress=False, on_eval=slow_check)
    total = time.time() - t0
    checks = 0.6 * len(seen)
    assert 1 <= len(seen) < 12 and all(it % 2 == 0 for it in seen)
    assert checks <= 0.1 * (total - checks) + 0.6 + 0.05   # at most one check beyond the budget
    rows = (tmp_path / "a" / "metrics_during.csv").read_text().splitlines()
    assert [int(r.split(",")[0]) for r in rows[1:]] == seen

    every = []
    fit(_cfg(**{"training.eval_budget": 1.0}), small_data, graph, tmp_path / "b", progress=False,
        on_eval=lambda p, it: every.append(it) or {"x": 0.0})
    assert every == list(range(2, 25, 2))


def _scalars(folder):
    """Read scalar summaries back from TFRecord event files (length, crc, Event proto, crc)."""
    from tensorboardX.proto.event_pb2 import Event

    out = {}
    for path in folder.glob("events.out.tfevents.*"):
        raw = path.read_bytes()
        pos = 0
        while pos < len(raw):
            (n,) = struct.unpack("<Q", raw[pos:pos + 8])
            event = Event.FromString(raw[pos + 12:pos + 12 + n])
            pos += 12 + n + 4
            for v in event.summary.value:
                out.setdefault(v.tag, []).append((event.step, v.simple_value))
    return out


def test_tensorboard_curves_match_csv(tmp_path, small_data, graph):  # noqa: F811
    cfg = _cfg(**{"training.tensorboard": True, "training.eval_budget": 1.0, "training.n_iter": 8})
    fit(cfg, small_data, graph, tmp_path, progress=False, on_eval=lambda p, it: {"connectivity_R2": it / 10})
    curves = _scalars(tmp_path / "tensorboard")
    loss = np.genfromtxt(tmp_path / "loss.csv", delimiter=",", names=True)
    assert [s for s, _ in curves["loss/data"]] == list(loss["iteration"].astype(int))
    np.testing.assert_allclose([v for _, v in curves["loss/data"]], loss["data"], rtol=1e-6)
    assert curves["recovery/connectivity_R2"] == [(s, pytest.approx(s / 10)) for s in (2, 4, 6, 8)]


def test_tensorboard_missing_is_a_clear_error(tmp_path, small_data, graph, monkeypatch):  # noqa: F811
    monkeypatch.setitem(sys.modules, "tensorboardX", None)
    with pytest.raises(ConfigError, match=r"pip install -e \"\.\[tensorboard\]\""):
        fit(_cfg(**{"training.tensorboard": True}), small_data, graph, tmp_path, progress=False)


def test_checkpoints_rotate_and_old_run_folders_resume(tmp_path):
    """orbax CheckpointManager keeps the last two steps; a pre-manager checkpoint folder
    (checkpoints/e*_i*/state + meta.json) is restored, then replaced by the first new one."""
    import jax.numpy as jnp
    import orbax.checkpoint as ocp

    from fvjax.train.checkpoint import latest_checkpoint, restore_checkpoint, save_checkpoint

    like = {"w": jnp.zeros(3), "b": jnp.zeros((2, 2))}
    old = (tmp_path / "checkpoints" / "e000_i00000040").absolute()
    legacy = ocp.StandardCheckpointer()          # how fvjax wrote checkpoints before the manager
    legacy.save(old / "state", {"w": np.arange(3.0), "b": np.eye(2)})
    legacy.wait_until_finished()
    (old / "meta.json").write_text('{"epoch": 0, "iteration": 40, "wall_time_s": 9.5}')
    ckpt = latest_checkpoint(tmp_path)
    assert ckpt.step is None and ckpt.path == old
    state, meta = restore_checkpoint(ckpt, like)
    np.testing.assert_array_equal(state["w"], np.arange(3.0))
    assert meta == {"epoch": 0, "iteration": 40, "wall_time_s": 9.5}
    for step in (60, 80, 100):
        save_checkpoint(tmp_path, {"w": jnp.full(3, step), "b": jnp.eye(2)}, 0, step, 1.0, step=step)
    assert not old.exists() and sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["100", "80"]
    save_checkpoint(tmp_path, {"w": jnp.full(3, -1.0), "b": jnp.eye(2)}, 1, 0, 2.0, step=100)   # same step again
    ckpt = latest_checkpoint(tmp_path)
    state, meta = restore_checkpoint(ckpt, like)
    assert ckpt.step == 100 and meta["epoch"] == 1 and float(state["w"][0]) == -1.0


def test_resume_drops_check_rows_after_the_checkpoint(tmp_path):
    """A run killed after a check but before the next checkpoint redoes that check on resume: its
    old row must go, or metrics_during.csv lists the iteration twice."""
    from fvjax.train.loop import _truncate_checks

    path = tmp_path / "metrics_during.csv"
    path.write_text("iteration,connectivity_R2\n4000,0.88\n8000,0.91\n12000,0.93\n")
    _truncate_checks(path, 8000)
    assert path.read_text() == "iteration,connectivity_R2\n4000,0.88\n8000,0.91\n"
    _truncate_checks(path, 2480)
    assert path.read_text() == "iteration,connectivity_R2\n"


def test_resume_drops_check_rows_of_any_line_ending(tmp_path):
    """A file written by an older version (CRLF rows after an LF header) is cut by value, not by line,
    and comes back with one line ending."""
    from fvjax.train.loop import _truncate_checks

    path = tmp_path / "metrics_during.csv"
    path.write_bytes(b"iteration,connectivity_R2\n4000,0.88\r\n8000,0.91\r\n12000,0.93\r\n")
    _truncate_checks(path, 8000)
    assert path.read_bytes() == b"iteration,connectivity_R2\n4000,0.88\n8000,0.91\n"
