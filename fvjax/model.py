"""The flyvis GNN (flyvis-gnn ``FlyVisGNN``) as pure functions: ``init`` and ``apply``.

    h_j   = g_phi([v_j, a_j])^2                     (flyvis_A; squared when g_phi_positive)
    msg_i = sum_{e: j->i} W_e h_j
    dv_i  = f_theta([v_i, a_i, msg_i, e_i])

``update: additive`` (the reference's signal GNN, NeuralGraph/neural-gnn) predicts
``dv_i = f_theta([v_i, a_i]) + msg_i + e_i`` instead, and ``edge_embedding=False`` feeds g_phi v_j alone.

For flyvis_A g_phi's input depends on the source node only, so it is evaluated once per node and
gathered (exactly the per-edge value; tested in float64). flyvis_B (g_phi sees [v_i, v_j, a_i, a_j])
is evaluated per edge. ``dense`` is flyvis_A on an all-to-all graph whose W (N*N,) is stored row-major
(``W[i * N + j]`` = weight j -> i), so the sum is one matrix product (synthetic networks, seed 003);
its diagonal is held at zero (see :func:`weights`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .config import MESSAGE_LINEAR, UPDATE_TYPES
from .nn import ACTIVATIONS, mlp_apply, mlp_init, siren_apply, siren_init  # noqa: F401 (re-exported)


@dataclass(frozen=True)
class Variant:
    """What a GNN variant (``ModelSpec.variant``) is, looked up once instead of compared by name."""

    all_to_all: bool   # W is the N x N matrix, row-major, its diagonal held at zero (synthetic networks)
    pairwise: bool     # g_phi sees both ends of the edge ([v_i, v_j, a_i, a_j]), so it runs per edge


VARIANTS = {"flyvis_A": Variant(all_to_all=False, pairwise=False),
            "flyvis_B": Variant(all_to_all=False, pairwise=True),
            "dense": Variant(all_to_all=True, pairwise=False)}
GAIN_HIDDEN = 32   # width of the gain MLP of update "gain"
FIELDS = {"none": False, "visual": True}     # ModelSpec.field -> is the input a learned SIREN field
# update rule -> f_theta's inputs besides the embedding (one table with the config's update_type)
UPDATE_INPUTS = dict(UPDATE_TYPES.values())
UPDATES = tuple(UPDATE_INPUTS)


@dataclass(frozen=True)
class ModelSpec:
    """Static architecture (hashable; passed to jit as a static argument)."""

    n_nodes: int
    n_edges: int
    variant: str = "flyvis_A"          # "flyvis_A" | "flyvis_B" | "dense"
    embedding_dim: int = 2
    hidden_dim: int = 80
    n_layers: int = 3
    hidden_dim_update: int = 80
    n_layers_update: int = 3
    activation: str = "relu"
    g_phi_positive: bool = True
    edge_embedding: bool = True        # g_phi sees [v_j, a_j]; False: v_j alone (the reference's PDE_N2 GNN)
    update: str = "generic"            # generic: f([v, a, msg, e]); additive: f([v, a]) + msg + e
    w_init_mode: str = "randn_scaled"  # "zeros" | "randn" | "randn_scaled"
    w_init_scale: float = 1.0
    low_rank: int = 0                  # dense only: W = W_L W_R of this rank (seed 003); 0 = full W
    field: str = "none"                # "visual": the input is a SIREN of (x, y, t) (seed 002)
    siren_hidden: int = 128
    siren_layers: int = 5              # hidden sine layers after the first
    omega: float = 80.0
    xy_period: float = 1.0
    T_period: float = 1.0
    neuron_bias: bool = False          # a free per-neuron constant input b (N,) added to msg (training.lr_bias)

    def __post_init__(self):
        if self.variant not in VARIANTS:
            raise ValueError(f"variant {self.variant!r}: expected one of {tuple(VARIANTS)}")
        if self.all_to_all and self.n_edges != self.n_nodes**2:
            raise ValueError(f"dense variant needs n_edges = n_nodes^2 = {self.n_nodes**2}, got {self.n_edges}")
        if self.low_rank and not self.all_to_all:
            raise ValueError("a low-rank W (W_L W_R) needs the dense variant (signal_model_name: dense)")
        if self.field not in FIELDS:
            raise ValueError(f"field {self.field!r}: expected one of {tuple(FIELDS)}")
        if self.update not in UPDATES:
            raise ValueError(f"update {self.update!r}: expected one of {UPDATES}")
        if self.pairwise and not self.edge_embedding:
            raise ValueError("flyvis_B's g_phi sees both ends' embeddings; edge_embedding=False needs flyvis_A or dense")

    @property
    def learns_field(self) -> bool:
        """The photoreceptor input is a learned SIREN of (x, y, t) (``field: visual``, seed 002)."""
        return FIELDS[self.field]

    @property
    def pairwise(self) -> bool:
        """g_phi sees both ends of the edge (flyvis_B), so it is evaluated per edge."""
        return VARIANTS[self.variant].pairwise

    @property
    def edge_refittable(self) -> bool:
        """An edge-list W whose messages enter the update linearly (flyvis_A, additive or gain update): W and
        a per-neuron constant can be solved by least squares with the MLPs fixed (``training.refit_at_end``)."""
        return not self.all_to_all and not self.pairwise and MESSAGE_LINEAR[self.update]

    @property
    def all_to_all(self) -> bool:
        """W is the full N x N matrix (dense), stored row-major with its diagonal held at zero."""
        return VARIANTS[self.variant].all_to_all

    @property
    def edge_input_size(self) -> int:
        if self.pairwise:
            return 2 + 2 * self.embedding_dim
        return 1 + self.embedding_dim if self.edge_embedding else 1

    @property
    def update_input_size(self) -> int:
        return UPDATE_INPUTS[self.update] + self.embedding_dim


class Graph(NamedTuple):
    """Edges the model passes messages over (int32 arrays), where the stimulus enters, and the input
    nodes' (x, y) positions in [-1, 1] (needed by the visual field only)."""

    src: jax.Array
    dst: jax.Array
    input_index: jax.Array
    input_xy: jax.Array | None = None
    learned_edges: jax.Array | None = None   # (E,) 1/0: W held at 0 where 0 (training.hold_silent_sources)
    centre: jax.Array | None = None          # (N,) mu_j: W and b are stepped in centred coordinates (training.centre_W)


