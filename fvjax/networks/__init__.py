"""Network kinds: what is simulated (the flyvis connectome, a synthetic all-to-all network) behind
one small protocol, so the rest of fvjax never asks which kind it has.

A config names its kind in ``simulation.network``; :func:`resolve` turns that name into a
:class:`Network` once, at the edge (the pipeline, the ``generate`` command, a loaded run), through
the one table :data:`KINDS`. Code below the edge calls the object's functions; nothing else
compares network names (tests/test_architecture.py checks this).

Every kind implements :class:`Network`, a frozen dataclass of plain functions:

``name``
    the kind's name (``simulation.network``, the manifest's ``network``, the dataset-cache prefix)
``build(cfg, progress) -> (nodes, ground_truth)``
    the graph's nodes (``n_nodes``, ``node_type``, ``n_types``, ...) and the ground truth to simulate,
    from the config alone (built, loaded or drawn)
``generate(cfg, out, overwrite, progress) -> Path``
    simulate the train and test splits into the dataset folder ``out`` (:mod:`fvjax.dataset`)
``load(data, cfg) -> (nodes, ground_truth, graph)``
    the nodes, the ground truth stored with a generated dataset and the GNN's :class:`fvjax.model.Graph`
``gnn_defaults``
    config overrides (dotted keys) naming the GNN variant that fits the kind
``cluster_components(nodes) -> int``
    Gaussian-mixture components when clustering the learned embeddings
``label(cfg) -> str``
    what metrics.json records as the run's ``model``
``cell_types``
    True when the nodes are named cell types on the hex lattice (per-type tables, tuning)

Kinds: :mod:`fvjax.networks.flyvis` and :mod:`fvjax.networks.synthetic` (tanh and PDE_N2 models).
They are imported on first use, so ``import fvjax.networks`` stays light.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import import_module
from pathlib import Path
from typing import Any, Callable, Mapping

# simulation.network -> the submodule whose NETWORK implements it (the one place names are looked up)
KINDS = {"flyvis": "flyvis", "synthetic": "synthetic"}


@dataclass(frozen=True)
class Network:
    """One network kind (see the module docstring for what each field does)."""

    name: str
    build: Callable[..., tuple]
    generate: Callable[..., Path]
    load: Callable[..., tuple]
    gnn_defaults: Mapping[str, Any]
    cluster_components: Callable[[Any], int]
    label: Callable[[Any], str]
    cell_types: bool


def by_name(name: str) -> Network:
    """The kind called ``name`` (a config's ``simulation.network`` or a manifest's ``network``)."""
    if name not in KINDS:
        raise ValueError(f"network {name!r}: unknown network kind; fvjax knows {', '.join(KINDS)} "
                         f"(simulation.network)")
    return import_module(f".{KINDS[name]}", __name__).NETWORK


def resolve(cfg) -> Network:
    """The kind a config asks for (``simulation.network``)."""
    return by_name(cfg.simulation.network)


def generate_dataset(cfg, out: str | Path, overwrite: bool = False, progress: bool = True) -> Path:
    """Simulate train and test splits for ``cfg`` into the folder ``out`` (layout: :mod:`fvjax.dataset`)
    with the network kind the config names."""
    from ..device import configure_jax

    configure_jax()
    return resolve(cfg).generate(cfg, out, overwrite, progress)
