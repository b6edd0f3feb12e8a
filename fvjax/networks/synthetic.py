"""Synthetic all-to-all networks (seed 003): N neurons of K types, heavy-tailed dense W.

    tau_i dv_i/dt = -v_i + V_rest_i + sum_j W_ij tanh(v_j) + I_i(t)

* ``W``: i.i.d. Lorentz (Cauchy) or Gaussian entries, optionally low rank (``W = W_L W_R``), a
  ``connectivity_filling_factor`` mask, Dale's law (one sign per presynaptic neuron), zero diagonal,
  then rescaled so that max |eig(W)| = ``spectral_radius``.
* tau and V_rest are per type (``tau_range`` geometric, ``V_rest_range`` linear spacing).
* ``n_input_neurons`` neurons (the first ones) receive an Ornstein-Uhlenbeck drive I(t); the others
  none. With 0 driven neurons the activity is autonomous (chaotic for spectral radius > 1) plus the
  process noise ``noise_model_level``.

``simulation.synthetic_model: PDE_N2`` builds the reference's network instead (NeuralGraph's
"PDE_N2", the paper's Figure 2 network):

    du_i/dt = -c_i u_i + s_i tanh(u_i) + g_i sum_j W_ij tanh(u_j) + I_i(t)

* ``W``: the reference's scaling, no rescaling: i.i.d. standard Cauchy, entries with |w| > 25 set
  to 0, divided by N^0.7 (other exponents for N >= 2000), zero diagonal (spectral radius about 1);
  ``Gaussian``: N(0, 1/N).
* types in contiguous blocks of N // K neurons (the last type takes the remainder), (g, s, c) per
  type from ``PDE_N2_params``; u(0) ~ N(0, 5^2).

The dataset has the same layout as a flyvis one (:mod:`fvjax.dataset`), so training and evaluation
use the same code; the GNN uses ``signal_model_name: dense`` (one matrix product per step). This is
the ``synthetic`` kind of :mod:`fvjax.networks` (:data:`NETWORK`); ``simulation.synthetic_model``
picks its model from :data:`MODELS`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .. import model as M
from ..config import Config, SimulationConfig
from ..dataset import Dataset, write_dataset
from ..simulate import DenseCircuit, PDEN2Circuit, simulate
from . import Network
from .common import simulate_split, split_key

DEFAULT_SIZE = {"n_neurons": 1000, "n_neuron_types": 4, "n_input_neurons": 0}


def _all_to_all(cls):
    """The shared views of an all-to-all ground truth (N from node_type; W row-major N x N)."""
    cls.n_nodes = property(lambda self: int(self.node_type.shape[0]), doc="number of neurons")
    cls.n_types = property(lambda self: int(self.node_type.max()) + 1, doc="number of types")
    cls.matrix = property(lambda self: self.W.reshape(self.n_nodes, self.n_nodes), doc="W as (N, N), row i = target")
    return cls


@_all_to_all
class SyntheticNetwork(NamedTuple):
    """Ground truth of a synthetic network; also serves as the ``conn``/``gt`` of :func:`fvjax.evaluate.evaluate`."""

    W: np.ndarray            # (N * N,) row-major: W[i * N + j] = weight j -> i (edge order of dense_graph)
    tau: np.ndarray          # (N,)
    V_rest: np.ndarray       # (N,)
    node_type: np.ndarray    # (N,) int32
    input_index: np.ndarray  # (n_in,) int32

    def circuit(self, dtype=jnp.float32) -> DenseCircuit:
        return DenseCircuit(jnp.asarray(self.matrix, dtype), jnp.asarray(self.tau, dtype),
                            jnp.asarray(self.V_rest, dtype), jnp.asarray(self.input_index))


@_all_to_all
class PDEN2Network(NamedTuple):
    """Ground truth of a PDE_N2 network; also its own ``conn``/``gt`` for :func:`fvjax.evaluate.evaluate`, which
    scores it with :mod:`fvjax.evaluate.pde_n2`; tau = 1/c and V_rest = 0 serve the shared fields."""

    W: np.ndarray            # (N * N,) row-major: W[i * N + j] = weight j -> i
    g: np.ndarray            # (N,) coupling gain
    s: np.ndarray            # (N,) self tanh gain
    c: np.ndarray            # (N,) decay rate
    node_type: np.ndarray    # (N,) int32
    input_index: np.ndarray  # (n_in,) int32

    @property
    def tau(self) -> np.ndarray:
        return (1.0 / self.c).astype(np.float32)

    @property
    def V_rest(self) -> np.ndarray:
        return np.zeros_like(self.c)

    def circuit(self, dtype=jnp.float32) -> PDEN2Circuit:
        return PDEN2Circuit(jnp.asarray(self.matrix, dtype), jnp.asarray(self.g, dtype), jnp.asarray(self.s, dtype),
                            jnp.asarray(self.c, dtype), jnp.asarray(self.input_index))


def size(sim: SimulationConfig, key: str) -> int:
    value = getattr(sim, key)
    if value is None and key == "n_neuron_types":
        return MODELS[sim.synthetic_model].default_types(sim)
    return DEFAULT_SIZE[key] if value is None else value


# simulation.connectivity_type -> i.i.d. draw of the entries
ENTRY_DRAWS = {"Lorentz": lambda rng, shape: rng.standard_cauchy(shape),
               "Gaussian": lambda rng, shape: rng.standard_normal(shape)}


def _entries(rng, kind: str, shape) -> np.ndarray:
    return ENTRY_DRAWS[kind](rng, shape)


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


def _sizes(sim: SimulationConfig) -> tuple[int, int, int]:
    n, k, n_in = (size(sim, key) for key in ("n_neurons", "n_neuron_types", "n_input_neurons"))
    if k > n or n_in > n:
        raise ValueError(f"simulation.n_neuron_types ({k}) and n_input_neurons ({n_in}) must be <= n_neurons ({n})")
    return n, k, n_in


def _tanh_network(sim: SimulationConfig, rng: np.random.Generator) -> SyntheticNetwork:
    n, k, n_in = _sizes(sim)
    node_type = (np.arange(n) % k).astype(np.int32)
    tau_t = np.geomspace(*sim.tau_range, k)
    vrest_t = np.linspace(*sim.V_rest_range, k)
    W = connectivity(sim, rng)
    return SyntheticNetwork(W=W.reshape(-1).astype(np.float32), tau=tau_t[node_type].astype(np.float32),
                            V_rest=vrest_t[node_type].astype(np.float32), node_type=node_type,
                            input_index=np.arange(n_in, dtype=np.int32))


# the reference's N-dependent Lorentz scaling: W / N^exponent for N below each bound
LORENTZ_EXPONENTS = ((2000, 0.7), (4000, 0.675), (8000, 0.67), (8001, 0.66), (float("inf"), 0.5))
LORENTZ_CUTOFF = 25.0   # Cauchy draws with |w| above this are set to 0 (before the scaling)


def lorentz_exponent(n: int) -> float:
    return next(e for bound, e in LORENTZ_EXPONENTS if n < bound)


def _lorentz_reference(n: int, rng: np.random.Generator) -> np.ndarray:
    w = rng.standard_cauchy((n, n))
    w[np.abs(w) > LORENTZ_CUTOFF] = 0.0
    return w / n ** lorentz_exponent(n)


def _gaussian_reference(n: int, rng: np.random.Generator) -> np.ndarray:
    return rng.standard_normal((n, n)) / np.sqrt(n)


REFERENCE_ENTRIES = {"Lorentz": _lorentz_reference, "Gaussian": _gaussian_reference}


def reference_connectivity(kind: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """(N, N) float64 W of the reference's generator: no rescaling, zero diagonal."""
    W = REFERENCE_ENTRIES[kind](n, rng)
    np.fill_diagonal(W, 0.0)
    return W


