"""Direction selectivity (fvjax.evaluate.tuning): the DSI on toy tuning curves, the true model 000's T4/T5
against columnar types, and ``fvjax tuning`` end to end on a tiny run (the ``two_runs`` fixture)."""

import json
import math
import os
import shutil
import subprocess
import sys
from functools import partial

import numpy as np
import pytest

from fvjax.evaluate import tuning as TU

ANGLES = np.arange(0, 360, 30.0)
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = {**os.environ, "PYTHONPATH": REPO}   # this checkout's fvjax, whatever the working directory


def _peaks(on, off=None):
    """(contrast, speed=1, angle, type=1) from per-angle ON (and OFF) peak responses."""
    off = np.zeros_like(on) if off is None else off
    return np.stack([on, off])[:, None, :, None].astype(float)


def test_dsi_of_known_tuning_curves():
    cosine = 1 + np.cos(np.deg2rad(ANGLES - 90))   # |sum r e^(i theta)| = 6, sum r = 12
    dsi, pd = TU.direction_selectivity(_peaks(cosine), ANGLES)
    assert dsi[0, 0] == pytest.approx(0.5) and pd[0, 0] == pytest.approx(90.0)
    assert dsi[1, 0] == 0.0
    spike = (ANGLES == 210).astype(float) * 3.0
    dsi, pd = TU.direction_selectivity(_peaks(spike), ANGLES)
    assert dsi[0, 0] == pytest.approx(1.0) and pd[0, 0] == pytest.approx(210.0)
    assert TU.direction_selectivity(_peaks(np.full(12, 2.0)), ANGLES)[0][0, 0] == pytest.approx(0.0, abs=1e-12)
    assert np.isnan(TU.direction_selectivity(_peaks(np.zeros(12)), ANGLES)[0]).all()
    # flyvis's normalisation: the larger of the ON and OFF summed responses (24 here)
    assert TU.direction_selectivity(_peaks(cosine, np.full(12, 2.0)), ANGLES)[0][0, 0] == pytest.approx(0.25)
    # two speeds (DSI 0.5 and 1) average to 0.75; a speed without response does not count
    two = np.stack([_peaks(cosine)[:, 0], _peaks(spike)[:, 0]], 1)
    assert TU.direction_selectivity(two, ANGLES)[0][0, 0] == pytest.approx(0.75)
    silent = np.stack([_peaks(cosine)[:, 0], _peaks(np.zeros(12))[:, 0]], 1)
    assert TU.direction_selectivity(silent, ANGLES)[0][0, 0] == pytest.approx(0.5)


def test_peak_responses_window_and_rectification():
    traces = np.full((1, 2, 1, 6, 1), np.nan)
    traces[0, 0, 0, :, 0] = [0.0, 5.0, 1.5, 0.5, 9.0, 0.0]   # speed 0: window [1, 4) -> 5 - 1
    traces[0, 1, 0, :4, 0] = [1.0, 0.2, 0.9, 3.0]            # speed 1: window [1, 3) -> below rest: 0
    peaks = TU.peak_responses(traces, np.array([1.0]), np.array([[1, 4], [1, 3]]))
    assert peaks[0, :, 0, 0] == pytest.approx([4.0, 0.0])


def test_true_model_000_t4_t5_are_direction_selective():
    """Measured 2026-12-01 at 13 columns/s: T4/T5 DSI 0.17 (T4d) to 0.79 (T5a); L1-L5 and Mi1 at most
    0.046 (L4). The recorded traces equal the simulator's own noise-free rollout."""
    import jax
    import jax.numpy as jnp

    from fvjax.connectome import build_connectome
    from fvjax.groundtruth import load_bundled
    from fvjax.simulate import expand_frame, make_circuit, simulate, steady_state

    conn = build_connectome(8)
    circuit = make_circuit(conn, load_bundled(conn))
    v0 = steady_state(circuit, n_steps=100)
    record = TU.central_nodes(conn)
    assert [conn.node_type[i] for i in record] == list(range(conn.n_types))
    settings = TU.EdgeSettings(speeds=(13.0,))
    traces, sweep = TU.edge_traces(lambda s: TU.true_traces(circuit, v0, s, jnp.asarray(record)),
                                   partial(expand_frame, conn), settings, 8, 0.02, batch=24)
    stim = expand_frame(conn, TU.edge_stimuli(settings, 13.0, 8, 0.02)[3])   # ON edge at 90 degrees
    v_end, traj = simulate(circuit, v0, jnp.asarray(stim), jax.random.PRNGKey(0), noise_std=0.0)
    after = np.concatenate([np.asarray(traj.voltage)[1:], np.asarray(v_end)[None]])
    assert traces[0, 0, 3, :len(stim)] == pytest.approx(after[:, record], abs=1e-5)
    dsi = np.nanmax(TU.direction_selectivity(TU.peak_responses(traces, np.asarray(v0)[record], sweep),
                                             settings.angles)[0], 0)
    by_type = dict(zip(conn.type_names, dsi))
    motion = [by_type[t] for t in TU.T4T5]
    columnar = [by_type[t] for t in ("L1", "L2", "L3", "L4", "L5", "Mi1")]
    assert min(motion) > 3 * max(columnar)
    assert np.mean(motion) > 0.4 and max(columnar) < 0.1


