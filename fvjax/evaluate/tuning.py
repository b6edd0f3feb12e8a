"""Tuning of the true and the recovered circuit to moving edges: direction selectivity per cell type.

    fvjax tuning RUN                      # writes RUN/tuning/{tuning.json, responses.npz, *.png}
    fvjax tuning RUN --speeds 13 --out /tmp/tuning

Writes tuning.json (per cell type the true and the recovered DSI, ON and OFF DSIs, preferred
directions; a summary; the stimulus settings), responses.npz (the traces behind them) and the
figures dsi.png, polar.png, edge_responses.png into RUN/tuning (or --out). Both models start from their own rest under grey (the true circuit's steady state; the recovered
GNN rolled out from there for ``simulation.steady_state_time`` of grey) and run, noise free, on ON
and OFF edges (:func:`fvjax.stimulus.controlled.moving_edge`) in 12 directions (default) at each speed. The
response of a type is its neuron in the central column (u, v) = (0, 0) (as flyvis). Its peak for one
edge is max over the sweep of relu(v - v_rest). As flyvis: per speed and contrast
DSI = |sum_theta r(theta) e^{i theta}| / max over contrasts of sum_theta r(theta), averaged over
speeds; a type's DSI (keys "true", "recovered") is the larger of its ON and OFF DSI, its preferred
direction the angle of the summed vector of that contrast.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from ..stimulus import controlled

T4T5 = ("T4a", "T4b", "T4c", "T4d", "T5a", "T5b", "T5c", "T5d")
CONTRASTS = ("ON", "OFF")


@dataclass(frozen=True)
class EdgeSettings:
    """The moving-edge set (speeds in columns/s, angles in degrees, times in s)."""

    angles: tuple[float, ...] = tuple(float(a) for a in range(0, 360, 30))
    speeds: tuple[float, ...] = (4.8, 13.0, 25.0)
    intensities: tuple[float, float] = (1.0, 0.0)   # ON, OFF
    background: float = 0.5
    t_pre: float = 0.2
    t_post: float = 0.3


# ------------------------------------------------------------------------------------ DSI


def peak_responses(traces: np.ndarray, baseline: np.ndarray, sweep: np.ndarray) -> np.ndarray:
    """max over each speed's sweep frames [a, b) of relu(trace - baseline): traces (contrast, speed,
    angle, frame, type) -> (contrast, speed, angle, type)."""
    out = np.zeros(traces.shape[:3] + traces.shape[-1:])
    for s, (a, b) in enumerate(np.asarray(sweep)):
        out[:, s] = np.maximum(traces[:, s, :, a:b] - baseline, 0).max(-2)
    return out


def direction_selectivity(peaks: np.ndarray, angles) -> tuple[np.ndarray, np.ndarray]:
    """(DSI, preferred direction in degrees [0, 360)), each (contrast, type), from peaks (contrast,
    speed, angle, type) >= 0. Per speed and contrast |sum r e^{i theta}| / max over contrasts of
    sum r, then the mean over the speeds where it is defined (NaN: no response at any speed)."""
    z = np.exp(1j * np.deg2rad(np.asarray(angles, np.float64)))[:, None]
    vector = (peaks * z).sum(-2)                        # (contrast, speed, type)
    norm = peaks.sum(-2).max(0)                         # (speed, type)
    with np.errstate(invalid="ignore", divide="ignore"):
        dsi = np.where(norm > 0, np.abs(vector) / np.where(norm > 0, norm, 1.0), np.nan)
        finite = np.isfinite(dsi)
        mean = np.where(finite.any(1), np.where(finite, dsi, 0).sum(1) / np.maximum(finite.sum(1), 1), np.nan)
    return mean, np.rad2deg(np.angle(vector.sum(1))) % 360


# ------------------------------------------------------------------------------ responses


@partial(jax.jit, static_argnames=("dt", "tau_clamp"))
def true_traces(circuit, v0, stimulus, record, dt: float = 0.02, tau_clamp: bool = False):
    """Noise-free Euler rollout of the true circuit from v0 (N,) for each stimulus (B, T, n_in);
    returns v after every frame at the nodes ``record``: (B, T, K)."""
    from ..simulate import rhs

    def one(stim):
        def step(v, x):
            v = v + dt * rhs(circuit, v, x, dt, tau_clamp)
            return v, v[record]
        return jax.lax.scan(step, v0, stim)[1]

    return jax.vmap(one)(stimulus)


@partial(jax.jit, static_argnames=("spec", "dt"))
def recovered_traces(params, spec, graph, v0, stimulus, record, dt: float = 0.02):
    """The learned model's free rollout (:func:`fvjax.evaluate.metrics.rollout`, the test_R2 one) from v0 for
    each stimulus (B, T, n_in): (B, T, K) at the nodes ``record``."""
    from .metrics import rollout

    return jax.vmap(lambda stim: rollout(params, spec, graph, v0, stim, dt)[:, record])(stimulus)


def central_nodes(nodes) -> np.ndarray:
    """Node index of every cell type in the central column (u, v) = (0, 0), in type order."""
    centre = (np.asarray(nodes.node_u) == 0) & (np.asarray(nodes.node_v) == 0)
    return np.array([np.flatnonzero(centre & (np.asarray(nodes.node_type) == t))[0] for t in range(nodes.n_types)])


def edge_stimuli(settings: EdgeSettings, speed: float, extent: int, dt: float) -> np.ndarray:
    """Hexal luminance of every (contrast, angle) edge at ``speed``: (contrasts x angles, T, n_hex)."""
    return np.stack([controlled.moving_edge(i, a, speed, extent, dt, settings.t_pre, settings.t_post,
                                            settings.background)
                     for i in settings.intensities for a in settings.angles])


def sweep_window(settings: EdgeSettings, speed: float, extent: int, dt: float) -> tuple[int, int]:
    """[first, end) frames of the sweep within an edge sequence."""
    pre = controlled.n_frames(settings.t_pre, dt)
    return pre, pre + controlled.sweep_frames(controlled.edge_travel(extent), speed, dt)


def edge_traces(traces_fn, expand, settings: EdgeSettings, extent: int, dt: float, batch: int = 8,
                bar=None) -> tuple[np.ndarray, np.ndarray]:
    """Traces (contrast, speed, angle, frame, K), NaN past each speed's end, and the sweep windows
    (speed, 2). ``traces_fn``: (B, T, n_in) -> (B, T, K); ``expand``: hexal -> input-node values."""
    per_speed = []
    for speed in settings.speeds:
        stim = expand(edge_stimuli(settings, speed, extent, dt))
        parts = []
        for k in range(0, len(stim), batch):
            parts.append(np.asarray(traces_fn(jnp.asarray(stim[k:k + batch]))))
            if bar is not None:
                bar.update(len(parts[-1]))
        per_speed.append(np.concatenate(parts))
    longest = max(len(p[0]) for p in per_speed)
    traces = np.full((len(per_speed), len(per_speed[0]), longest, per_speed[0].shape[-1]), np.nan, np.float32)
    for s, p in enumerate(per_speed):
        traces[s, :, :p.shape[1]] = p
    shape = (len(settings.speeds), len(settings.intensities), len(settings.angles)) + traces.shape[2:]
    sweep = np.array([sweep_window(settings, s, extent, dt) for s in settings.speeds])
    return traces.reshape(shape).transpose(1, 0, 2, 3, 4), sweep


def model_traces(run, params, spec, settings: EdgeSettings, batch: int = 8, progress: bool = True) -> dict:
    """Edge traces of the true and the recovered model of a flyvis run (:func:`edge_traces`), their
    rest states at the recorded nodes (``baseline_*``) and the sweep windows."""
    from tqdm.auto import tqdm

    from .metrics import rollout
    from ..simulate import expand_frame, make_circuit, steady_state

    sim = run.config.simulation
    dt, extent = sim.delta_t, sim.extent
    nodes, graph = run.nodes, run.graph
    record = jnp.asarray(central_nodes(nodes))
    circuit = make_circuit(nodes, run.ground_truth)
    settle = controlled.n_frames(sim.steady_state_time, dt)
    v_true = steady_state(circuit, n_steps=settle, grey=settings.background, dt=dt, tau_clamp=sim.tau_clamp)
    grey = jnp.full((max(settle, 1), graph.input_index.shape[0]), settings.background, v_true.dtype)
    v_rec = rollout(params, spec, graph, v_true, grey, dt)[-1] if settle else v_true
    expand = partial(expand_frame, nodes)
    total = 2 * len(settings.speeds) * len(settings.intensities) * len(settings.angles)
    with tqdm(total=total, desc="edge responses (true, recovered)", unit="seq", disable=not progress) as bar:
        true, sweep = edge_traces(lambda s: true_traces(circuit, v_true, s, record, dt, sim.tau_clamp),
                                  expand, settings, extent, dt, batch, bar)
        rec, _ = edge_traces(lambda s: recovered_traces(params, spec, graph, v_rec, s, record, dt),
                             expand, settings, extent, dt, batch, bar)
    return {"true": true, "recovered": rec, "baseline_true": np.asarray(v_true[record]),
            "baseline_recovered": np.asarray(v_rec[record]), "sweep": sweep}


# --------------------------------------------------------------------------------- report


def _number(x):
    return None if x is None or not np.isfinite(x) else round(float(x), 6)


def _angle_error(a, b) -> float:
    return float(np.abs((np.asarray(a) - np.asarray(b) + 180) % 360 - 180).mean())


def tuning_stats(arrays: dict, settings: EdgeSettings) -> dict:
    """Per model: peaks (contrast, speed, angle, type), DSI and preferred direction (contrast, type)."""
    out = {}
    for model in ("true", "recovered"):
        peaks = peak_responses(arrays[model], arrays[f"baseline_{model}"], arrays["sweep"])
        out[model] = (peaks, *direction_selectivity(peaks, settings.angles))
    return out


def best_contrast(dsi: np.ndarray) -> np.ndarray:
    """Per type, the contrast index with the larger DSI (0 where none is defined)."""
    return np.argmax(np.where(np.isfinite(dsi), dsi, -1.0), 0)


def type_entries(names, stats: dict, labels) -> dict:
    """{type: {"true", "recovered", "<model>_<contrast>", "preferred_direction_<model>", ...}}."""
    out = {}
    for t, name in enumerate(names):
        entry = {}
        for model, (peaks, dsi, pd) in stats.items():
            best = best_contrast(dsi)[t]
            entry[model] = _number(dsi[best, t])
            entry.update({f"{model}_{label}": _number(dsi[c, t]) for c, label in enumerate(labels)})
            entry[f"preferred_direction_{model}"] = _number(pd[best, t]) if entry[model] is not None else None
            entry[f"preferred_contrast_{model}"] = labels[best] if entry[model] is not None else None
            entry[f"peak_{model}"] = _number(peaks[..., t].max())
        out[name] = entry
    return out


def summary(entries: dict) -> dict:
    """Mean DSI of T4/T5 and of the other types, the DSI correlation across types, and the mean
    angular error of the recovered T4/T5 preferred directions."""
    def mean(names, key):
        vals = [entries[n][key] for n in names if entries[n][key] is not None]
        return _number(np.mean(vals)) if vals else None

    others = [n for n in entries if n not in T4T5]
    pairs = np.array([(e["true"], e["recovered"]) for e in entries.values()
                      if e["true"] is not None and e["recovered"] is not None])
    corr = np.corrcoef(pairs.T)[0, 1] if len(pairs) > 2 and pairs.std(0).min() > 0 else None
    pd = [(entries[n]["preferred_direction_true"], entries[n]["preferred_direction_recovered"]) for n in T4T5
          if n in entries and None not in (entries[n]["preferred_direction_true"], entries[n]["preferred_direction_recovered"])]
    return {"T4T5_dsi_true": mean(T4T5, "true"), "T4T5_dsi_recovered": mean(T4T5, "recovered"),
            "other_dsi_true": mean(others, "true"), "other_dsi_recovered": mean(others, "recovered"),
            "dsi_pearson_true_vs_recovered": _number(corr),
            "T4T5_preferred_direction_error_deg": _number(_angle_error(*zip(*pd))) if pd else None}


def tuning_report(names, arrays: dict, settings: EdgeSettings, dt: float, extent: int) -> dict:
    """tuning.json: one entry per cell type, plus "summary" and "settings"."""
    labels = [CONTRASTS[0] if i > settings.background else CONTRASTS[1] for i in settings.intensities]
    entries = type_entries(names, tuning_stats(arrays, settings), labels)
    setup = {**asdict(settings), "dt": dt, "extent": extent, "stimulus": "moving_edge",
             "recorded": "central column (u, v) = (0, 0)", "peak": "max over the sweep of relu(v - v_rest)",
             "units": "speed columns/s, angle degrees ccw from +x (fvjax.evaluate.plots.hex_positions), time s"}
    return {**entries, "summary": summary(entries), "settings": setup}


# ---------------------------------------------------------------------------------- files

TRACE_TYPES = T4T5 + ("L1", "L2", "Mi1", "Tm3")


def save_figures(out: Path, names, arrays: dict, report: dict, settings: EdgeSettings, dt: float) -> list[str]:
    """dsi.png, polar.png and edge_responses.png in ``out`` (each written to a temporary file first)."""
    from . import plots

    stats = tuning_stats(arrays, settings)
    contrast = stats["true"][0].sum((1, 2)).argmax(0)   # the contrast each type responds to more
    types = [t for t in T4T5 if t in names]
    others = [t for t in TRACE_TYPES if t in names]
    figures = {
        "dsi.png": plots.dsi_scatter(names, [report[n]["true"] if report[n]["true"] is not None else np.nan for n in names],
                                     [report[n]["recovered"] if report[n]["recovered"] is not None else np.nan
                                      for n in names]),
        "polar.png": plots.tuning_polar(names, stats["true"][0], stats["recovered"][0], np.asarray(settings.angles),
                                        contrast, types) if types else None,
        "edge_responses.png": plots.edge_responses(
            names, arrays["true"], arrays["recovered"], arrays["baseline_true"], arrays["baseline_recovered"],
            np.asarray(settings.angles), contrast, len(settings.speeds) // 2, dt, int(arrays["sweep"][0][0]), others),
    }
    written = []
    for name, fig in figures.items():
        if fig is None:
            continue
        tmp = out / f".{name}.tmp-{os.getpid()}.png"
        fig.savefig(tmp, dpi=110)
        os.replace(tmp, out / name)
        written.append(name)
    return written


def write_report(out: Path, names, arrays: dict, report: dict, settings: EdgeSettings, dt: float) -> list[str]:
    """tuning.json, responses.npz (traces, rest states, sweep windows, settings) and the figures."""
    from .report import atomic_write_text

    out.mkdir(parents=True, exist_ok=True)
    tmp = out / f".responses.tmp-{os.getpid()}.npz"
    np.savez(tmp, type_names=np.asarray(names), angles=np.asarray(settings.angles),
             speeds=np.asarray(settings.speeds), intensities=np.asarray(settings.intensities), dt=dt, **arrays)
    os.replace(tmp, out / "responses.npz")
    figures = save_figures(out, names, arrays, report, settings, dt)
    atomic_write_text(out / "tuning.json", json.dumps(report, indent=1))
    return ["tuning.json", "responses.npz", *figures]


class TuningError(ValueError):
    """A run that cannot be tuned (not a flyvis network, no checkpoint, ...)."""


def _positive_floats(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(x) for x in text.split(","))
    except ValueError:
        values = ()
    if not values or min(values) <= 0:
        raise argparse.ArgumentTypeError(f"expected positive numbers separated by commas, got {text!r}")
    return values


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fvjax tuning", description=__doc__.split("\n\n")[0] + "\n\n" + "\n\n".join(
        __doc__.split("\n\n")[2:]), formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", help="a run folder (config.yaml, checkpoints/, its dataset)")
    p.add_argument("--out", help="output folder (default RUN/tuning)")
    p.add_argument("--speeds", type=_positive_floats, default=EdgeSettings.speeds,
                   help="edge speeds in columns (ommatidia) per second, comma-separated (default 4.8,13,25)")
    p.add_argument("--directions", type=int, default=len(EdgeSettings.angles),
                   help="directions over the full circle, evenly spaced from 0 degrees (default 12: every 30)")
    p.add_argument("--batch", type=int, default=8, help="edge sequences rolled out at once (memory vs speed)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def load_tunable(path):
    """(run, params, spec) of a flyvis run with a checkpoint, or TuningError / FileNotFoundError."""
    from ..networks import resolve
    from ..runs import load_run

    run = load_run(path)
    if not resolve(run.config).cell_types:
        raise TuningError(f"{path} trained on a {run.config.simulation.network} network; tuning needs the flyvis "
                          f"connectome (cell types on the hex lattice)")
    params, spec = run.params()
    return run, params, spec


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    if args.directions < 3 or args.batch < 1:
        print("error: --directions must be >= 3 and --batch >= 1", file=sys.stderr)
        return 2
    from ..config import ConfigError
    from ..dataset import DatasetError

    settings = EdgeSettings(angles=tuple(360.0 * k / args.directions for k in range(args.directions)),
                            speeds=args.speeds)
    try:
        run, params, spec = load_tunable(args.run)
    except (FileNotFoundError, ConfigError, DatasetError, TuningError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    sim = run.config.simulation
    arrays = model_traces(run, params, spec, settings, args.batch, progress=not args.quiet)
    names = list(run.nodes.type_names)
    report = tuning_report(names, arrays, settings, sim.delta_t, sim.extent)
    out = Path(args.out) if args.out else run.path / "tuning"
    written = write_report(out, names, arrays, report, settings, sim.delta_t)
    s = report["summary"]
    print(f"T4/T5 mean DSI: true {s['T4T5_dsi_true']}, recovered {s['T4T5_dsi_recovered']}; other types: true "
          f"{s['other_dsi_true']}, recovered {s['other_dsi_recovered']}")
    print(f"wrote {', '.join(written)} to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