def type_blocks(n: int, k: int) -> np.ndarray:
    """Contiguous types: blocks of N // K neurons, the last type also takes the remainder."""
    return np.minimum(np.arange(n) // (n // k), k - 1).astype(np.int32)


def _pde_n2_network(sim: SimulationConfig, rng: np.random.Generator) -> PDEN2Network:
    n, k, n_in = _sizes(sim)
    node_type = type_blocks(n, k)
    g, s, c = np.asarray(sim.PDE_N2_params, np.float32)[node_type].T
    W = reference_connectivity(sim.connectivity_type, n, rng)
    return PDEN2Network(W=W.reshape(-1).astype(np.float32), g=g, s=s, c=c, node_type=node_type,
                        input_index=np.arange(n_in, dtype=np.int32))


class SyntheticModel(NamedTuple):
    """How one ``simulation.synthetic_model`` builds its network and its initial state."""

    network: type
    make: Callable             # (sim, rng) -> network
    initial_state: Callable    # (net, rng) -> (N,) float32
    hint: str                  # what to try when the simulation diverges
    own_test_start: bool       # the test split starts from its own warmed-up draw (else the train start)
    default_types: Callable    # (sim) -> number of types when simulation.n_neuron_types is not given
    named_file: bool           # ground_truth.npz records the model's name (tanh files predate it: no name)


MODELS = {
    "tanh": SyntheticModel(SyntheticNetwork, _tanh_network,
                           lambda net, rng: net.V_rest + 0.5 * rng.standard_normal(net.n_nodes).astype(np.float32),
                           "lower simulation.spectral_radius or raise tau_range", False,
                           lambda sim: DEFAULT_SIZE["n_neuron_types"], False),
    "PDE_N2": SyntheticModel(PDEN2Network, _pde_n2_network,
                             lambda net, rng: 5.0 * rng.standard_normal(net.n_nodes).astype(np.float32),
                             "lower simulation.delta_t or the gains g in simulation.PDE_N2_params", True,
                             lambda sim: len(sim.PDE_N2_params), True),
}


def make_network(sim: SimulationConfig, seed: int | None = None) -> SyntheticNetwork | PDEN2Network:
    """The synthetic ground truth for ``simulation.seed`` (or ``seed``); deterministic."""
    return MODELS[sim.synthetic_model].make(sim, np.random.default_rng(sim.seed if seed is None else seed))


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


def save_network(path: str | Path, net: SyntheticNetwork | PDEN2Network) -> None:
    """``ground_truth.npz``; other models than tanh also store their name as ``synthetic_model``
    (tanh files stay as they were, so a file without it is a tanh network)."""
    kind = next(name for name, model in MODELS.items() if isinstance(net, model.network))
    np.savez(path, **net._asdict(), **({"synthetic_model": np.array(kind)} if MODELS[kind].named_file else {}))


def load_network(path: str | Path) -> SyntheticNetwork | PDEN2Network:
    """Read ``ground_truth.npz`` of a synthetic dataset folder (or the file itself)."""
    path = Path(path)
    path = path / "ground_truth.npz" if path.is_dir() else path
    with np.load(path) as data:
        kind = str(data["synthetic_model"]) if "synthetic_model" in data else "tanh"
        if kind not in MODELS:
            raise KeyError(f"{path}: unknown synthetic_model {kind!r} (this fvjax knows {sorted(MODELS)})")
        cls = MODELS[kind].network
        missing = [f for f in cls._fields if f not in data]
        if missing:
            raise KeyError(f"{path}: not a synthetic network file (missing {missing})")
        return cls(**{f: data[f] for f in cls._fields})


def _n_test(sim: SimulationConfig) -> int:
    return sim.n_test_frames or max(sim.n_frames // 8, 2)


def generate_synthetic_dataset(cfg: Config, out, overwrite: bool = False, progress: bool = True) -> Path:
    """Simulate a synthetic network into a dataset folder (layout of :mod:`fvjax.dataset`)."""
    sim = cfg.simulation
    model = MODELS[sim.synthetic_model]
    net = make_network(sim)
    circuit = net.circuit()
    n_pre = int(round(sim.steady_state_time / sim.delta_t))
    rng = np.random.default_rng(sim.seed + 1)

    def warm_start(key):
        v0 = jnp.asarray(model.initial_state(net, rng))
        return simulate(circuit, v0, jnp.zeros((n_pre, len(net.input_index))), key, dt=sim.delta_t,
                        noise_std=sim.noise_model_level, record=False)[0]

    starts = {"train": warm_start(jax.random.PRNGKey(sim.seed + 2))}
    # noise-free dynamics from the same start would make the test split a copy of the train split's start
    starts["test"] = warm_start(jax.random.PRNGKey(sim.seed + 3)) if model.own_test_start else starts["train"]
    frames = {"train": sim.n_frames, "test": _n_test(sim)}

    def run_split(split, writer):
        drive = ou_drive(sim, frames[split], len(net.input_index), np.random.default_rng([sim.seed, len(split)]))
        simulate_split(cfg, circuit, starts[split], frames[split], lambda a, b: drive[a:b],
                       split_key(sim.seed, split), writer, f"simulating {split}", progress, model.hint)

    head = {"n_nodes": net.n_nodes, "n_edges": net.n_nodes**2, "n_inputs": len(net.input_index),
            "input_node_index": net.input_index.tolist(), "n_types": net.n_types}
    return write_dataset(cfg, out, overwrite, head, frames, run_split,
                         lambda folder: save_network(folder / "ground_truth.npz", net))


def build(cfg: Config, progress: bool = True):
    """(nodes, ground truth): the synthetic network is both (deterministic in ``simulation.seed``)."""
    net = make_network(cfg.simulation)
    return net, net


def load(data: Dataset, cfg: Config):
    """(network, network, all-to-all graph) of a synthetic dataset, from its ground_truth.npz."""
    net = load_network(data.path)
    return net, net, M.dense_graph(net.n_nodes, data.input_index)


NETWORK = Network(name="synthetic", build=build, generate=generate_synthetic_dataset, load=load,
                  gnn_defaults={"graph_model.signal_model_name": "dense", "graph_model.g_phi_positive": False},
                  cluster_components=lambda nodes: nodes.n_types, label=lambda cfg: "synthetic",
                  cell_types=False)