def dense_graph(n_nodes: int, input_index) -> Graph:
    """All n^2 ordered pairs in row-major order (edge i * n + j is j -> i), for the dense variant."""
    dst, src = np.divmod(np.arange(n_nodes * n_nodes, dtype=np.int32), np.int32(n_nodes))
    return Graph(jnp.asarray(src), jnp.asarray(dst), jnp.asarray(np.asarray(input_index, np.int32)))


def _gain_params(key, spec: ModelSpec, dtype) -> dict:
    """f_gain of update "gain", from its own stream (the other parameters are drawn as without it)."""
    return {"f_gain": mlp_init(jax.random.fold_in(key, 7), [spec.embedding_dim, GAIN_HIDDEN, 1], dtype)}


# update rule -> its parameters besides g_phi, f_theta, a and W
UPDATE_PARAMS = {"gain": _gain_params}


def init(key: jax.Array, spec: ModelSpec, dtype=jnp.float32) -> dict:
    """Parameters: ``g_phi``, ``f_theta`` (lists of {w, b}), ``a`` (N, d) = ones, ``W`` (E,)."""
    k_g, k_f, k_w = jax.random.split(key, 3)
    g_sizes = [spec.edge_input_size] + [spec.hidden_dim] * (spec.n_layers - 1) + [1]
    f_sizes = [spec.update_input_size] + [spec.hidden_dim_update] * (spec.n_layers_update - 1) + [1]
    stds = {"zeros": 0.0, "randn": 1.0, "randn_scaled": spec.w_init_scale / np.sqrt(spec.n_edges)}
    if spec.w_init_mode not in stds:
        raise ValueError(f"w_init_mode {spec.w_init_mode!r}: expected zeros, randn or randn_scaled")
    sd = stds[spec.w_init_mode]
    params = {"g_phi": mlp_init(k_g, g_sizes, dtype), "f_theta": mlp_init(k_f, f_sizes, dtype),
              "a": jnp.ones((spec.n_nodes, spec.embedding_dim), dtype)}
    params.update(UPDATE_PARAMS.get(spec.update, lambda *_: {})(key, spec, dtype))
    if spec.low_rank:   # factors whose product has the std the full W would have
        factor = (sd**2 / spec.low_rank) ** 0.25
        k_l, k_r = jax.random.split(k_w)
        params["W_L"] = factor * jax.random.normal(k_l, (spec.n_nodes, spec.low_rank), dtype)
        params["W_R"] = factor * jax.random.normal(k_r, (spec.low_rank, spec.n_nodes), dtype)
    elif sd == 0.0:
        params["W"] = jnp.zeros((spec.n_edges,), dtype)
    else:   # (x 1.0 is exact, so randn is unchanged)
        params["W"] = jax.random.normal(k_w, (spec.n_edges,), dtype) * sd
    if spec.neuron_bias:
        params["b"] = jnp.zeros((spec.n_nodes,), dtype)
    if spec.learns_field:
        sizes = [3] + [spec.siren_hidden] * (spec.siren_layers + 1) + [1]
        params["NNR_f"] = siren_init(jax.random.fold_in(key, 7), sizes, spec.omega, dtype)
    return params


