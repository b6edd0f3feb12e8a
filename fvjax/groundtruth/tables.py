"""Ground-truth circuit parameters: per-node tau, V_rest and per-edge W, with their shared tables."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np

from ..connectome import Connectome


class GroundTruth(NamedTuple):
    """Ground-truth parameters (a pytree of numpy arrays; ``jax.tree.map(jnp.asarray, gt)`` moves it).

    The per-node / per-edge arrays are what the dynamics use; the tables are the values flyvis shares
    per cell type (65), per edge type (604) and per offset group (2,355).
    """

    tau: np.ndarray                # (N,) time constant [s]
    V_rest: np.ndarray             # (N,) resting potential
    W: np.ndarray                  # (E,) signed effective weight
    tau_per_type: np.ndarray       # (n_types,)
    V_rest_per_type: np.ndarray    # (n_types,)
    syn_strength: np.ndarray       # (n_edge_types,) >= 0
    syn_count: np.ndarray          # (n_groups,) synapse count (linear, not log)


def from_tables(conn: Connectome, tau_per_type, V_rest_per_type, syn_strength, syn_count=None) -> GroundTruth:
    """Scatter per-type / per-edge-type / per-group tables onto nodes and edges (flyvis rules).

    ``W_e = sign[etype] * syn_count[group] * max(syn_strength[etype], 0)``, in float32 and in this
    order, which reproduces flyvis's weights bit for bit. ``syn_count`` defaults to the JSON counts.
    """
    f32 = lambda a: np.asarray(a, np.float32)  # noqa: E731
    tau_t, vr_t, strength = f32(tau_per_type), f32(V_rest_per_type), f32(syn_strength)
    count = conn.group_n_syn if syn_count is None else f32(syn_count)
    expected = {"tau_per_type": (tau_t, conn.n_types), "V_rest_per_type": (vr_t, conn.n_types),
                "syn_strength": (strength, conn.n_edge_types), "syn_count": (count, conn.n_groups)}
    for name, (arr, n) in expected.items():
        if arr.shape != (n,):
            raise ValueError(f"{name} must have shape ({n},) for this connectome, got {arr.shape}")
    if not (tau_t > 0).all():
        raise ValueError("tau_per_type must be > 0 everywhere")
    strength = np.maximum(strength, np.float32(0))
    W = (conn.edge_type_sign[conn.edge_type] * count[conn.edge_group]) * strength[conn.edge_type]
    return GroundTruth(tau=tau_t[conn.node_type], V_rest=vr_t[conn.node_type], W=W.astype(np.float32),
                       tau_per_type=tau_t, V_rest_per_type=vr_t, syn_strength=strength, syn_count=count)


def _require(data, keys, source):
    missing = [k for k in keys if k not in data]
    if missing:
        raise KeyError(f"{source}: missing key(s) {missing}")


def load_npz(path: str | Path, conn: Connectome) -> GroundTruth:
    """Load tables from an ``.npz`` in the format of ``flyvis_model_000.npz`` (see docs/groundtruth.md).

    Required keys: ``tau_per_type``, ``V_rest_per_type``, ``syn_strength_per_edge_type``; optional
    ``group_n_syn`` (else JSON counts). If the file carries ``edge_src``/``edge_dst`` they must equal
    the connectome's.
    """
    path = Path(path)
    with np.load(path) as data:
        _require(data, ["tau_per_type", "V_rest_per_type", "syn_strength_per_edge_type"], path)
        for key in ("edge_src", "edge_dst"):
            if key in data and not np.array_equal(data[key], getattr(conn, key)):
                raise ValueError(f"{path}: {key} differs from the connectome built at extent {conn.extent}")
        count = data["group_n_syn"] if "group_n_syn" in data else None
        return from_tables(conn, data["tau_per_type"], data["V_rest_per_type"],
                           data["syn_strength_per_edge_type"], count)


def save_npz(path: str | Path, gt: GroundTruth, conn: Connectome) -> None:
    """Save in the same ``.npz`` format that :func:`load_npz` reads (plus the graph for checking)."""
    np.savez(path, tau_per_type=gt.tau_per_type, V_rest_per_type=gt.V_rest_per_type,
             syn_strength_per_edge_type=gt.syn_strength, group_n_syn=gt.syn_count,
             edge_src=conn.edge_src, edge_dst=conn.edge_dst, tau=gt.tau, V_rest=gt.V_rest, W=gt.W,
             extent=conn.extent)
