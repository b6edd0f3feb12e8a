"""Synthetic all-to-all networks (seed 003): N neurons of K types, heavy-tailed dense W.

    tau_i dv_i/dt = -v_i + V_rest_i + sum_j W_ij tanh(v_j) + I_i(t)

* ``W``: i.i.d. Lorentz (Cauchy) or Gaussian entries, optionally low rank (``W = W_L W_R``), a
  ``connectivity_filling_factor`` mask, Dale's law (one sign per presynaptic neuron), zero diagonal,
  then rescaled so that max |eig(W)| = ``spectral_radius``.
* tau and V_rest are per type (``tau_range`` geometric, ``V_rest_range`` linear spacing).
* ``n_input_neurons`` neurons (the first ones) receive an Ornstein-Uhlenbeck drive I(t); the others
  none. With 0 driven neurons the activity is autonomous (chaotic for spectral radius > 1) plus the
  process noise ``noise_model_level``.

The dataset has the same layout as a flyvis one (:mod:`fvjax.data`), so training and evaluation
use the same code; the GNN uses ``signal_model_name: dense`` (one matrix product per step).
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .config import Config, SimulationConfig
from .simulate import DenseCircuit, simulate

DEFAULT_SIZE = {"n_neurons": 1000, "n_neuron_types": 4, "n_input_neurons": 0}


class SyntheticNetwork(NamedTuple):
    """Ground truth of a synthetic network; also serves as the ``conn``/``gt`` of :func:`fvjax.evaluate`."""

    W: np.ndarray            # (N * N,) row-major: W[i * N + j] = weight j -> i (edge order of dense_graph)
    tau: np.ndarray          # (N,)
    V_rest: np.ndarray       # (N,)
    node_type: np.ndarray    # (N,) int32
    input_index: np.ndarray  # (n_in,) int32

    @property
    def n_nodes(self) -> int:
        return int(self.tau.shape[0])

    @property
    def n_types(self) -> int:
        return int(self.node_type.max()) + 1

    @property
    def matrix(self) -> np.ndarray:
        return self.W.reshape(self.n_nodes, self.n_nodes)

    def circuit(self, dtype=jnp.float32) -> DenseCircuit:
        return DenseCircuit(jnp.asarray(self.matrix, dtype), jnp.asarray(self.tau, dtype),
                            jnp.asarray(self.V_rest, dtype), jnp.asarray(self.input_index))


def size(sim: SimulationConfig, key: str) -> int:
    value = getattr(sim, key)
    return DEFAULT_SIZE[key] if value is None else value


def _entries(rng, kind: str, shape) -> np.ndarray:
    return rng.standard_cauchy(shape) if kind == "Lorentz" else rng.standard_normal(shape)


def connectivity(sim: SimulationConfig, rng: np.random.Generator) -> np.ndarray:
    """(N, N) float64 weight matrix following the rules in the module docstring."""
    n = size(sim, "n_neurons")
    if sim.low_rank:
        W = _entries(rng, sim.connectivity_type, (n, sim.low_rank)) @ _entries(rng, sim.connectivity_type,
                                                                               (sim.low_rank, n))
    else:
        W = _entries(rng, sim.connectivity_type, (n, n))
    if sim.connectivity_filling_factor < 1:
        W = W * (rng.random((n, n)) < sim.connectivity_filling_factor)
    if sim.Dale_law:
        sign = np.where(rng.random(n) < sim.Dale_law_factor, 1.0, -1.0)
        W = np.abs(W) * sign[None, :]
    np.fill_diagonal(W, 0.0)
    radius = np.abs(np.linalg.eigvals(W)).max()
    if radius == 0:
        raise ValueError("synthetic W is all zero; raise simulation.connectivity_filling_factor")
    return W * (sim.spectral_radius / radius)


def make_network(sim: SimulationConfig, seed: int | None = None) -> SyntheticNetwork:
    """The synthetic ground truth for ``simulation.seed`` (or ``seed``); deterministic."""
    n, k = size(sim, "n_neurons"), size(sim, "n_neuron_types")
    n_in = size(sim, "n_input_neurons")
    if k > n or n_in > n:
        raise ValueError(f"simulation.n_neuron_types ({k}) and n_input_neurons ({n_in}) must be <= n_neurons ({n})")
    rng = np.random.default_rng(sim.seed if seed is None else seed)
    node_type = (np.arange(n) % k).astype(np.int32)
    tau_t = np.geomspace(*sim.tau_range, k)
    vrest_t = np.linspace(*sim.V_rest_range, k)
    W = connectivity(sim, rng)
    return SyntheticNetwork(W=W.reshape(-1).astype(np.float32), tau=tau_t[node_type].astype(np.float32),
                            V_rest=vrest_t[node_type].astype(np.float32), node_type=node_type,
                            input_index=np.arange(n_in, dtype=np.int32))


def ou_drive(sim: SimulationConfig, n_frames: int, n_inputs: int, rng: np.random.Generator) -> np.ndarray:
    """(T, n_in) stationary Ornstein-Uhlenbeck drive, std ``input_drive_std``, time ``input_drive_tau``."""
    out = np.zeros((n_frames, n_inputs), np.float32)
    if n_inputs == 0:
        return out
    decay = np.exp(-sim.delta_t / sim.input_drive_tau)
    kick = sim.input_drive_std * np.sqrt(1 - decay**2)
    x = sim.input_drive_std * rng.standard_normal(n_inputs)
    for t in range(n_frames):
        out[t] = x
        x = decay * x + kick * rng.standard_normal(n_inputs)
    return out


def save_network(path: str | Path, net: SyntheticNetwork) -> None:
    np.savez(path, **net._asdict())


def load_network(path: str | Path) -> SyntheticNetwork:
    """Read ``ground_truth.npz`` of a synthetic dataset folder (or the file itself)."""
    path = Path(path)
    path = path / "ground_truth.npz" if path.is_dir() else path
    with np.load(path) as data:
        missing = [f for f in SyntheticNetwork._fields if f not in data]
        if missing:
            raise KeyError(f"{path}: not a synthetic network file (missing {missing})")
        return SyntheticNetwork(**{f: data[f] for f in SyntheticNetwork._fields})


def _n_test(sim: SimulationConfig) -> int:
    return sim.n_test_frames or max(sim.n_frames // 8, 2)


def generate_synthetic_dataset(cfg: Config, out, overwrite: bool = False, progress: bool = True) -> Path:
    """Simulate a synthetic network into a dataset folder (layout of :mod:`fvjax.data`)."""
    from .data import simulate_split, write_dataset

    sim = cfg.simulation
    net = make_network(sim)
    circuit = net.circuit()
    n_pre = int(round(sim.steady_state_time / sim.delta_t))
    rng = np.random.default_rng(sim.seed + 1)
    v0 = jnp.asarray(net.V_rest + 0.5 * rng.standard_normal(net.n_nodes).astype(np.float32))
    pre_key = jax.random.PRNGKey(sim.seed + 2)
    v0, _ = simulate(circuit, v0, jnp.zeros((n_pre, len(net.input_index))), pre_key,
                     dt=sim.delta_t, noise_std=sim.noise_model_level, record=False)
    frames = {"train": sim.n_frames, "test": _n_test(sim)}

    def run_split(split, writer, key):
        drive = ou_drive(sim, frames[split], len(net.input_index), np.random.default_rng([sim.seed, len(split)]))
        simulate_split(cfg, circuit, v0, frames[split], lambda a, b: drive[a:b], key, writer,
                       f"simulating {split}", progress, "lower simulation.spectral_radius or raise tau_range")

    head = {"n_nodes": net.n_nodes, "n_edges": net.n_nodes**2, "n_inputs": len(net.input_index),
            "input_node_index": net.input_index.tolist(), "n_types": net.n_types}
    return write_dataset(cfg, out, overwrite, head, frames, run_split,
                         lambda folder: save_network(folder / "ground_truth.npz", net))
