"""Build the flyvis network (nodes, edges, parameter-sharing tables) from the connectome JSON.

Reproduces flyvis 1.2.0 ``Network`` exactly (node order, Lawf stride, convex-hull fill offsets with
matplotlib's boundary rule, dropped edges, first-appearance order of edge types and groups).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .hexlattice import hex_coords
from .source import connectome_json_path


@dataclass(frozen=True, eq=False)
class Connectome:
    """Static graph of the flyvis network at one extent (numpy arrays, never traced).

    Index conventions: types in JSON order (``type_names``); edge types = (source type, target type)
    pairs in first-appearance order; groups = (source type, target type, du, dv) offsets.
    """

    extent: int
    type_names: tuple[str, ...]
    type_role: tuple[str, ...]          # "input" | "output" | "intermediate"
    node_type: np.ndarray               # (N,) int32
    node_u: np.ndarray                  # (N,) int32
    node_v: np.ndarray                  # (N,) int32
    edge_src: np.ndarray                # (E,) int32 presynaptic node
    edge_dst: np.ndarray                # (E,) int32 postsynaptic node
    edge_type: np.ndarray               # (E,) int32 in 0..n_edge_types-1
    edge_group: np.ndarray              # (E,) int32 in 0..n_groups-1
    edge_type_src_type: np.ndarray      # (n_edge_types,) int32
    edge_type_dst_type: np.ndarray      # (n_edge_types,) int32
    edge_type_sign: np.ndarray          # (n_edge_types,) float32, +-1
    group_edge_type: np.ndarray         # (n_groups,) int32
    group_du: np.ndarray                # (n_groups,) int32, target minus source column
    group_dv: np.ndarray                # (n_groups,) int32
    group_n_syn: np.ndarray             # (n_groups,) float32 mean synapse count (JSON value)
    hex_u: np.ndarray                   # (n_hex,) int32 canonical hexal order
    hex_v: np.ndarray                   # (n_hex,) int32
    input_node_index: np.ndarray        # (n_input_types, n_hex) int32 node of R_k at each hexal

    @property
    def n_nodes(self) -> int:
        return int(self.node_type.shape[0])

    @property
    def n_edges(self) -> int:
        return int(self.edge_src.shape[0])

    @property
    def n_types(self) -> int:
        return len(self.type_names)

    @property
    def n_edge_types(self) -> int:
        return int(self.edge_type_sign.shape[0])

    @property
    def n_groups(self) -> int:
        return int(self.group_n_syn.shape[0])

    @property
    def n_inputs(self) -> int:
        return int(self.input_node_index.size)

    @property
    def edge_sign(self) -> np.ndarray:
        return self.edge_type_sign[self.edge_type]

    @property
    def edge_n_syn(self) -> np.ndarray:
        return self.group_n_syn[self.edge_group]

    def type_index(self, name: str) -> int:
        try:
            return self.type_names.index(name)
        except ValueError:
            raise KeyError(f"unknown cell type {name!r}; known: {', '.join(self.type_names)}") from None


# ----------------------------------------------------------------------------------------- hull fill

def _convex_hull_ccw(points: np.ndarray) -> np.ndarray:
    """Andrew's monotone chain; counter-clockwise, collinear points dropped."""
    pts = sorted(set(map(tuple, points.tolist())))
    if len(pts) <= 2:
        return np.asarray(pts, float)

    def cross(o, a, b):
        return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])

    def chain(seq):
        out = []
        for p in seq:
            while len(out) >= 2 and cross(out[-2], out[-1], p) <= 0:
                out.pop()
            out.append(p)
        return out

    lower, upper = chain(pts), chain(reversed(pts))
    return np.asarray(lower[:-1] + upper[:-1], float)


