"""Hexagonal lattice helpers (axial coordinates u, v) in flyvis's canonical order."""

from __future__ import annotations

import numpy as np


def hex_coords(extent: int) -> tuple[np.ndarray, np.ndarray]:
    """All (u, v) with |u|, |v|, |u+v| <= extent; u ascending, then v ascending."""
    u, v = [], []
    for uu in range(-extent, extent + 1):
        for vv in range(max(-extent, -extent - uu), min(extent, extent - uu) + 1):
            u.append(uu)
            v.append(vv)
    return np.asarray(u, np.int32), np.asarray(v, np.int32)


def n_hexals(extent: int) -> int:
    return 3 * extent * (extent + 1) + 1


def _permutation(u: np.ndarray, v: np.ndarray, new_u: np.ndarray, new_v: np.ndarray) -> np.ndarray:
    """Index array p with frame_new[i] = frame_old[p[i]] for hexal values moved (u,v)->(new_u,new_v)."""
    position = {(int(a), int(b)): i for i, (a, b) in enumerate(zip(new_u, new_v))}
    # value at old hexal j lands on new position (new_u[j], new_v[j]); invert to gather form
    p = np.empty(len(u), np.int64)
    for j, (a, b) in enumerate(zip(u, v)):
        p[position[(int(a), int(b))]] = j
    return p


def rotation_permutation(extent: int, n_steps: int) -> np.ndarray:
    """Gather index that rotates a hexal frame by ``n_steps`` x 60 degrees, (u,v) -> (-v, u+v)."""
    u, v = hex_coords(extent)
    ru, rv = u.copy(), v.copy()
    for _ in range(n_steps % 6):
        ru, rv = -rv, ru + rv
    return _permutation(u, v, ru, rv)


_FLIPS = {
    1: lambda u, v: (u + v, -v),
    2: lambda u, v: (-u, u + v),
    3: lambda u, v: (-v, -u),
}


def flip_permutation(extent: int, axis: int) -> np.ndarray:
    """Gather index for one of the three hex flips (axis 1, 2, 3); axis 0 is the identity."""
    u, v = hex_coords(extent)
    if axis == 0:
        return np.arange(len(u))
    if axis not in _FLIPS:
        raise ValueError(f"flip axis must be 0, 1, 2 or 3, got {axis}")
    fu, fv = _FLIPS[axis](u, v)
    return _permutation(u, v, fu, fv)
