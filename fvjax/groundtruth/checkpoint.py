"""Ground truth from a flyvis checkpoint (torch zip; read without torch)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..connectome import Connectome
from .tables import GroundTruth, _require, from_tables
from .torchpickle import load_torch_zip

_KEYS = ("nodes_time_const", "nodes_bias", "edges_syn_strength", "edges_syn_count", "edges_sign")


def network_state(path: str | Path) -> dict:
    """The flyvis network state dict of a checkpoint (top-level ``network`` entry, or flat)."""
    ckpt = load_torch_zip(path)
    state = ckpt.get("network", ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state, dict):
        raise ValueError(f"{path}: expected a dict checkpoint with a 'network' state dict")
    _require(state, _KEYS, f"{path} (flyvis network state)")
    return state


def load_flyvis_checkpoint(path: str | Path, conn: Connectome) -> GroundTruth:
    """Load flyvis ``best_chkpt`` / ``chkpt_*`` parameters onto ``conn``.

    ``edges_syn_count`` is stored as a log count (used as ``exp``); ``edges_sign`` must equal the
    connectome's JSON signs, which also checks that the table order matches.
    """
    state = network_state(path)
    sign = np.asarray(state["edges_sign"], np.float32).reshape(-1)
    if sign.shape != conn.edge_type_sign.shape or not np.array_equal(sign, conn.edge_type_sign):
        raise ValueError(f"{path}: edges_sign does not match the connectome's edge types; "
                         f"is it a checkpoint of the fib25-fib19_v2.2 flyvis network?")
    count = np.exp(np.asarray(state["edges_syn_count"], np.float32).reshape(-1))
    return from_tables(conn, np.asarray(state["nodes_time_const"]).reshape(-1),
                       np.asarray(state["nodes_bias"]).reshape(-1),
                       np.asarray(state["edges_syn_strength"]).reshape(-1), count)
