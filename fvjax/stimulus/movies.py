"""Embedded stimulus movies (no download): natural-image movies and synthetic classics.

Every generator returns one sequence as an array (n_frames, n_hex) of luminance in [0, 1], rendered
through BoxEye from full frames (except white noise, which is defined per hexal).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..connectome.hexlattice import hex_coords
from .boxeye import KERNEL, render, window_pixels

# skimage.data images that ship inside the scikit-image wheel (no download needed).
# Fixed split (the same for every seed, so test metrics compare across seeds): the last 4 are test.
NATURAL_IMAGES = ("astronaut", "camera", "chelsea", "rocket", "coins", "horse", "hubble_deep_field",
                  "retina", "brick", "grass", "immunohistochemistry", "cell",
                  "coffee", "moon", "gravel", "clock")
NATURAL_TEST_IMAGES = NATURAL_IMAGES[12:]


def frame_size(extent: int, kernel: int = KERNEL) -> int:
    """Square frame that holds every receptor window without zero padding (221 px at extent 8)."""
    return 2 * kernel * extent + kernel


def luminance(rgb: np.ndarray) -> np.ndarray:
    """0.299 R + 0.587 G + 0.114 B of an (..., 3|4) image already scaled to [0, 1]; gray passes."""
    rgb = np.asarray(rgb, np.float32)
    if rgb.ndim == 2:
        return rgb
    return rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114


def load_natural_image(name: str) -> np.ndarray:
    """A scikit-image sample image as float32 luminance in [0, 1]."""
    import skimage.data

    if name not in NATURAL_IMAGES:
        raise KeyError(f"unknown natural image {name!r}; choose from {', '.join(NATURAL_IMAGES)}")
    img = np.asarray(getattr(skimage.data, name)())
    scale = 65535.0 if img.dtype == np.uint16 else 255.0 if img.dtype == np.uint8 else 1.0
    lum = luminance(img[..., :3] / scale if img.ndim == 3 else img / scale)
    return np.clip(lum, 0.0, 1.0).astype(np.float32)


def _frame_grid(size: int) -> np.ndarray:
    half = (size - 1) / 2
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) - half
    return np.stack([y, x])  # (2, size, size)


def natural_sequence(image: np.ndarray, rng: np.random.Generator, n_frames: int, extent: int = 8,
                     kernel: int = KERNEL) -> np.ndarray:
    """Pan, zoom and rotate over ``image`` along a smooth random path, rendered through BoxEye.

    Per sequence: image-pixels-per-frame-pixel scale from U(0.5, 1.5) drifting by up to x/exp(0.3);
    rotation from U(0, 2 pi) turning at N(0, 0.02) rad/frame; the view centre starts uniformly inside
    the image and moves at N(0, 2) image px/frame (mirrored at the borders). Frames of
    :func:`frame_size` px are sampled bilinearly, only where receptor windows look (identical to
    rendering the whole frame, since no window reaches the frame edge).
    """
    pix = window_pixels(extent, frame_size(extent, kernel), kernel)
    n_hex = pix.shape[1]
    grid = pix.reshape(2, -1)
    t = np.arange(n_frames, dtype=np.float32)
    scale = rng.uniform(0.5, 1.5) * np.exp(rng.uniform(-0.3, 0.3) * t / max(n_frames - 1, 1))
    angle = rng.uniform(0, 2 * np.pi) + rng.normal(0, 0.02) * t
    centre = rng.uniform(0, 1, 2) * np.asarray(image.shape[:2]) + rng.normal(0, 2.0, 2) * t[:, None]
    c, s = np.cos(angle) * scale, np.sin(angle) * scale
    rot = np.stack([np.stack([c, -s], -1), np.stack([s, c], -1)], -2)  # (T, 2, 2)
    coords = np.einsum("tij,jp->itp", rot, grid) + centre.T[:, :, None]
    values = ndimage.map_coordinates(image, coords.reshape(2, -1), order=1, mode="mirror")
    return np.clip(values.reshape(n_frames, n_hex, -1).mean(-1), 0.0, 1.0).astype(np.float32)


def _plane_coords(size: int) -> tuple[np.ndarray, np.ndarray]:
    y, x = _frame_grid(size)
    return x, -y  # x right, y up


def grating_sequence(rng: np.random.Generator, n_frames: int, extent: int = 8, kernel: int = KERNEL,
                     dt: float = 0.02) -> np.ndarray:
    """Drifting sine grating: random direction, wavelength U(30, 90) px, 0.5-3 Hz, contrast 0.2-0.5."""
    x, y = _plane_coords(frame_size(extent, kernel))
    theta, wavelength = rng.uniform(0, 2 * np.pi), rng.uniform(30, 90)
    freq, contrast = rng.uniform(0.5, 3.0), rng.uniform(0.2, 0.5)
    proj = (np.cos(theta) * x + np.sin(theta) * y) / wavelength
    t = np.arange(n_frames)[:, None, None] * dt
    frames = 0.5 + contrast * np.sin(2 * np.pi * (proj[None] - freq * t))
    return render(frames, extent, kernel)


def bar_sequence(rng: np.random.Generator, n_frames: int, extent: int = 8, kernel: int = KERNEL) -> np.ndarray:
    """A bright or dark bar (width 10-40 px) sweeping across a grey field in a random direction."""
    size = frame_size(extent, kernel)
    x, y = _plane_coords(size)
    theta, width = rng.uniform(0, 2 * np.pi), rng.uniform(10, 40)
    level = rng.choice([0.0, 1.0])
    proj = np.cos(theta) * x + np.sin(theta) * y
    pos = np.linspace(-size / 2 - width, size / 2 + width, n_frames)
    inside = np.abs(proj[None] - pos[:, None, None]) < width / 2
    frames = np.where(inside, level, 0.5)
    return render(frames, extent, kernel)


def flash_sequence(rng: np.random.Generator, n_frames: int, extent: int = 8, kernel: int = KERNEL) -> np.ndarray:
    """Full-field flashes: luminance levels U(0, 1) held for 5-25 frames each."""
    values = np.empty(n_frames, np.float32)
    k = 0
    while k < n_frames:
        hold = int(rng.integers(5, 26))
        values[k:k + hold] = rng.uniform(0, 1)
        k += hold
    n_hex = len(hex_coords(extent)[0])
    return np.repeat(values[:, None], n_hex, axis=1)  # BoxEye of a uniform full frame is that value


def noise_sequence(rng: np.random.Generator, n_frames: int, extent: int = 8, hold: int = 1) -> np.ndarray:
    """White noise per hexal: i.i.d. U(0, 1), each value held for ``hold`` frames."""
    n_hex = len(hex_coords(extent)[0])
    values = rng.uniform(0, 1, (-(-n_frames // hold), n_hex)).astype(np.float32)
    return np.repeat(values, hold, axis=0)[:n_frames]
