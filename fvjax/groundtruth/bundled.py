"""Trained flyvis models as ground truth: the bundled model 000, and members of a downloaded flyvis
results folder (``flow/0000/049`` ...), read without torch.

Model 000's per-type tables ship inside the package (``fvjax/groundtruth/flyvis/``, provenance and
licence in the README there); the per-node and per-edge arrays are rebuilt from them and the
connectome with flyvis's rules (:func:`fvjax.groundtruth.from_tables`).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np

from ..connectome import Connectome
from .checkpoint import load_flyvis_checkpoint
from .tables import GroundTruth, from_tables

BUNDLED = {"flyvis_000": "model_000.npz"}   # name -> file in fvjax/groundtruth/flyvis/


def bundled_tables(name: str = "flyvis_000") -> dict:
    """The bundled per-type tables of a trained flyvis model (``type_names``, ``tau_per_type``,
    ``V_rest_per_type``, ``syn_strength_per_edge_type``, ``edge_type_src_type``/``dst_type``)."""
    if name not in BUNDLED:
        raise KeyError(f"no bundled flyvis model {name!r}; bundled: {', '.join(BUNDLED)}")
    with resources.files(__package__).joinpath("flyvis", BUNDLED[name]).open("rb") as fh:
        with np.load(fh) as data:
            return {k: data[k] for k in data.files}


def load_bundled(conn: Connectome, name: str = "flyvis_000") -> GroundTruth:
    """Trained flyvis model ``name`` on ``conn`` (any extent; the tables are per type).

    The synapse counts are the connectome's exact JSON counts. flyvis computes them as
    ``exp(log(count))`` in torch float32, which differs by one float32 ulp in 267 of the 2,355 offset
    groups, so W agrees with flyvis's within 3 float32 ulp; tau and V_rest are identical."""
    tables = bundled_tables(name)
    names = tuple(str(t) for t in tables["type_names"])
    if names != tuple(conn.type_names):
        raise ValueError(f"bundled {name}: its cell types differ from the connectome's")
    if not (np.array_equal(tables["edge_type_src_type"], conn.edge_type_src_type)
            and np.array_equal(tables["edge_type_dst_type"], conn.edge_type_dst_type)):
        raise ValueError(f"bundled {name}: its edge types differ from the connectome's")
    return from_tables(conn, tables["tau_per_type"], tables["V_rest_per_type"], tables["syn_strength_per_edge_type"])


def find_checkpoint(folder: str | Path) -> Path:
    """The checkpoint of a flyvis model folder (``<results>/flow/0000/049``): ``best_chkpt``, else the
    newest ``chkpts/chkpt_*``."""
    folder = Path(folder)
    best = folder / "best_chkpt"
    if best.is_file():
        return best
    chkpts = sorted((folder / "chkpts").glob("chkpt_*")) if (folder / "chkpts").is_dir() else []
    if chkpts:
        return chkpts[-1]
    raise FileNotFoundError(
        f"{folder}: no best_chkpt or chkpts/chkpt_* inside. Point simulation.ground_truth at one model of a "
        f"flyvis results folder, e.g. .../results/flow/0000/049 (see docs/ground-truth.md for the download)")


def load_flyvis_model(folder: str | Path, conn: Connectome) -> GroundTruth:
    """A member of a downloaded flyvis ensemble (its folder) as ground truth."""
    return load_flyvis_checkpoint(find_checkpoint(folder), conn)