def _reference_dsi(traces, baseline, sweep, angles):
    """Per type: max over contrasts of the speed-mean of |sum r e^(i theta)| / max_contrast sum r, with
    r the peak of relu(v - v_rest) in the sweep window (loops, float64); None without response."""
    n_contrast, n_speed, n_angle, _, n_type = traces.shape
    out = []
    for k in range(n_type):
        per_contrast = [[] for _ in range(n_contrast)]
        for s in range(n_speed):
            a, b = sweep[s]
            r = [[max(0.0, float(np.max(traces[c, s, i, a:b, k].astype(np.float64) - baseline[k])))
                  for i in range(n_angle)] for c in range(n_contrast)]
            norm = max(sum(rc) for rc in r)
            if norm == 0:
                continue
            for c in range(n_contrast):
                re = sum(x * math.cos(math.radians(t)) for x, t in zip(r[c], angles))
                im = sum(x * math.sin(math.radians(t)) for x, t in zip(r[c], angles))
                per_contrast[c].append(math.hypot(re, im) / norm)
        out.append(max(sum(v) / len(v) for v in per_contrast) if per_contrast[0] else None)
    return out


def test_tuning_command_on_a_tiny_run(two_runs, tmp_path):
    run = two_runs[0]
    shutil.rmtree(run / "tuning", ignore_errors=True)
    done = subprocess.run([sys.executable, "-m", "fvjax.cli", "tuning", str(run), "--speeds", "25", "--directions", "4",
                           "--quiet"], cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr
    out = run / "tuning"
    for name in ("tuning.json", "responses.npz", "dsi.png", "polar.png", "edge_responses.png"):
        assert (out / name).is_file(), name
    report = json.loads((out / "tuning.json").read_text())
    assert report["settings"]["angles"] == [0.0, 90.0, 180.0, 270.0] and report["settings"]["speeds"] == [25.0]
    types = [k for k in report if k not in ("summary", "settings")]
    assert len(types) == 65 and {"T4a", "T5d", "L1", "Mi1"} <= set(types)
    with np.load(out / "responses.npz") as z:
        arrays = {k: z[k] for k in z.files}
    assert list(arrays["type_names"]) == types
    for model in ("true", "recovered"):
        ref = _reference_dsi(arrays[model], arrays[f"baseline_{model}"], arrays["sweep"], arrays["angles"])
        for name, value in zip(types, ref):
            got = report[name][model]
            assert (got is None) == (value is None), (model, name)
            if value is not None:
                assert got == pytest.approx(value, abs=2e-6) and 0 <= got <= 1 + 1e-9
            assert report[name][f"preferred_contrast_{model}"] in (None, "ON", "OFF")
    assert report["T5a"]["true"] > 0.3 and report["L1"]["true"] < 0.1
    assert set(report["summary"]) >= {"T4T5_dsi_true", "T4T5_dsi_recovered", "dsi_pearson_true_vs_recovered"}


def test_tuning_command_refuses_bad_runs(two_runs, tmp_path):
    exe = [sys.executable, "-m", "fvjax.cli", "tuning"]
    bad = subprocess.run([*exe, str(tmp_path / "nowhere")], env=ENV, capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "not a run folder" in bad.stderr and "Traceback" not in bad.stderr
    synthetic = tmp_path / "synthetic"
    synthetic.mkdir()
    (synthetic / "config.yaml").write_text("simulation:\n  network: synthetic\n")
    done = subprocess.run([*exe, str(synthetic)], env=ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and "flyvis connectome" in done.stderr and "Traceback" not in done.stderr
    bare = tmp_path / "bare"   # settings but neither dataset nor checkpoint
    bare.mkdir()
    shutil.copy(two_runs[0] / "config.yaml", bare / "config.yaml")
    done = subprocess.run([*exe, str(bare)], env=ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and "error:" in done.stderr and "Traceback" not in done.stderr
    usage = subprocess.run([*exe, str(bare), "--speeds", "fast"], env=ENV, capture_output=True, text=True, timeout=300)
    assert usage.returncode == 2 and "--speeds" in usage.stderr