def visual_field(params: dict, spec: ModelSpec, graph: Graph, frames: jax.Array) -> jax.Array:
    """Learned input SIREN([x 2pi/xy_period, y 2pi/xy_period, k 2pi/T_period])^2 >= 0 of every input
    node at frames ``k`` (any shape F) -> (F..., n_inputs)."""
    if graph.input_xy is None:
        raise ValueError("the visual field needs Graph.input_xy (input node positions); build the graph "
                         "with fvjax.pipeline.network or fvjax.model.input_positions")
    xy = graph.input_xy * (2 * np.pi / spec.xy_period)
    t = jnp.asarray(frames, xy.dtype)[..., None, None] * (2 * np.pi / spec.T_period)
    coords = jnp.concatenate([jnp.broadcast_to(xy, t.shape[:-2] + xy.shape),
                              jnp.broadcast_to(t, t.shape[:-2] + xy.shape[:1] + (1,))], -1)
    return siren_apply(params["NNR_f"], coords, spec.omega)[..., 0] ** 2


def input_positions(node_u, node_v, input_index) -> np.ndarray:
    """(n_inputs, 2) Cartesian positions of the input nodes from hex coordinates (u, v), scaled so the
    farthest one is at radius 1."""
    u, v = np.asarray(node_u, np.float64)[input_index], np.asarray(node_v, np.float64)[input_index]
    xy = np.stack([u + 0.5 * v, np.sqrt(3) / 2 * v], -1)
    radius = np.sqrt((xy**2).sum(-1)).max()
    return (xy / (radius if radius > 0 else 1.0)).astype(np.float32)


def weights(params: dict, spec: ModelSpec) -> jax.Array:
    """The per-edge W (E,) the model uses: the parameter itself; for the dense variant the N x N matrix
    (W_L W_R when low rank) with its diagonal zeroed, flattened row-major. A self-coupling
    W_ii g(v_i) is a function of v_i alone, which f_theta already is, so it is not identifiable and
    would absorb the per-neuron decay that f_theta should learn."""
    if not spec.all_to_all:
        return params["W"]
    n = spec.n_nodes
    W = params["W_L"] @ params["W_R"] if spec.low_rank else params["W"].reshape(n, n)
    return (W * (1 - jnp.eye(n, dtype=W.dtype))).reshape(-1)


def edge_function(params: dict, spec: ModelSpec, v: jax.Array, a: jax.Array) -> jax.Array:
    """g_phi([v, a]) (g_phi(v) without edge_embedding; squared if g_phi_positive) for node-wise
    inputs v (..., N), a (N, d)."""
    x = v[..., None]
    if spec.edge_embedding:
        x = jnp.concatenate([x, jnp.broadcast_to(a, v.shape + a.shape[-1:])], -1)
    h = mlp_apply(params["g_phi"], x, spec.activation)[..., 0]
    return h**2 if spec.g_phi_positive else h


def pair_edge_function(params: dict, spec: ModelSpec, v_dst, v_src, a_dst, a_src) -> jax.Array:
    """flyvis_B: g_phi([v_i, v_j, a_i, a_j]) (squared if g_phi_positive); v (...,), a (..., d)."""
    x = jnp.concatenate([v_dst[..., None], v_src[..., None], jnp.broadcast_to(a_dst, v_src.shape + a_dst.shape[-1:]),
                         jnp.broadcast_to(a_src, v_src.shape + a_src.shape[-1:])], -1)
    h = mlp_apply(params["g_phi"], x, spec.activation)[..., 0]
    return h**2 if spec.g_phi_positive else h


def _generic_update(params: dict, spec: ModelSpec, v, a, msg, stim) -> jax.Array:
    x = jnp.concatenate([v[..., None], jnp.broadcast_to(a, v.shape + a.shape[-1:]),
                         msg[..., None], stim[..., None]], -1)
    return mlp_apply(params["f_theta"], x, spec.activation)[..., 0]


def _f_theta_of_voltage(params: dict, spec: ModelSpec, v, a) -> jax.Array:
    """f_theta([v, a]): the voltage part of the additive and gain updates."""
    x = jnp.concatenate([v[..., None], jnp.broadcast_to(a, v.shape + a.shape[-1:])], -1)
    return mlp_apply(params["f_theta"], x, spec.activation)[..., 0]


def _additive_update(params: dict, spec: ModelSpec, v, a, msg, stim) -> jax.Array:
    return _f_theta_of_voltage(params, spec, v, a) + msg + stim


