"""Ground-truth dynamics of the flyvis network (pure JAX functions, ``lax.scan`` over frames).

    tau_i dv_i/dt = -v_i + V_rest_i + sum_{e: j->i} W_e relu(v_j) + x_i(t)
    v(t+1)        = v(t) + dt * dv/dt(t) + noise_std * xi(t)          (explicit Euler, noise after)

``x_i(t)`` is the stimulus on the input nodes (photoreceptors) and 0 elsewhere. With
``tau_clamp=True`` the velocity uses ``max(tau, dt)`` like flyvis; the flyvis-gnn reference uses the raw
tau (the default here). Noise for global frame ``t`` is drawn from ``fold_in(key, t)``, so results do
not depend on how a run is split into chunks.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .connectome import Connectome
from .groundtruth import GroundTruth


class Circuit(NamedTuple):
    """Everything the ground-truth vector field needs (a pytree of arrays)."""

    W: jax.Array            # (E,)
    tau: jax.Array          # (N,) raw time constants
    V_rest: jax.Array       # (N,)
    edge_src: jax.Array     # (E,) int32
    edge_dst: jax.Array     # (E,) int32
    input_index: jax.Array  # (n_in,) int32, node receiving stimulus column k

    @property
    def n_nodes(self) -> int:
        return self.tau.shape[0]


class DenseCircuit(NamedTuple):
    """An all-to-all network (synthetic, seed 003): ``W[i, j]`` is the weight j -> i and the presynaptic
    nonlinearity is tanh instead of relu. Used by the same ``rhs``/``simulate`` as :class:`Circuit`."""

    W: jax.Array            # (N, N)
    tau: jax.Array          # (N,)
    V_rest: jax.Array       # (N,)
    input_index: jax.Array  # (n_in,) int32

    @property
    def n_nodes(self) -> int:
        return self.tau.shape[0]


class PDEN2Circuit(NamedTuple):
    """The reference's synthetic "PDE_N2" network (NeuralGraph), all-to-all, no tau:
    ``du_i/dt = -c_i u_i + s_i tanh(u_i) + g_i sum_j W_ij tanh(u_j) + x_i(t)``. Used by the same
    ``rhs``/``simulate`` as :class:`Circuit` (``dt``/``tau_clamp`` do not apply)."""

    W: jax.Array            # (N, N), W[i, j] = weight j -> i
    g: jax.Array            # (N,) coupling gain
    s: jax.Array            # (N,) self tanh gain
    c: jax.Array            # (N,) decay rate
    input_index: jax.Array  # (n_in,) int32

    @property
    def n_nodes(self) -> int:
        return self.c.shape[0]


def make_circuit(conn: Connectome, gt: GroundTruth, dtype=jnp.float32) -> Circuit:
    """Pack a connectome and its ground-truth parameters for the simulator."""
    return Circuit(
        W=jnp.asarray(gt.W, dtype), tau=jnp.asarray(gt.tau, dtype), V_rest=jnp.asarray(gt.V_rest, dtype),
        edge_src=jnp.asarray(conn.edge_src), edge_dst=jnp.asarray(conn.edge_dst),
        input_index=jnp.asarray(conn.input_node_index.reshape(-1)),
    )


def expand_frame(conn: Connectome, luminance: np.ndarray) -> np.ndarray:
    """Hexal luminance (..., n_hex) -> stimulus on every input node (..., n_inputs) (all 8 R types)."""
    n_types = conn.input_node_index.shape[0]
    return np.tile(np.asarray(luminance, np.float32), (1,) * (np.ndim(luminance) - 1) + (n_types,))


def effective_tau(circuit: Circuit, dt: float, tau_clamp: bool) -> jax.Array:
    return jnp.maximum(circuit.tau, dt) if tau_clamp else circuit.tau


def messages(circuit: Circuit | DenseCircuit, v: jax.Array) -> jax.Array:
    """sum_{e: j->i} W_e relu(v_j) for every node i (``W @ tanh(v)`` for a :class:`DenseCircuit`)."""
    if isinstance(circuit, DenseCircuit):
        return jnp.tanh(v) @ circuit.W.T
    pre = jax.nn.relu(v[circuit.edge_src])
    return jax.ops.segment_sum(circuit.W * pre, circuit.edge_dst, num_segments=circuit.n_nodes)


def _drive(circuit, v: jax.Array, stimulus: jax.Array) -> jax.Array:
    return jnp.zeros_like(v).at[circuit.input_index].add(stimulus.astype(v.dtype))


def _leaky_rhs(circuit: Circuit | DenseCircuit, v, stimulus, dt, tau_clamp):
    return (-v + circuit.V_rest + messages(circuit, v) + _drive(circuit, v, stimulus)) / effective_tau(circuit, dt, tau_clamp)


def _pde_n2_rhs(circuit: PDEN2Circuit, u, stimulus, dt, tau_clamp):
    phi = jnp.tanh(u)
    return -circuit.c * u + circuit.s * phi + circuit.g * (phi @ circuit.W.T) + _drive(circuit, u, stimulus)


# vector field of each circuit type (the flyvis Circuit and the synthetic tanh DenseCircuit share one)
VECTOR_FIELDS = {Circuit: _leaky_rhs, DenseCircuit: _leaky_rhs, PDEN2Circuit: _pde_n2_rhs}


def rhs(circuit: Circuit | DenseCircuit | PDEN2Circuit, v: jax.Array, stimulus: jax.Array, dt: float = 0.02,
        tau_clamp: bool = False) -> jax.Array:
    """Noise-free dv/dt for one state ``v`` (N,) and input-node stimulus (n_in,)."""
    return VECTOR_FIELDS[type(circuit)](circuit, v, stimulus, dt, tau_clamp)


@partial(jax.jit, static_argnames=("dt", "tau_clamp"))
def euler_step(circuit: Circuit, v: jax.Array, stimulus: jax.Array, dt: float = 0.02,
               tau_clamp: bool = False) -> jax.Array:
    """One noise-free explicit Euler step."""
    return v + dt * rhs(circuit, v, stimulus, dt, tau_clamp)


@partial(jax.jit, static_argnames=("n_steps", "dt", "tau_clamp"))
def steady_state(circuit: Circuit, n_steps: int = 100, grey: float = 0.5, dt: float = 0.02,
                 tau_clamp: bool = False) -> jax.Array:
    """Start at V_rest and run ``n_steps`` noise-free Euler steps with constant ``grey`` input."""
    stim = jnp.full(circuit.input_index.shape, grey, circuit.V_rest.dtype)

    return jax.lax.fori_loop(0, n_steps, lambda _, v: euler_step(circuit, v, stim, dt, tau_clamp), circuit.V_rest)


class Trajectory(NamedTuple):
    """Recorded frames: state *before* each update and the noise-free dv/dt at that state."""

    voltage: jax.Array      # (T, N)
    target: jax.Array       # (T, N)


@partial(jax.jit, static_argnames=("dt", "noise_std", "tau_clamp", "record"))
def simulate(circuit: Circuit, v0: jax.Array, stimulus: jax.Array, key: jax.Array, t0=0,
             dt: float = 0.02, noise_std: float = 0.05, tau_clamp: bool = False, record: bool = True):
    """Run ``len(stimulus)`` frames from ``v0``; returns ``(v_final, Trajectory | None)``.

    ``stimulus``: (T, n_in) input-node values per frame; ``t0``: global index of the first frame
    (selects the noise stream ``fold_in(key, t0 + t)``, so chunks concatenate exactly).
    """
    frames = jnp.arange(stimulus.shape[0]) + t0
    if noise_std > 0:  # drawn for the whole chunk up front: same values, ~2.5x cheaper than in-scan
        noise = noise_std * jax.vmap(lambda t: jax.random.normal(jax.random.fold_in(key, t), v0.shape, v0.dtype))(frames)
    else:
        noise = jnp.zeros((stimulus.shape[0], 0), v0.dtype)

    def step(v, inputs):
        stim, xi = inputs
        y = rhs(circuit, v, stim, dt, tau_clamp)
        v_next = v + dt * y
        if noise_std > 0:
            v_next = v_next + xi
        return v_next, (Trajectory(v, y) if record else None)

    return jax.lax.scan(step, v0, (stimulus, noise))
