"""Figures (matplotlib): every function returns a pyplot-free Figure; never calls show(), never changes
the backend, never closes the user's figures."""

from __future__ import annotations

import numpy as np

from ..connectome import Connectome


def _figure(figsize):
    """A Figure not registered with pyplot: no global backend switch, nothing to close, safe in
    notebooks and headless runs alike (``fig.savefig`` works on its own)."""
    from matplotlib.figure import Figure

    return Figure(figsize=figsize)

DEFAULT_TYPES = ("R1", "L1", "Mi1", "Tm3", "T4a", "T5a")


def hex_positions(u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Plot coordinates in the BoxEye orientation (flyvis ``hex_to_pixel``): x = 1.5 v, y = -sqrt(3)(u + v/2)."""
    return 1.5 * v, -np.sqrt(3) * (u + v / 2)


def activity_overview(conn: Connectome, luminance: np.ndarray, voltage: np.ndarray, dt: float = 0.02,
                      types: tuple[str, ...] = DEFAULT_TYPES, frame: int | None = None):
    """Stimulus frame on the lattice + voltage of the central column of ``types`` over time.

    ``luminance``: (T, n_hex); ``voltage``: (T, N).
    """

    frame = len(luminance) // 2 if frame is None else frame
    fig = _figure((10, 3.6))
    (ax_hex, ax_tr) = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1, 2.4]})
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


def recovery_panel(gt_W, W_star, gt_tau, tau_hat, gt_vrest, vrest_hat, metrics: dict):
    """Learned vs true: corrected W (edges), tau and V_rest (neurons)."""

    fig = _figure((12, 3.8))
    axes = fig.subplots(1, 3)
    panels = [(gt_W, W_star, "W", metrics.get("connectivity_R2")), (gt_tau, tau_hat, "tau", metrics.get("tau_R2")),
              (gt_vrest, vrest_hat, "V_rest", metrics.get("V_rest_R2"))]
    for ax, (true, learned, name, r2) in zip(axes, panels):
        n = len(true)
        pick = np.random.default_rng(0).choice(n, min(n, 50_000), replace=False)
        ax.scatter(np.asarray(true)[pick], np.asarray(learned)[pick], s=1, alpha=0.3, rasterized=True)
        ax.set_xlabel(f"true {name}")
        ax.set_ylabel(f"learned {name}")
        ax.set_title(f"{name}: R2 = {r2:.3f}" if r2 is not None else name, fontsize=10)
    fig.tight_layout()
    return fig


def embedding_plot(a, node_type, n_types: int):

    fig = _figure((5, 4.5))
    ax = fig.subplots()
    a = np.asarray(a)
    ax.scatter(a[:, 0], a[:, 1] if a.shape[1] > 1 else np.zeros(len(a)), c=node_type,
               cmap="nipy_spectral", vmin=0, vmax=n_types - 1, s=2, rasterized=True)
    ax.set_xlabel("a_0")
    ax.set_ylabel("a_1")
    ax.set_title("embeddings, coloured by cell type", fontsize=10)
    fig.tight_layout()
    return fig


def function_curves(g_curves, f_curves, grid, node_type, n_types: int):
    """g_phi(v, a_i)^2 and f_theta(v, a_i, 0, 0) for one neuron per type; curves (n_types, P)."""

    fig = _figure((10, 3.8))
    (ax_g, ax_f) = fig.subplots(1, 2)
    from matplotlib import colormaps

    cmap = colormaps["nipy_spectral"]
    for t in range(n_types):
        ax_g.plot(grid, g_curves[t], color=cmap(t / max(n_types - 1, 1)), lw=0.8)
        ax_f.plot(grid, f_curves[t], color=cmap(t / max(n_types - 1, 1)), lw=0.8)
    ax_g.set_title("g_phi(v, a)^2 per type", fontsize=10)
    ax_f.set_title("f_theta(v, a, msg=0, e=0) per type", fontsize=10)
    for ax in (ax_g, ax_f):
        ax.set_xlabel("v")
    fig.tight_layout()
    return fig


def loss_curves(history: list[dict], during: list[dict] | None = None):

    fig = _figure((10, 3.6))
    (ax_l, ax_m) = fig.subplots(1, 2)
    wall = [h["wall_s"] for h in history]
    for key in ("data", "W_L1", "W_L2", "g_phi_diff", "g_phi_norm", "g_phi_weight", "f_theta_weight",
                "f_theta_additive", "g_phi_zero", "g_phi_linear"):
        if history and key in history[0]:
            ax_l.plot(wall, [max(h[key], 1e-12) for h in history], label=key, lw=1)
    ax_l.set_yscale("log")
    ax_l.set_xlabel("wall time [s]")
    ax_l.set_ylabel("loss term")
    if history:
        ax_l.legend(fontsize=7, frameon=False)
    for key in ("connectivity_R2", "connectivity_R2_data", "tau_R2", "V_rest_R2", "V_rest_R2_data", "V_rest_R2_offset",
                "connectivity_r2", "tau_r2", "vrest_r2"):   # (lower case: runs written before 2026-12-01)
        if during and key in during[0]:
            ax_m.plot([d["iteration"] for d in during], [d[key] for d in during], marker="o", label=key)
    ax_m.set_ylim(-0.05, 1.05)
    ax_m.set_xlabel("iteration")
    ax_m.set_ylabel("R²")
    if during:
        ax_m.legend(fontsize=8, frameon=False)
    fig.tight_layout()
    return fig


def _robust_limits(*arrays, pad: float = 0.08):
    """Shared axis limits from the 1st-99th percentiles, so a few outliers do not squash the rest."""
    values = np.concatenate([np.asarray(a, float).ravel() for a in arrays])
    values = values[np.isfinite(values)]
    lo, hi = np.percentile(values, [1, 99]) if len(values) else (0.0, 1.0)
    span = (hi - lo) or 1.0
    return lo - pad * span, hi + pad * span


def per_type_figure(table, metrics: dict | None = None, n_labels: int = 6):
    """Talk-ready per-cell-type summary of a run (``Run.per_type``): learned vs true tau and V_rest
    (one point per type, identity line, the worst ``n_labels`` types named, robust limits) and the
    R^2 of the corrected W into each type, sorted."""
    metrics = metrics or {}
    fig = _figure((15, 4.4))
    ax_tau, ax_v, ax_w = fig.subplots(1, 3, gridspec_kw={"width_ratios": [1, 1, 1.8]})
    for ax, key, unit, metric in ((ax_tau, "tau", " [s]", "tau_R2"), (ax_v, "V_rest", " [a.u.]", "V_rest_R2")):
        true, learned = table[f"{key}_true"].to_numpy(float), table[f"{key}_learned"].to_numpy(float)
        lo, hi = _robust_limits(true, learned)
        ax.plot([lo, hi], [lo, hi], color="0.6", lw=1, zorder=0)
        ax.scatter(np.clip(true, lo, hi), np.clip(learned, lo, hi), s=18, c=np.arange(len(table)),
                   cmap="nipy_spectral")
        for i in np.argsort(-np.abs(learned - true))[:n_labels]:
            ax.annotate(table["type"].iloc[i], (np.clip(true[i], lo, hi), np.clip(learned[i], lo, hi)),
                        fontsize=7, xytext=(3, 3), textcoords="offset points")
        ax.set_xlim(lo, hi)
        ax.set_ylim(lo, hi)
        ax.set_xlabel(f"true {key}{unit}")
        ax.set_ylabel(f"learned {key}{unit} (median over the type)")
        r2 = metrics.get(metric)
        ax.set_title(f"{key} per cell type" + (f" (per-neuron R² {r2:.3f})" if r2 is not None else ""), fontsize=10)
    order = np.argsort(table["W_R2"].to_numpy(float))
    ax_w.bar(np.arange(len(order)), table["W_R2"].to_numpy(float)[order], color="tab:blue")
    ax_w.set_xticks(np.arange(len(order)))
    ax_w.set_xticklabels(table["type"].to_numpy()[order], rotation=90, fontsize=6)
    ax_w.set_ylim(0, 1)
    ax_w.set_ylabel("R² of W* into the type")
    r2 = metrics.get("connectivity_R2")
    ax_w.set_title("connectivity per target type" + (f" (all edges R² {r2:.3f})" if r2 is not None else ""),
                   fontsize=10)
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------------------------ tuning
TUNING_COLORS = {"T4": "tab:orange", "T5": "tab:blue"}   # ON and OFF motion detectors
MOTION_TYPES = tuple(f"T{k}{s}" for k in (4, 5) for s in "abcd")


def dsi_scatter(names, dsi_true, dsi_recovered, title: str = "direction selectivity per cell type"):
    """Recovered vs true DSI, one point per cell type; T4a-d (orange) and T5a-d (blue) named. Types
    whose DSI is undefined (no response) are left out."""
    fig = _figure((4.8, 4.6))
    ax = fig.subplots()
    ax.plot([0, 1], [0, 1], color="0.7", lw=1, zorder=0)
    true, rec = np.asarray(dsi_true, float), np.asarray(dsi_recovered, float)
    for i, name in enumerate(names):
        if not (np.isfinite(true[i]) and np.isfinite(rec[i])):
            continue
        color = TUNING_COLORS[name[:2]] if name in MOTION_TYPES else None
        ax.scatter(true[i], rec[i], s=30 if color else 12, color=color or "0.55", zorder=2)
        if color:
            ax.annotate(name, (true[i], rec[i]), fontsize=7, xytext=(3, 2), textcoords="offset points")
    ax.set_xlim(-0.03, 1.03)
    ax.set_ylim(-0.03, 1.03)
    ax.set_aspect("equal")
    ax.set_xlabel("DSI of the true circuit")
    ax.set_ylabel("DSI of the recovered model")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def tuning_polar(names, peaks_true, peaks_recovered, angles, contrast, types):
    """Polar tuning curves of ``types``: peak response (mean over speeds, each curve scaled to its
    maximum) per direction of the edge of contrast ``contrast[type index]`` (0 = ON, 1 = OFF);
    true solid, recovered dashed. ``peaks_*``: (contrast, speed, angle, type)."""
    fig = _figure((2.3 * min(len(types), 4), 2.5 * -(-len(types) // 4)))
    theta = np.deg2rad(np.append(angles, angles[0]))
    for k, name in enumerate(types):
        ax = fig.add_subplot(-(-len(types) // 4), min(len(types), 4), k + 1, projection="polar")
        t = list(names).index(name)
        c = int(contrast[t])
        for peaks, style, label in ((peaks_true, "-", "true"), (peaks_recovered, "--", "recovered")):
            r = np.asarray(peaks, float)[c, :, :, t].mean(0)
            r = r / r.max() if r.max() > 0 else r
            ax.plot(theta, np.append(r, r[0]), style, color="k" if label == "true" else "tab:red", label=label)
        ax.set_title(f"{name} ({'ON' if c == 0 else 'OFF'} edges)", fontsize=9)
        ax.set_yticklabels([])
        ax.tick_params(labelsize=6)
    fig.axes[0].legend(fontsize=7, loc="lower left", bbox_to_anchor=(-0.35, -0.25), frameon=False)
    fig.tight_layout()
    return fig


def edge_responses(names, traces_true, traces_recovered, base_true, base_recovered, angles, contrast, speed: int,
                   dt: float, n_pre: int, types):
    """Central-column responses (v - v_rest) of ``types`` to the edge of their contrast at speed
    index ``speed`` moving in the true preferred direction (dark) and the opposite one (light); true
    solid, recovered dashed. ``traces_*``: (contrast, speed, angle, frame, type)."""
    cols = 4
    fig = _figure((3.0 * cols, 2.1 * -(-len(types) // cols)))
    axes = np.atleast_1d(fig.subplots(-(-len(types) // cols), cols, sharex=True)).ravel()
    n_angles = len(angles)
    for ax, name in zip(axes, types):
        t = list(names).index(name)
        c = int(contrast[t])
        true = np.asarray(traces_true)[c, speed, :, :, t] - base_true[t]
        rec = np.asarray(traces_recovered)[c, speed, :, :, t] - base_recovered[t]
        pd = int(np.nanargmax(np.nanmax(true, 1)))
        time = (np.arange(true.shape[1]) - n_pre) * dt
        for a, shade, which in ((pd, 1.0, "preferred"), ((pd + n_angles // 2) % n_angles, 0.45, "opposite")):
            ax.plot(time, true[a], color=(0, 0, 0, shade), lw=1.2, label=f"true, {which}")
            ax.plot(time, rec[a], "--", color=(0.84, 0.15, 0.16, shade), lw=1.2, label=f"recovered, {which}")
        ax.axhline(0, color="0.8", lw=0.5, zorder=0)
        ax.set_title(f"{name} ({'ON' if c == 0 else 'OFF'} edge, preferred {angles[pd]:.0f}°)", fontsize=9)
        ax.tick_params(labelsize=7)
    for ax in axes[len(types):]:
        ax.axis("off")
    axes[0].legend(fontsize=6, frameon=False)
    fig.supxlabel("time from edge onset [s]", fontsize=9)
    fig.supylabel("v − v_rest", fontsize=9)
    fig.tight_layout()
    return fig
