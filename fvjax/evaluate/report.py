"""Evaluate a trained model against the ground truth; write ``analysis.log`` and ``metrics.json``."""

from __future__ import annotations

import json
import os
from pathlib import Path

import jax.numpy as jnp
import numpy as np

from .. import model as M
from ..connectome import Connectome
from ..dataset import Dataset, ever_active
from ..groundtruth import GroundTruth
from ..networks.synthetic import PDEN2Network
from . import metrics as MT
from .diagnostics import diagnose, identifiable_scores
from .pde_n2 import pde_n2_scores_on_data


def probe_frames(n_frames: int, n: int = 8) -> np.ndarray:
    """Frames used for d f_theta / d msg: linspace(T//10, T-100, 8) (clipped for short data)."""
    return np.linspace(n_frames // 10, max(n_frames - 100, n_frames // 10), n).astype(int)


def recovered(params, spec, graph, data: Dataset) -> dict:
    frames = probe_frames(len(data.train))
    return MT.recovered_parameters(params, spec, graph, data.train.node_mean, data.train.node_std,
                                   np.asarray(data.train.voltage[frames]), np.asarray(data.train.stimulus[frames]))


def field_scores(params, spec, graph, data: Dataset) -> dict:
    """field_R2 and field_slope of the learned visual field on training frames 0, 2, ..., 798."""
    frames = MT.field_frames(len(data.train))
    pred = np.asarray(M.visual_field(params, spec, graph, jnp.asarray(frames)))
    r2, slope = MT.field_r2(np.asarray(data.train.stimulus[frames]), pred)
    return {"field_R2": r2, "field_slope": slope}


# ground truths whose dynamics are not the leaky form get their own scores, which replace the
# leaky-form probes of the same name (connectivity_R2, tau_R2) and add their parameters' R^2
NETWORK_SCORES = {PDEN2Network: pde_n2_scores_on_data}
RELU_NETWORKS = (GroundTruth,)   # ground truths whose sources act through ReLU(v) (flyvis)


def network_scores(params, spec, data: Dataset, gt) -> tuple[dict, dict]:
    scorer = NETWORK_SCORES.get(type(gt))
    return scorer(params, spec, gt, data) if scorer else ({}, {})


def quick_metrics(params, spec, graph, data: Dataset, gt: GroundTruth, save_to: Path | None = None) -> dict:
    """The three R^2 tracked during training (cheap: no clustering, no rollout), and field_R2.
    ``save_to``: also write the recovered W*, raw W, f_theta/g_phi slopes and message gains there
    (float32 .npz, atomically) to follow how the recovery drifts over training."""
    rec = recovered(params, spec, graph, data)
    if save_to is not None:
        save_to.parent.mkdir(parents=True, exist_ok=True)
        arrays = {k: np.asarray(v, np.float32) for k, v in rec.items()}
        tmp = save_to.with_name(f".{save_to.stem}.tmp-{os.getpid()}.npz")
        np.savez(tmp, W_raw=np.asarray(M.weights(params, spec), np.float32), **arrays)
        os.replace(tmp, save_to)
    out = {"connectivity_R2": MT.r2_filtered(gt.W, rec["W"])[0],
           "connectivity_R2_data": MT.r2_filtered(gt.W, rec["W_data"])[0],
           "tau_R2": MT.r2_affine(gt.tau, rec["tau"])[0],
           "V_rest_R2": MT.r2_affine(gt.V_rest, rec["V_rest"])[0],
           "V_rest_R2_data": MT.r2_affine(gt.V_rest, rec["V_rest_data"])[0],
           "V_rest_R2_offset": MT.r2_affine(gt.V_rest, rec["V_rest_offset"])[0]}
    out.update({k: v for k, v in network_scores(params, spec, data, gt)[0].items() if k in out})
    if spec.learns_field:
        out["field_R2"] = field_scores(params, spec, graph, data)["field_R2"]
    return out


def test_scores(params, spec, graph, data: Dataset, dt: float, max_frames: int = 0) -> dict:
    """One-step and free-rollout scores on the test split (rollout from the true v at frame 0)."""
    test = data.test
    n = len(test) if not max_frames else min(len(test), max_frames)
    volts = np.asarray(test.voltage[:n])
    stim = np.asarray(test.stimulus[:n])
    pred = np.asarray(MT.rollout(params, spec, graph, jnp.asarray(volts[0]), jnp.asarray(stim[:-1]), dt))
    roll = MT.per_neuron_scores(volts[1:], pred)
    one = []
    for start in range(0, n, 256):
        dv, _ = M.apply(params, spec, graph, jnp.asarray(volts[start:start + 256]), jnp.asarray(stim[start:start + 256]))
        one.append(np.asarray(dv))
    one_step = MT.per_neuron_scores(np.asarray(test.target[:n]), np.concatenate(one))
    return {"test_R2": float(np.nanmean(roll["r2"])), "test_pearson": float(np.nanmean(roll["pearson"])),
            "test_pearson_std": float(np.nanstd(roll["pearson"])), "test_rmse": float(np.nanmean(roll["rmse"])),
            "one_step_pearson": float(np.nanmean(one_step["pearson"])),
            "one_step_rmse": float(np.nanmean(one_step["rmse"])), "rollout_frames": int(n - 1)}


# all-to-all models get the exact (dense) spectral radius; sparse connectomes ARPACK's
SPECTRAL_RADIUS = {"dense": MT.spectral_radius_dense}


def evaluate(params, spec: M.ModelSpec, graph: M.Graph, data: Dataset, conn: Connectome, gt: GroundTruth,
             dt: float = 0.02, cluster: bool = True, max_test_frames: int = 0,
             cluster_components: int = 100) -> tuple[dict, dict]:
    """(metrics, arrays): every scalar metric, and the recovered per-neuron/per-edge arrays.

    ``conn`` only needs ``node_type``/``n_types`` (a SyntheticNetwork works); ``cluster_components``:
    GMM components (the reference's 100 for flyvis; the number of types for synthetic networks)."""
    rec = recovered(params, spec, graph, data)
    src, dst = np.asarray(graph.src), np.asarray(graph.dst)
    out = {}
    out["connectivity_R2"], out["W_corrected_slope"] = MT.r2_filtered(gt.W, rec["W"])
    out["connectivity_R2_data"] = MT.r2_filtered(gt.W, rec["W_data"])[0]
    if type(gt) in RELU_NETWORKS:   # sources never above 0 send nothing: their weights are unidentifiable
        out.update(identifiable_scores(gt.W, rec["W"], src, ever_active(data.train.voltage)))
    out["tau_R2_data"] = MT.r2_affine(gt.tau, MT.tau_from_slope(rec["v_gain"]))[0]
    out["V_rest_R2_data"] = MT.r2_affine(gt.V_rest, rec["V_rest_data"])[0]
    W_raw = np.asarray(M.weights(params, spec))
    out["W_raw_R2"] = MT.r2_affine(gt.W, W_raw)[0]
    out["tau_R2"] = MT.r2_affine(gt.tau, rec["tau"])[0]
    out["V_rest_R2"] = MT.r2_affine(gt.V_rest, rec["V_rest"])[0]
    out["V_rest_R2_offset"] = MT.r2_affine(gt.V_rest, rec["V_rest_offset"])[0]
    extra, extra_arrays = network_scores(params, spec, data, gt)
    out.update(extra)
    rec.update(extra_arrays)
    if cluster:
        feats = MT.cluster_features(params["a"], rec["tau"], rec["V_rest"], rec["W"], src, dst, spec.n_nodes)
        rec["cluster_label"] = MT.cluster_labels(feats, cluster_components)
        out["cluster_accuracy"] = MT.matched_accuracy(conn.node_type, rec["cluster_label"])
    if spec.learns_field:
        out.update(field_scores(params, spec, graph, data))
    out.update(test_scores(params, spec, graph, data, dt, max_test_frames))
    out["effective_rank_90"], out["effective_rank_99"] = MT.effective_rank(data.train.voltage)
    radius = SPECTRAL_RADIUS.get(spec.variant, MT.spectral_radius)
    out["spectral_radius_true"] = radius(gt.W, src, dst, spec.n_nodes)
    out["spectral_radius_learned"] = radius(rec["W"], src, dst, spec.n_nodes)
    diag, diag_arrays = diagnose(gt.W, W_raw, rec["W"], src, dst, conn.node_type, conn.n_types)
    out.update(diag)
    return out, {**rec, **diag_arrays}


def write_analysis_log(path: str | Path, metrics: dict, header: dict | None = None) -> None:
    """``analysis.log`` in the seeds' form (``key: value`` lines, the activity block of seed 003)."""
    lines = [f"{k}: {v}" for k, v in (header or {}).items()]
    lines += [f"spectral radius: {metrics['spectral_radius_true']:.3f}",
              f"spectral radius - true: {metrics['spectral_radius_true']:.3f} "
              f"learned: {metrics['spectral_radius_learned']:.3f}",
              "--- activity ---",
              f"  effective rank (90% var): {metrics['effective_rank_90']}",
              f"  effective rank (99% var): {metrics['effective_rank_99']}",
              "--- Rollout results ---",
              f"Pearson r: {metrics['test_pearson']:.3f} +/- {metrics['test_pearson_std']:.3f}",
              f"RMSE: {metrics['test_rmse']:.4f}"]
    if "mechanism" in metrics:
        lines += ["--- diagnostics ---",
                  f"per-neuron W sum correlation (in/out): {metrics['W_sum_corr_in']:.3f} / {metrics['W_sum_corr_out']:.3f}",
                  f"sign match (raw/corrected): {metrics['sign_match_raw']:.3f} / {metrics['sign_match_corrected']:.3f}",
                  f"recovery mechanism: {metrics['mechanism']}",
                  f"W R2 per target type (median): {metrics['W_R2_per_target_type_median']:.3f}"]
    for key in ("test_R2", "test_pearson", "final_loss", "connectivity_R2", "connectivity_R2_data", "W_raw_R2",
                "tau_R2", "V_rest_R2", "V_rest_R2_offset", "c_R2", "s_R2", "g_R2", "g_rel_error", "cluster_accuracy",
                "field_R2", "training_time_min"):
        if key in metrics:
            lines.append(f"{key}: {metrics[key]:.4f}" if isinstance(metrics[key], float) else f"{key}: {metrics[key]}")
    atomic_write_text(path, "\n".join(lines) + "\n")


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``path`` through a temporary file and a rename: a kill leaves the old or the new file."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_metrics(run_dir: str | Path, metrics: dict, arrays: dict) -> None:
    """metrics.json and recovered.npz, each written atomically (the arrays first)."""
    run_dir = Path(run_dir)
    tmp = run_dir / f".recovered.tmp-{os.getpid()}.npz"
    np.savez(tmp, **{k: np.asarray(v) for k, v in arrays.items()})
    os.replace(tmp, run_dir / "recovered.npz")
    atomic_write_text(run_dir / "metrics.json", json.dumps(metrics, indent=1))