def _inside_halfopen(hull: np.ndarray, tx: float, ty: float) -> bool:
    """Ray-crossing test with the half-open boundary rule of matplotlib's ``Path.contains_points``."""
    inside = False
    n = len(hull)
    for k in range(n):
        x0, y0 = hull[k]
        x1, y1 = hull[(k + 1) % n]
        y0_ge, y1_ge = y0 >= ty, y1 >= ty
        if y0_ge != y1_ge and (((y1 - ty) * (x0 - x1) >= (x1 - tx) * (y0 - y1)) == y1_ge):
            inside = not inside
    return inside


def fill_offsets(known: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Integer offsets inside the convex hull of ``known`` (not already known), u-major order."""
    if len(known) < 3:
        return []
    pts = np.asarray(known, float)
    hull = _convex_hull_ccw(pts)
    if len(hull) < 3:
        return []
    known_set = set(known)
    (u_lo, v_lo), (u_hi, v_hi) = pts.min(0).astype(int), pts.max(0).astype(int)
    return [(u, v) for u in range(u_lo, u_hi + 1) for v in range(v_lo, v_hi + 1)
            if (u, v) not in known_set and _inside_halfopen(hull, u, v)]


# ----------------------------------------------------------------------------------------- builder

def _stride(pattern, type_name: str) -> tuple[int, int] | None:
    kind, arg = pattern
    if kind == "stride":
        return int(arg[0]), int(arg[1])
    if kind == "tile":
        return int(arg), int(arg)
    if kind == "single":
        return None
    raise ValueError(f"connectome node {type_name!r}: unknown pattern {pattern!r}")


def _build_nodes(spec: dict, extent: int):
    hu, hv = hex_coords(extent)
    node_type, node_u, node_v = [], [], []
    lookup = {}  # type -> (2E+1, 2E+1) array of node index or -1
    for t, node in enumerate(spec["nodes"]):
        stride = _stride(node["pattern"], node["name"])
        keep = (hu == 0) & (hv == 0) if stride is None else (hu % stride[0] == 0) & (hv % stride[1] == 0)
        start = len(node_type)
        table = np.full((2 * extent + 1, 2 * extent + 1), -1, np.int64)
        table[hu[keep] + extent, hv[keep] + extent] = start + np.arange(int(keep.sum()))
        lookup[node["name"]] = table
        node_type += [t] * int(keep.sum())
        node_u += hu[keep].tolist()
        node_v += hv[keep].tolist()
    return np.asarray(node_type, np.int32), np.asarray(node_u, np.int32), np.asarray(node_v, np.int32), lookup


def _entry_offsets(entry: dict) -> list[tuple[int, int, float]]:
    known = [(int(o[0][0]), int(o[0][1]), float(o[1])) for o in entry["offsets"]]
    fills = fill_offsets([(u, v) for u, v, _ in known])
    return known + [(u, v, 1.0) for u, v in fills]


def build_from_spec(spec: dict, extent: int = 8) -> Connectome:
    """Build the network from an already-parsed connectome JSON dict."""
    if extent < 1:
        raise ValueError(f"extent must be >= 1, got {extent}")
    names = [n["name"] for n in spec["nodes"]]
    type_of = {n: i for i, n in enumerate(names)}
    node_type, node_u, node_v, lookup = _build_nodes(spec, extent)
    src_chunks, dst_chunks, etype_chunks, group_chunks = [], [], [], []
    et_src, et_dst, et_sign, g_et, g_du, g_dv, g_nsyn = [], [], [], [], [], [], []
    for entry in spec["edges"]:
        s_type, t_type = type_of[entry["src"]], type_of[entry["tar"]]
        src_nodes = np.flatnonzero(node_type == s_type)
        su, sv = node_u[src_nodes] + extent, node_v[src_nodes] + extent
        table = lookup[entry["tar"]]
        et_index = len(et_sign)
        produced = False
        for du, dv, n_syn in _entry_offsets(entry):
            tu, tv = su + du, sv + dv
            ok = (tu >= 0) & (tu <= 2 * extent) & (tv >= 0) & (tv <= 2 * extent)
            tgt = np.full(len(src_nodes), -1, np.int64)
            tgt[ok] = table[tu[ok], tv[ok]]
            keep = tgt >= 0
            if not keep.any():
                continue
            produced = True
            src_chunks.append(src_nodes[keep])
            dst_chunks.append(tgt[keep])
            etype_chunks.append(np.full(int(keep.sum()), et_index))
            group_chunks.append(np.full(int(keep.sum()), len(g_nsyn)))
            g_et.append(et_index), g_du.append(du), g_dv.append(dv), g_nsyn.append(n_syn)
        if produced:
            et_src.append(s_type), et_dst.append(t_type), et_sign.append(float(entry["alpha"]))
    hu, hv = hex_coords(extent)
    inputs = [type_of[name] for name in spec["input_units"]]
    input_index = np.stack([lookup[names[t]][hu + extent, hv + extent] for t in inputs])
    if (input_index < 0).any():
        raise ValueError("input cell types must have one node per hexal (stride 1)")
    roles = tuple("input" if n in spec["input_units"] else "output" if n in spec["output_units"]
                  else "intermediate" for n in names)
    i32 = lambda a: np.asarray(a, np.int32)  # noqa: E731
    return Connectome(
        extent=extent, type_names=tuple(names), type_role=roles,
        node_type=node_type, node_u=node_u, node_v=node_v,
        edge_src=i32(np.concatenate(src_chunks)), edge_dst=i32(np.concatenate(dst_chunks)),
        edge_type=i32(np.concatenate(etype_chunks)), edge_group=i32(np.concatenate(group_chunks)),
        edge_type_src_type=i32(et_src), edge_type_dst_type=i32(et_dst),
        edge_type_sign=np.asarray(et_sign, np.float32),
        group_edge_type=i32(g_et), group_du=i32(g_du), group_dv=i32(g_dv),
        group_n_syn=np.asarray(g_nsyn, np.float32),
        hex_u=hu, hex_v=hv, input_node_index=i32(input_index),
    )


def load_spec(path: str | Path | None = None, download: bool = True) -> dict:
    """Parse the connectome JSON (located with :func:`connectome_json_path` when ``path`` is None)."""
    path = Path(path) if path is not None else connectome_json_path(download=download)
    with open(path) as f:
        return json.load(f)


_CACHE: dict[int, Connectome] = {}


def build_connectome(extent: int = 8, path: str | Path | None = None, download: bool = True) -> Connectome:
    """Build (and memoise per extent, for the default JSON) the flyvis network at ``extent``."""
    if path is None and extent in _CACHE:
        return _CACHE[extent]
    result = build_from_spec(load_spec(path, download), extent)
    if path is None:   # shared by every caller: read-only, so no caller can change it for the others
        for value in vars(result).values():
            if isinstance(value, np.ndarray):
                value.setflags(write=False)
        _CACHE[extent] = result
    return result


def to_jraph(conn: Connectome, node_features=None, edge_features=None):
    """The graph as a ``jraph.GraphsTuple`` (interop only; needs the ``interop`` extra).

    Defaults: node features = cell type (N, 1), edge features = sign * n_syn (E, 1).
    """
    try:
        import jraph
    except ImportError:
        raise ImportError("to_jraph needs jraph: pip install 'fvjax[interop]'") from None
    import jax.numpy as jnp

    nodes = conn.node_type[:, None] if node_features is None else node_features
    edges = (conn.edge_sign * conn.edge_n_syn)[:, None] if edge_features is None else edge_features
    return jraph.GraphsTuple(nodes=jnp.asarray(nodes), edges=jnp.asarray(edges),
                             senders=jnp.asarray(conn.edge_src), receivers=jnp.asarray(conn.edge_dst),
                             n_node=jnp.asarray([conn.n_nodes]), n_edge=jnp.asarray([conn.n_edges]),
                             globals=None)
