"""Figures (matplotlib, Agg-safe; every function returns the Figure and never calls show())."""

from __future__ import annotations

import numpy as np

from .connectome import Connectome

DEFAULT_TYPES = ("R1", "L1", "Mi1", "Tm3", "T4a", "T5a")


def hex_positions(u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Plot coordinates in the BoxEye orientation (flyvis ``hex_to_pixel``): x = 1.5 v, y = -sqrt(3)(u + v/2)."""
    return 1.5 * v, -np.sqrt(3) * (u + v / 2)


def activity_overview(conn: Connectome, luminance: np.ndarray, voltage: np.ndarray, dt: float = 0.02,
                      types: tuple[str, ...] = DEFAULT_TYPES, frame: int | None = None):
    """Stimulus frame on the lattice + voltage of the central column of ``types`` over time.

    ``luminance``: (T, n_hex); ``voltage``: (T, N).
    """
    import matplotlib.pyplot as plt

    frame = len(luminance) // 2 if frame is None else frame
    fig, (ax_hex, ax_tr) = plt.subplots(1, 2, figsize=(10, 3.6), gridspec_kw={"width_ratios": [1, 2.4]})
    x, y = hex_positions(conn.hex_u, conn.hex_v)
    ax_hex.scatter(x, y, c=luminance[frame], cmap="gray", vmin=0, vmax=1, s=38, marker="h")
    ax_hex.set_aspect("equal")
    ax_hex.axis("off")
    ax_hex.set_title(f"photoreceptor input, frame {frame}", fontsize=9)
    t = np.arange(len(voltage)) * dt
    centre = (conn.node_u == 0) & (conn.node_v == 0)
    for name in types:
        node = np.flatnonzero(centre & (conn.node_type == conn.type_index(name)))[0]
        ax_tr.plot(t, voltage[:, node], lw=1, label=name)
    ax_tr.axvline(frame * dt, color="k", lw=0.5, ls=":")
    ax_tr.set_xlabel("time [s]")
    ax_tr.set_ylabel("voltage (central column)")
    ax_tr.legend(ncol=3, fontsize=8, frameon=False)
    fig.tight_layout()
    return fig
