"""The flyvis network kind: the connectome at ``simulation.extent``, a ground truth named by
``simulation.ground_truth``, and visual stimuli on its input cells (docs/simulation.md)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import jax.numpy as jnp

from .. import model as M
from ..config import Config
from ..connectome import Connectome, build_connectome
from ..dataset import SPLITS, Dataset, write_dataset
from ..groundtruth import (BUNDLED, GroundTruth, calibrated_prior, flyvis_initial, load_bundled, load_flyvis_checkpoint,
                           load_flyvis_model, load_npz, save_npz)
from ..simulate import expand_frame, make_circuit, steady_state
from ..stimulus import train_test_frames
from . import Network, by_name
from .common import simulate_split, split_key


def check_network(cfg: Config, conn: Connectome) -> None:
    """Reference consistency keys (n_neurons, ...) must match the built network when given."""
    sim = cfg.simulation
    actual = {"n_neurons": conn.n_nodes, "n_input_neurons": conn.n_inputs,
              "n_neuron_types": conn.n_types, "n_edges": conn.n_edges}
    for key, value in actual.items():
        given = getattr(sim, key)
        if given is not None and given != value:
            raise ValueError(f"simulation.{key} = {given}, but the extent-{sim.extent} network has {value}; "
                             f"fix the key or remove it")


def resolve_ground_truth(cfg: Config, conn: Connectome, progress: bool = True) -> GroundTruth:
    """Ground truth named by ``simulation.ground_truth``: a bundled trained flyvis model
    (``flyvis_000``, the default; the seed never changes it), ``prior`` (calibrated, seed-indexed),
    ``flyvis_initial``, a flyvis model folder, a flyvis checkpoint or a ``.npz`` of tables."""
    source, seed = cfg.simulation.ground_truth, cfg.simulation.seed
    named = {"prior": lambda: calibrated_prior(conn, seed, progress=progress),
             "flyvis_initial": lambda: flyvis_initial(conn, seed),
             **{name: (lambda name=name: load_bundled(conn, name)) for name in BUNDLED}}
    if source in named:
        return named[source]()
    path = Path(source).expanduser()
    if path.is_dir():
        return load_flyvis_model(path, conn)
    if not path.is_file():
        raise FileNotFoundError(f"simulation.ground_truth = {source!r}: not one of {', '.join(named)}, nor an "
                                f"existing flyvis model folder, .npz or flyvis checkpoint file")
    if path.suffix == ".npz":
        return load_npz(path, conn)
    if zipfile.is_zipfile(path):
        return load_flyvis_checkpoint(path, conn)
    raise ValueError(f"simulation.ground_truth = {source!r}: unrecognised file (expected .npz or a torch zip)")


def build(cfg: Config, progress: bool = True) -> tuple[Connectome, GroundTruth]:
    """The connectome at ``simulation.extent`` (checked against the consistency keys) and its ground truth."""
    conn = build_connectome(cfg.simulation.extent)
    check_network(cfg, conn)
    return conn, resolve_ground_truth(cfg, conn, progress)


def generate(cfg: Config, out: str | Path, overwrite: bool = False, progress: bool = True) -> Path:
    """Simulate the train and test stimuli from the grey steady state into the dataset folder ``out``."""
    sim = cfg.simulation
    conn, gt = build(cfg, progress)
    circuit = make_circuit(conn, gt)
    n_pre = int(round(sim.steady_state_time / sim.delta_t))
    v0 = steady_state(circuit, n_steps=n_pre, grey=sim.grey, dt=sim.delta_t, tau_clamp=sim.tau_clamp)
    frames = dict(zip(SPLITS, train_test_frames(sim)))

    def run_split(split, writer):
        simulate_split(cfg, circuit, v0, len(frames[split]), lambda a, b: expand_frame(conn, frames[split][a:b]),
                       split_key(sim.seed, split), writer, f"simulating {split}", progress,
                       "the ground truth is unstable for this stimulus (try tau_clamp or another model)")

    head = {"n_nodes": conn.n_nodes, "n_edges": conn.n_edges, "n_inputs": conn.n_inputs,
            "input_node_index": conn.input_node_index.reshape(-1).tolist()}
    return write_dataset(cfg, out, overwrite, head, {k: len(v) for k, v in frames.items()}, run_split,
                         lambda folder: save_npz(folder / "ground_truth.npz", gt, conn))


def dataset_ground_truth(data: Dataset, conn: Connectome) -> GroundTruth:
    """The ground truth a flyvis dataset was simulated with (its ground_truth.npz)."""
    if by_name(data.network) is not NETWORK:
        raise ValueError(f"{data.path} holds a {data.network} network, not a flyvis one; "
                         f"use fvjax.networks.by_name({data.network!r}).load")
    return load_npz(data.path / "ground_truth.npz", conn)


def load(data: Dataset, cfg: Config) -> tuple[Connectome, GroundTruth, M.Graph]:
    """(connectome, ground truth, graph with the input cells' hex positions) of a flyvis dataset."""
    conn = build_connectome(cfg.simulation.extent)
    xy = M.input_positions(conn.node_u, conn.node_v, data.input_index)
    graph = M.Graph(jnp.asarray(conn.edge_src), jnp.asarray(conn.edge_dst), jnp.asarray(data.input_index),
                    jnp.asarray(xy))
    return conn, dataset_ground_truth(data, conn), graph


NETWORK = Network(name="flyvis", build=build, generate=generate, load=load,
                  gnn_defaults={"graph_model.signal_model_name": "flyvis_A"},
                  cluster_components=lambda nodes: 100, label=lambda cfg: cfg.simulation.ground_truth,
                  cell_types=True)
