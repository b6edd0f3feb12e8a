"""Controlled stimuli of visual neuroscience, drawn directly on the hex lattice: moving edges, moving
bars, full-field flashes and drifting gratings. Each returns hexal luminance (n_frames, n_hex), the
array the simulator consumes (``fvjax.simulate.expand_frame`` copies it to the 8 photoreceptor types).

Geometry: hexal (u, v) sits at x = (sqrt(3)/2) v, y = -(u + v/2), in columns (neighbours 1 apart),
the orientation of :func:`fvjax.evaluate.plots.hex_positions` (x right, y up). ``angle`` (degrees,
counterclockwise from +x) is the direction of motion; ``speed`` is in columns per second (flyvis's
ommatidia per second); widths and periods are in columns. A hexal's distance along the motion axis
is d = x cos(angle) + y sin(angle); it integrates a window one column wide along that axis, so an
edge turns a hexal over linearly while it crosses the window (no jumps at slow speeds) and a grating
is attenuated by sinc(1 / period). Frame k is at time k dt.
"""

from __future__ import annotations

import math

import numpy as np

from ..connectome.hexlattice import hex_coords


def hex_xy(extent: int) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) of every hexal in canonical order, in columns (float64)."""
    u, v = (np.asarray(c, np.float64) for c in hex_coords(extent))
    return np.sqrt(3) / 2 * v, -(u + v / 2)


def axis_distance(extent: int, angle: float) -> np.ndarray:
    """d = x cos(angle) + y sin(angle) per hexal: distance along the motion direction (columns)."""
    x, y = hex_xy(extent)
    rad = np.deg2rad(angle)
    return x * np.cos(rad) + y * np.sin(rad)


def covered(lo: np.ndarray, hi: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Overlap of [lo, hi] with each hexal's window [d - 1/2, d + 1/2] (0..1)."""
    return np.clip(np.minimum(hi, d + 0.5) - np.maximum(lo, d - 0.5), 0.0, 1.0)


def _frames(n: int, value: float, n_hex: int) -> np.ndarray:
    return np.full((n, n_hex), value, np.float64)


def n_frames(seconds: float, dt: float) -> int:
    """Whole frames in ``seconds`` (rounded)."""
    return int(round(seconds / dt))


def sweep_frames(travel: float, speed: float, dt: float) -> int:
    """Frames an edge or bar takes to travel ``travel`` columns at ``speed``: its position at frame
    k is start + speed dt k, k = 0 .. n - 1, and the last frame reaches the end."""
    if speed <= 0 or dt <= 0:
        raise ValueError(f"speed and dt must be positive, got speed={speed}, dt={dt}")
    return int(math.ceil(travel / (speed * dt) - 1e-9)) + 1


def edge_travel(extent: int) -> float:
    """An edge starts half a column outside the field (no hexal touched) and stops half a column
    beyond the far side (every hexal turned over): 2 extent + 1 columns."""
    return 2 * extent + 1.0


def moving_edge(intensity: float, angle: float, speed: float, extent: int = 8, dt: float = 0.02,
                t_pre: float = 0.5, t_post: float = 0.5, background: float = 0.5) -> np.ndarray:
    """An edge of luminance ``intensity`` (ON: above ``background``, OFF: below) sweeping over a
    ``background`` field in direction ``angle``: ``t_pre`` s of background, the sweep (position
    p_k = -(extent + 1/2) + speed dt k; hexal value background + (intensity - background) x
    covered(-inf, p_k)), then ``t_post`` s with the whole field at ``intensity``."""
    d = axis_distance(extent, angle)
    k = np.arange(sweep_frames(edge_travel(extent), speed, dt))
    p = -(extent + 0.5) + speed * dt * k
    sweep = background + (intensity - background) * covered(np.full_like(p, -np.inf)[:, None], p[:, None], d[None])
    return np.concatenate([_frames(n_frames(t_pre, dt), background, len(d)), sweep,
                           _frames(n_frames(t_post, dt), intensity, len(d))]).astype(np.float32)


def moving_bar(intensity: float, width: float, angle: float, speed: float, extent: int = 8, dt: float = 0.02,
               t_pre: float = 0.5, t_post: float = 0.5, background: float = 0.5) -> np.ndarray:
    """A bar ``width`` columns wide (its long axis across the motion) crossing the whole field: its
    centre p_k = -(extent + width/2 + 1/2) + speed dt k, hexal value background + (intensity -
    background) x covered(p_k - width/2, p_k + width/2); background before and after."""
    d = axis_distance(extent, angle)
    start = extent + width / 2 + 0.5
    p = -start + speed * dt * np.arange(sweep_frames(2 * start, speed, dt))
    sweep = background + (intensity - background) * covered(p[:, None] - width / 2, p[:, None] + width / 2, d[None])
    return np.concatenate([_frames(n_frames(t_pre, dt), background, len(d)), sweep,
                           _frames(n_frames(t_post, dt), background, len(d))]).astype(np.float32)


def flash(intensity: float, extent: int = 8, dt: float = 0.02, t_pre: float = 0.5, t_stim: float = 1.0,
          t_post: float = 0.5, background: float = 0.5) -> np.ndarray:
    """Full-field flash: ``background`` for t_pre, ``intensity`` for t_stim, background for t_post."""
    n_hex = len(hex_coords(extent)[0])
    return np.concatenate([_frames(n_frames(t_pre, dt), background, n_hex),
                           _frames(n_frames(t_stim, dt), intensity, n_hex),
                           _frames(n_frames(t_post, dt), background, n_hex)]).astype(np.float32)


def grating(period: float, angle: float, speed: float, extent: int = 8, dt: float = 0.02, duration: float = 2.0,
            contrast: float = 0.5, background: float = 0.5, t_pre: float = 0.0) -> np.ndarray:
    """Drifting sine grating moving in direction ``angle`` at ``speed`` (temporal frequency speed /
    period): background + contrast sinc(1/period) cos(2 pi (d - speed t) / period), t = k dt from
    the end of ``t_pre`` s of background; ``duration`` s of drift."""
    d = axis_distance(extent, angle)
    t = np.arange(n_frames(duration, dt))[:, None] * dt
    drift = background + contrast * np.sinc(1.0 / period) * np.cos(2 * np.pi * (d[None] - speed * t) / period)
    return np.concatenate([_frames(n_frames(t_pre, dt), background, len(d)), drift]).astype(np.float32)
