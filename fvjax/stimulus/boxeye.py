"""flyvis BoxEye rendering: image frames -> luminance per hexal (box mean sampled at receptor centres).

Receptor of hexal (u, v) sits at pixel ``row = H//2 + trunc(k*(u + v/2))``, ``col = W//2 + k*v``
(k = kernel size = 13 px). Each value is the mean over the k x k window centred there, with zero
padding outside the frame (flyvis pads by k//2 and convolves with ones/k^2).
"""

from __future__ import annotations

import numpy as np

from ..connectome.hexlattice import hex_coords

KERNEL = 13


def receptor_pixels(extent: int, height: int, width: int, kernel: int = KERNEL) -> tuple[np.ndarray, np.ndarray]:
    """(rows, cols) pixel centres of the hexals, in canonical hexal order."""
    u, v = hex_coords(extent)
    rows = height // 2 + np.trunc(kernel * (u + v / 2)).astype(np.int64)
    cols = width // 2 + kernel * v.astype(np.int64)
    return rows, cols


def min_frame_size(extent: int, kernel: int = KERNEL) -> int:
    """Smallest square frame whose receptor centres all fall inside it (209 for extent 8)."""
    return 2 * kernel * extent + 1


def render(frames: np.ndarray, extent: int = 8, kernel: int = KERNEL) -> np.ndarray:
    """BoxEye of ``frames`` (..., H, W) -> (..., n_hex) float32.

    Frames must be large enough for every receptor centre (>= 209 x 209 at extent 8); flyvis would
    resize smaller frames, fvjax refuses them so nothing is silently rescaled.
    """
    frames = np.asarray(frames, np.float32)
    if frames.ndim < 2:
        raise ValueError(f"frames must have shape (..., H, W), got {frames.shape}")
    height, width = frames.shape[-2:]
    rows, cols = receptor_pixels(extent, height, width, kernel)
    if rows.min() < 0 or cols.min() < 0 or rows.max() >= height or cols.max() >= width:
        raise ValueError(
            f"frames of {height}x{width} px are too small for BoxEye(extent={extent}, kernel={kernel}); "
            f"crop or resize them to at least {min_frame_size(extent, kernel)}x{min_frame_size(extent, kernel)}"
        )
    half = kernel // 2
    pad = [(0, 0)] * (frames.ndim - 2) + [(half + 1, half), (half + 1, half)]
    integral = np.pad(frames.astype(np.float64), pad).cumsum(-2).cumsum(-1)
    # window rows r-half..r+half -> padded indices r+1..r+2*half+1, minus row r (integral exclusive)
    r0, r1, c0, c1 = rows, rows + 2 * half + 1, cols, cols + 2 * half + 1
    total = integral[..., r1, c1] - integral[..., r0, c1] - integral[..., r1, c0] + integral[..., r0, c0]
    return (total / kernel**2).astype(np.float32)


def window_pixels(extent: int, size: int, kernel: int = KERNEL) -> np.ndarray:
    """Pixel (row, col) of every receptor-window pixel of a ``size`` x ``size`` frame, centred on the
    frame: shape (2, n_hex, kernel*kernel), relative to the frame centre ((size-1)/2). The mean over
    the last axis of a frame sampled there equals :func:`render` when no window leaves the frame."""
    rows, cols = receptor_pixels(extent, size, size, kernel)
    half = kernel // 2
    dr, dc = np.mgrid[-half:half + 1, -half:half + 1].reshape(2, -1)
    pix = np.stack([rows[:, None] + dr[None], cols[:, None] + dc[None]]).astype(np.float32)
    if pix.min() < 0 or pix.max() >= size:
        raise ValueError(f"receptor windows leave a {size}px frame at extent {extent}")
    return pix - (size - 1) / 2