def message_gain(params: dict, spec: ModelSpec, a) -> jax.Array:
    """(...,) the per-neuron gain 1 + f_gain(a) on msg + e of update "gain" (about 1 at init)."""
    return 1.0 + mlp_apply(params["f_gain"], a, spec.activation)[..., 0]


def _gain_update(params: dict, spec: ModelSpec, v, a, msg, stim) -> jax.Array:
    return _f_theta_of_voltage(params, spec, v, a) + message_gain(params, spec, a) * (msg + stim)


# the update rule per ModelSpec.update
UPDATE_FUNCTIONS = {"generic": _generic_update, "additive": _additive_update, "gain": _gain_update}


def update_function(params: dict, spec: ModelSpec, v, a, msg, stim, bias=None) -> jax.Array:
    """dv/dt for node-wise arrays (..., N): f_theta([v, a, msg, e]) (generic), f_theta([v, a]) + msg + e
    (additive, the reference's signal GNN) or f_theta([v, a]) + (1 + f_gain(a)) (msg + e) (gain: the
    flyvis equation's form, (V_rest - v)/tau + (msg + e)/tau, with no coupling of v and msg).
    ``bias``: the per-neuron constant b (broadcast against v) of ``neuron_bias``, a constant input added
    to the message (msg + b): in voltage units, where W times an unchanging source would be, and read as
    part of V_rest by the probes (which evaluate the update at msg = b)."""
    msg = msg if bias is None else msg + bias
    return UPDATE_FUNCTIONS[spec.update](params, spec, v, a, msg, stim)


def neuron_bias(params: dict):
    """(N,) the per-neuron constant input of ``ModelSpec.neuron_bias``, or None without it."""
    return params.get("b")


def update_without_input(params: dict, spec: ModelSpec, v, a, bias=None) -> jax.Array:
    """The update at voltages ``v`` with no message and no stimulus (msg = 0, e = 0; with ``bias``, msg = b):
    the function the tau / V_rest probes (which pass ``bias``), the PDE_N2 scores, the embedding snap and
    the function plots read (the latter three per type, so without the per-neuron bias)."""
    zero = jnp.zeros_like(v)
    return update_function(params, spec, v, a, zero, zero, bias)


def _dense_messages(params: dict, spec: ModelSpec, graph: Graph, v: jax.Array) -> jax.Array:
    h = edge_function(params, spec, v, params["a"])
    if spec.low_rank:   # (h W_R^T) W_L^T minus the diagonal: O(N r), no N x N matrix
        diag = jnp.sum(params["W_L"] * params["W_R"].T, axis=1)
        return (h @ params["W_R"].T) @ params["W_L"].T - h * diag
    n = spec.n_nodes
    return h @ weights(params, spec).reshape(n, n).T


def _edge_sum(params: dict, spec: ModelSpec, graph: Graph, h: jax.Array) -> jax.Array:
    return jax.ops.segment_sum((params["W"][:, None] * h.T), graph.dst, num_segments=spec.n_nodes).T


def _node_messages(params: dict, spec: ModelSpec, graph: Graph, v: jax.Array) -> jax.Array:
    """flyvis_A: g_phi per source node, gathered onto the edges (B, E)."""
    return _edge_sum(params, spec, graph, edge_function(params, spec, v, params["a"])[:, graph.src])


def _pair_messages(params: dict, spec: ModelSpec, graph: Graph, v: jax.Array) -> jax.Array:
    """flyvis_B: g_phi per edge on both ends."""
    a = params["a"]
    h = pair_edge_function(params, spec, v[:, graph.dst], v[:, graph.src], a[graph.dst], a[graph.src])
    return _edge_sum(params, spec, graph, h)


MESSAGES = {"flyvis_A": _node_messages, "flyvis_B": _pair_messages, "dense": _dense_messages}


def messages(params: dict, spec: ModelSpec, graph: Graph, v: jax.Array) -> jax.Array:
    """msg (B, N) for voltages v (B, N)."""
    return MESSAGES[spec.variant](params, spec, graph, v)


def node_stimulus(graph: Graph, stim_inputs: jax.Array, n_nodes: int) -> jax.Array:
    """(B, n_inputs) input-node values -> (B, N) with zeros elsewhere."""
    return jnp.zeros(stim_inputs.shape[:1] + (n_nodes,), stim_inputs.dtype).at[:, graph.input_index].set(stim_inputs)


def apply(params: dict, spec: ModelSpec, graph: Graph, v: jax.Array, stim_inputs: jax.Array):
    """Predicted dv/dt (B, N) and the messages (B, N) for voltages v (B, N), stimulus (B, n_inputs)."""
    msg = messages(params, spec, graph, v)
    stim = node_stimulus(graph, stim_inputs, spec.n_nodes)
    return update_function(params, spec, v, params["a"], msg, stim, neuron_bias(params)), msg
