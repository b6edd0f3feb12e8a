"""Procedural naturalistic movies (``visual_input_type: scenes``), nothing to download.

A sequence is one scene seen by a moving eye:

* background: 1/f^alpha noise, a dead-leaves image, or a scikit-image still, as a standardised
  texture z (mean 0, std 1);
* occluding objects (discs, ellipses, harmonic blobs) with their own 1/f textures, each moving with
  its own changing velocity and spin, drawn back to front (smaller ones behind);
* ego-motion over the background: pan with an Ornstein-Uhlenbeck velocity plus saccades, roll, zoom;
* luminance ``clip(m (1 + c z), 0, 1)`` with a log-normal mean m and an RMS contrast c per sequence;
* the DAVIS augmentation (flip x rotation by 0, 1, 3, 4 hex steps) of the finished hexal movie.

Scenes come from a fixed library that does not depend on ``simulation.seed``: procedural textures
are seeded by (split, scene index), so train and test textures come from disjoint seed streams, and
stills come from :data:`movies.NATURAL_IMAGES` split as for ``natural``.

Rendering (BoxEye without sampling the pixels): frame pixels are area means of the texture (texels
are squares), so a hexal's 13 x 13 px window mean is four look-ups in a summed-area table; only the
windows that an object touches are visited pixel by pixel. Without roll this is exactly BoxEye of the
full frame (:func:`render_frames`, tested); under roll the receptor lattice turns with the eye while
each window keeps the scene's axes.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import fft

from ..config import SimulationConfig
from ..connectome.hexlattice import flip_permutation, rotation_permutation
from . import davis, movies
from .boxeye import KERNEL, receptor_pixels

TEXTURE_SIZE = 512          # period of the procedural backgrounds [texels]
OBJECT_TEXTURE_SIZE = 128   # period of the object textures [screen px]
SPRITE_CELL = 0.5           # objects are drawn on cells of this size [screen px]
SCENE_KINDS = ("pink", "leaves", "still")
SCENE_PROBS = (0.4, 0.4, 0.2)
SCENE_POOL = 1_000_000      # procedural scene indices per split
SPLITS = ("train", "test")
TRAIN_STILLS = tuple(n for n in movies.NATURAL_IMAGES if n not in movies.NATURAL_TEST_IMAGES)
_SALT = 0x5CE7E5            # the scene library's seed space (independent of simulation.seed)
_SCALE_RANGE = (0.4, 1.6)   # texels per screen px (zoom limits)


@dataclass(frozen=True)
class Scene:
    kind: str               # "pink", "leaves" or "still"
    split: str              # "train" or "test"
    index: int              # seeds the procedural textures (background and objects)
    still: str | None = None


@dataclass(frozen=True)
class EgoPath:
    centre: np.ndarray      # (T, 2) texture point (row, col) seen at the frame centre
    angle: np.ndarray       # (T,) roll [rad]
    scale: np.ndarray       # (T,) texels per screen px


@dataclass(frozen=True)
class Objects:
    position: np.ndarray    # (T, n, 2) screen px (row, col) from the frame centre
    angle: np.ndarray       # (T, n) orientation [rad]
    radius: np.ndarray      # (n,) semi-major axis [px]
    aspect: np.ndarray      # (n,) minor / major axis
    harmonics: np.ndarray   # (n, 3) complex amplitudes of boundary harmonics 2, 3, 4 (0: ellipse)
    offset: np.ndarray      # (n,) mean z of the object
    gain: np.ndarray        # (n,) texture gain
    texture: np.ndarray     # (n, K, K) standardised periodic textures

    @property
    def bound(self) -> np.ndarray:
        return self.radius * (1 + np.abs(self.harmonics).sum(-1))


@dataclass(frozen=True)
class SceneMovie:
    scene: Scene
    background: np.ndarray  # standardised texture z
    periodic: bool          # procedural textures wrap; stills are mirrored at their edges
    path: EgoPath
    objects: Objects
    mean: float             # luminance m
    contrast: float         # RMS contrast c


# ---------------------------------------------------------------- textures

def standardise(x: np.ndarray) -> np.ndarray:
    """Mean 0, std 1, float32."""
    x = np.asarray(x, np.float32)
    x = x - x.mean(dtype=np.float64).astype(np.float32)
    return x / max(float(x.std()), 1e-12)


@functools.lru_cache(maxsize=4)
def _log_frequency(size: int) -> np.ndarray:
    freq = np.hypot(np.fft.fftfreq(size)[:, None], np.fft.rfftfreq(size)[None, :])
    freq[0, 0] = 1.0  # the DC gain is set to 0 by pink_noise
    out = np.log(freq).astype(np.float32)
    out.flags.writeable = False
    return out


def pink_noise(rng: np.random.Generator, size: int, alpha: float) -> np.ndarray:
    """Periodic Gaussian noise with power spectrum 1/f^alpha, standardised, (size, size) float32
    (complex Gaussian Fourier coefficients on the half plane, inverse real FFT)."""
    gain = np.exp(np.float32(-alpha / 2) * _log_frequency(size))
    gain[0, 0] = 0
    coef = rng.standard_normal(size * (size // 2 + 1) * 2, dtype=np.float32).view(np.complex64)
    return standardise(fft.irfft2(coef.reshape(size, -1) * gain, s=(size, size)))


@functools.lru_cache(maxsize=256)
def _disc_offsets(radius: int) -> tuple[np.ndarray, np.ndarray]:
    dy, dx = np.mgrid[-radius:radius + 1, -radius:radius + 1]
    keep = dy**2 + dx**2 <= radius**2 + radius  # +r: round discs even at small radii
    dy, dx = dy[keep], dx[keep]
    dy.flags.writeable = dx.flags.writeable = False  # cached
    return dy, dx


def dead_leaves(rng: np.random.Generator, size: int, alpha: float, radii: tuple[float, float] = (4.0, 120.0),
                coverage: float = 3.0) -> np.ndarray:
    """Periodic dead-leaves image, standardised: discs with radius density ~ r^-3 in ``radii`` [texels]
    and uniform centres, each occluding the earlier ones, each a grey level plus a share of one
    1/f^alpha texture. Occlusion is drawn at half resolution (leaf edges in 2-texel steps)."""
    half = size // 2
    lo, hi = radii[0] / 2, radii[1] / 2
    mean_area = np.pi * np.log(hi / lo) / ((lo**-2 - hi**-2) / 2)
    n = int(coverage * half**2 / mean_area) + 1
    radius = np.rint((lo**-2 - rng.uniform(size=n) * (lo**-2 - hi**-2)) ** -0.5).astype(int)
    centre = rng.integers(0, half, (n, 2))
    label = np.zeros(half * half, np.int32)  # 0: one leaf behind all others
    for r in np.unique(radius):
        dy, dx = _disc_offsets(int(r))
        k = np.flatnonzero(radius == r)
        flat = ((centre[k, :1] + dy) % half) * half + (centre[k, 1:] + dx) % half
        np.maximum.at(label, flat.ravel(), np.repeat(k + 1, len(dy)).astype(np.int32))
    label = label.reshape(half, half).repeat(2, 0).repeat(2, 1)
    grey, share = rng.uniform(-1, 1, n + 1).astype(np.float32), rng.uniform(0, 0.5, n + 1).astype(np.float32)
    return standardise(grey[label] + share[label] * pink_noise(rng, 2 * half, alpha))


def scene_rng(scene: Scene, stream: int) -> np.random.Generator:
    """The scene library's generator: stream 0 background, 1 objects; disjoint seeds per split."""
    return np.random.default_rng([_SALT, SPLITS.index(scene.split), scene.index, stream])


def draw_scene(rng: np.random.Generator, split: str) -> Scene:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    kind = SCENE_KINDS[int(rng.choice(len(SCENE_KINDS), p=SCENE_PROBS))]
    index = int(rng.integers(SCENE_POOL))
    stills = TRAIN_STILLS if split == "train" else movies.NATURAL_TEST_IMAGES
    still = stills[int(rng.integers(len(stills)))]
    return Scene(kind, split, index, still if kind == "still" else None)


def scene_background(scene: Scene, load_still: Callable[[str], np.ndarray] = movies.load_natural_image,
                     size: int = TEXTURE_SIZE) -> np.ndarray:
    """Standardised background texture of ``scene``."""
    if scene.kind == "still":
        return standardise(load_still(scene.still))
    rng = scene_rng(scene, 0)
    alpha = rng.uniform(1.6, 2.4)
    return pink_noise(rng, size, alpha) if scene.kind == "pink" else dead_leaves(rng, size, alpha)


def object_textures(scene: Scene, n: int, size: int = OBJECT_TEXTURE_SIZE) -> np.ndarray:
    """(n, size, size) standardised 1/f^alpha textures (alpha U(1.6, 2.4)) of the scene's objects."""
    rng = scene_rng(scene, 1)
    return np.stack([pink_noise(rng, size, rng.uniform(1.6, 2.4)) for _ in range(n)] or
                    [np.zeros((size, size), np.float32)])[:n]


# ---------------------------------------------------------------- motion and luminance

def ou(rng: np.random.Generator, n_steps: int, std, tau, shape: tuple[int, ...] = ()) -> np.ndarray:
    """Stationary Ornstein-Uhlenbeck samples (n_steps, *shape); ``std`` and correlation time ``tau``
    [frames] broadcast to ``shape``."""
    a = np.exp(-1.0 / np.asarray(tau, float))
    std = np.asarray(std, float)
    eps = rng.standard_normal((n_steps, *shape))
    x = np.empty_like(eps)
    x[0] = std * eps[0]
    kick = std * np.sqrt(1 - a**2)
    for i in range(1, n_steps):
        x[i] = a * x[i - 1] + kick * eps[i]
    return x


def _unit(angle) -> np.ndarray:
    return np.stack([np.sin(angle), np.cos(angle)], -1)


def _turn(angle, y, x):
    """(y, x) row-col coordinates rotated by ``angle`` [rad], all broadcast."""
    c, s = np.cos(angle), np.sin(angle)
    return c * y - s * x, s * y + c * x


def saccades(rng: np.random.Generator, n_steps: int, rate: float, duration: int = 3,
             speed: tuple[float, float] = (10.0, 30.0)) -> np.ndarray:
    """(n_steps, 2) pan velocity [px/frame] of saccades: onsets at ``rate`` per frame, each a fixed
    velocity in a random direction held ``duration`` frames."""
    onset = rng.uniform(size=n_steps) < rate
    kick = _unit(rng.uniform(0, 2 * np.pi, n_steps)) * rng.uniform(*speed, n_steps)[:, None]
    out = np.zeros((n_steps + duration, 2))
    for k in range(duration):
        out[k:k + n_steps] += kick * onset[:, None]
    return out[:n_steps]


def draw_ego_path(rng: np.random.Generator, n_frames: int, texture_shape: tuple[int, int]) -> EgoPath:
    """Pan velocity [screen px/frame] = drift U(0, 3) + OU (std U(0.3, 2.5), tau U(5, 25) frames) +
    saccades (rate U(0, 1/25) per frame, 10-30 px/frame for 3 frames); roll rate OU (std U(0, 0.02)
    rad/frame); log zoom rate OU (std U(0, 0.01)/frame), scale kept in [0.4, 1.6] texels per px."""
    drift = _unit(rng.uniform(0, 2 * np.pi)) * rng.uniform(0, 3)
    pan = drift + ou(rng, n_frames, rng.uniform(0.3, 2.5), rng.uniform(5, 25), (2,))
    pan += saccades(rng, n_frames, rng.uniform(0, 1 / 25))
    roll = ou(rng, n_frames, rng.uniform(0, 0.02), rng.uniform(5, 30))
    zoom = ou(rng, n_frames, rng.uniform(0, 0.01), rng.uniform(5, 30))
    angle = rng.uniform(0, 2 * np.pi) + np.concatenate([[0.0], np.cumsum(roll[:-1])])
    log_scale = np.log(rng.uniform(0.5, 1.5)) + np.concatenate([[0.0], np.cumsum(zoom[:-1])])
    scale = np.exp(np.clip(log_scale, *np.log(_SCALE_RANGE)))
    step = scale[:, None] * np.stack(_turn(angle, pan[:, 0], pan[:, 1]), -1)
    start = rng.uniform(0, 1, 2) * np.asarray(texture_shape)
    centre = start + np.concatenate([np.zeros((1, 2)), np.cumsum(step[:-1], 0)])
    return EgoPath(centre, angle, scale)


def draw_objects(rng: np.random.Generator, n_frames: int, textures: np.ndarray, field: float = 110.5) -> Objects:
    """len(textures) objects: semi-major axis log-U(8, 45) px (sorted: larger ones in front), shape
    disc / ellipse (aspect U(0.4, 1)) / blob (harmonics 2-4 of amplitude U(0, 0.15)); z offset
    N(0, 1.2), texture gain U(0, 1); velocity = U(0.5, 5) px/frame in a random heading + OU jitter
    (std up to the speed, tau U(5, 20) frames); spin N(0, 0.03) rad/frame. Objects leaving the
    field re-enter on the other side."""
    n = len(textures)
    radius = np.sort(np.exp(rng.uniform(np.log(8), np.log(45), n)))
    shape = rng.integers(3, size=n)
    aspect = np.where(shape == 0, 1.0, rng.uniform(0.4, 1.0, n))
    harmonics = rng.uniform(0, 0.15, (n, 3)) * np.exp(2j * np.pi * rng.uniform(size=(n, 3)))
    harmonics = np.where((shape == 2)[:, None], harmonics, 0)
    offset, gain = rng.normal(0, 1.2, n), rng.uniform(0, 1, n)
    speed = rng.uniform(0.5, 5, n)
    velocity = _unit(rng.uniform(0, 2 * np.pi, n)) * speed[:, None] + ou(
        rng, n_frames, (rng.uniform(0, 1, n) * speed)[:, None], rng.uniform(5, 20, n)[:, None], (n, 2))
    start = rng.uniform(-field, field, (n, 2))
    position = start + np.concatenate([np.zeros((1, n, 2)), np.cumsum(velocity[:-1], 0)])
    span = (field + radius * (1 + np.abs(harmonics).sum(-1)) + 10)[:, None]
    position = (position + span) % (2 * span) - span
    angle = rng.uniform(0, 2 * np.pi, n) + rng.normal(0, 0.03, n) * np.arange(n_frames)[:, None]
    return Objects(position, angle, radius, aspect, harmonics, offset, gain, np.asarray(textures, np.float32))


# the defaults of simulation.scene_luminance ((median, sigma) of the log-normal mean luminance) and
# simulation.scene_contrast (range of the uniform RMS contrast); config.BEFORE_KEY keeps the earlier ones
LUMINANCE = tuple(SimulationConfig.scene_luminance)
CONTRAST = tuple(SimulationConfig.scene_contrast)


def luminance_stats(rng: np.random.Generator, luminance: tuple[float, float] = LUMINANCE,
                    contrast: tuple[float, float] = CONTRAST) -> tuple[float, float]:
    """Mean luminance log-normal (median, sigma = ``luminance``; clipped to [0.02, 0.75]); RMS contrast
    uniform in ``contrast``."""
    mean = float(np.clip(np.exp(rng.normal(np.log(luminance[0]), luminance[1])), 0.02, 0.75))
    return mean, float(rng.uniform(*contrast))


def draw_movie(rng: np.random.Generator, n_frames: int, split: str = "train",
               load_still: Callable[[str], np.ndarray] = movies.load_natural_image,
               n_objects: tuple[int, int] = (1, 5), luminance: tuple[float, float] = LUMINANCE,
               contrast: tuple[float, float] = CONTRAST) -> SceneMovie:
    """Everything that defines one sequence (rendered by :func:`render_hexals`)."""
    if not 0 <= n_objects[0] <= n_objects[1]:
        raise ValueError(f"scene_objects must be (lo, hi) with 0 <= lo <= hi, got {n_objects}")
    scene = draw_scene(rng, split)
    background = scene_background(scene, load_still)
    path = draw_ego_path(rng, n_frames, background.shape)
    n = int(rng.integers(n_objects[0], n_objects[1] + 1))
    objects = draw_objects(rng, n_frames, object_textures(scene, n))
    mean, rms = luminance_stats(rng, luminance, contrast)
    return SceneMovie(scene, background, scene.kind != "still", path, objects, mean, rms)


# ---------------------------------------------------------------- rendering

def _bilinear(img: np.ndarray, y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Bilinear samples of ``img`` at (y, x) [index units], clamped to the grid."""
    h, w = img.shape
    y0 = np.clip(np.floor(y).astype(np.intp), 0, h - 2)
    x0 = np.clip(np.floor(x).astype(np.intp), 0, w - 2)
    fy, fx = y - y0, x - x0
    left = img[y0, x0] * (1 - fy) + img[y0 + 1, x0] * fy
    right = img[y0, x0 + 1] * (1 - fy) + img[y0 + 1, x0 + 1] * fy
    return left * (1 - fx) + right * fx


def _fold(index: np.ndarray, n: int, periodic: bool) -> np.ndarray:
    if periodic:
        return index % n
    m = index % (2 * n)
    return np.where(m < n, m, 2 * n - 1 - m)  # mirrored at the edges


def _summed_area(z: np.ndarray, periodic: bool, lo: np.ndarray, hi: np.ndarray, mean: float,
                 contrast: float) -> tuple[np.ndarray, np.ndarray]:
    """Summed-area table of the luminance over texels [lo, hi) (and its origin): sat[i, j] = area
    integral over [0, i] x [0, j] from the origin, exact for square texels at any fractional corner
    by bilinear interpolation."""
    y0, x0 = np.floor(lo).astype(int)
    y1, x1 = np.ceil(hi).astype(int) + 1
    crop = z[np.ix_(_fold(np.arange(y0, y1), z.shape[0], periodic), _fold(np.arange(x0, x1), z.shape[1], periodic))]
    lum = np.clip(mean * (1 + contrast * crop), 0, 1)
    sat = np.zeros((y1 - y0 + 1, x1 - x0 + 1))
    sat[1:, 1:] = lum.cumsum(0, dtype=np.float64).cumsum(1)
    return sat, np.array([y0, x0], float)


def _box_sum(sat: np.ndarray, y0, x0, y1, x1) -> np.ndarray:
    g = lambda y, x: _bilinear(sat, y, x)  # noqa: E731
    return g(y1, x1) - g(y0, x1) - g(y1, x0) + g(y0, x0)


def _inside(a: np.ndarray, b: np.ndarray, radius: float, aspect: float, harmonics: np.ndarray) -> np.ndarray:
    """Object mask at object-frame coordinates (a, b) [px]: ellipse, its boundary modulated by harmonics 2-4."""
    x, y = a / radius, b / (radius * aspect)
    rho2 = x * x + y * y
    w = (x + 1j * y) / np.maximum(np.sqrt(rho2), 1e-12)
    power, edge = w * w, 1.0
    for h in harmonics:  # orders 2, 3, 4
        edge = edge + (h * power).real
        power = power * w
    return rho2 <= edge * edge


def _sprite(obj: Objects, i: int) -> tuple[np.ndarray, int]:
    """Object i in its own frame on cells of ``SPRITE_CELL`` px: z inside, NaN outside (border
    included), and the index of its centre cell. Texture texels are 1 px."""
    half = int(np.ceil(obj.bound[i] / SPRITE_CELL)) + 1
    cells = np.arange(-half, half + 1)
    a = (cells * SPRITE_CELL)[:, None]
    texel = np.floor(cells * SPRITE_CELL).astype(int) % obj.texture.shape[1]
    z = obj.offset[i] + obj.gain[i] * obj.texture[i][texel[:, None], texel[None, :]]
    sprite = np.where(_inside(a, a.T, obj.radius[i], obj.aspect[i], obj.harmonics[i]), z, np.nan).astype(np.float32)
    sprite[[0, -1]] = sprite[:, [0, -1]] = np.nan
    return sprite, half


def _object_layer(obj: Objects, t: np.ndarray, base: np.ndarray, grid: np.ndarray, near: np.ndarray) -> np.ndarray:
    """z of the front-most object (NaN: none) at the screen points base[:, g, None] + grid[:, t[g]]
    (planar row/col arrays (2, G) and (2, T, K)) of groups g seen at frames t (G,); object i is
    looked up, at the nearest cell of its sprite, only in groups with near[:, i]."""
    z = np.full((len(t), grid.shape[2]), np.nan, np.float32)
    for i in range(len(obj.radius)):  # back to front
        g = np.flatnonzero(near[:, i])
        if not len(g):
            continue
        sprite, half = _sprite(obj, i)
        tg = t[g]
        dy = (base[0, g, None] + grid[0, tg]) - obj.position[tg, i, 0, None].astype(np.float32)
        dx = (base[1, g, None] + grid[1, tg]) - obj.position[tg, i, 1, None].astype(np.float32)
        c = (np.cos(obj.angle[tg, i]) / SPRITE_CELL).astype(np.float32)[:, None]
        s = (np.sin(obj.angle[tg, i]) / SPRITE_CELL).astype(np.float32)[:, None]
        centre, last = np.float32(half + 0.5), np.float32(2 * half)
        ia = np.clip(c * dy + s * dx + centre, 0, last).astype(np.intp)  # floor: nearest cell
        ib = np.clip(c * dx - s * dy + centre, 0, last).astype(np.intp)
        value = np.take(sprite.ravel(), ia * sprite.shape[1] + ib)
        z[g] = np.where(np.isnan(value), z[g], value)
    return z


def _receptors(extent: int) -> np.ndarray:
    """(2, n_hex) receptor centres [screen px] from the frame centre, rows and columns."""
    size = movies.frame_size(extent)
    return np.stack(receptor_pixels(extent, size, size)) - (size - 1) / 2


def _window_grid() -> np.ndarray:
    half = KERNEL // 2
    return np.mgrid[-half:half + 1, -half:half + 1].reshape(2, -1).astype(float)  # (2, 169)


def _object_correction(movie: SceneMovie, sat: np.ndarray, qy: np.ndarray, qx: np.ndarray,
                       receptors: np.ndarray) -> np.ndarray:
    """(T, n_hex) change of the window means where objects cover window pixels: (object - background) / 169."""
    obj, path = movie.objects, movie.path
    out = np.zeros(qy.shape)
    if not len(obj.radius):
        return out
    reach = obj.bound + KERNEL / np.sqrt(2) + 1
    near = ((receptors[0, None, :, None] - obj.position[:, None, :, 0]) ** 2
            + (receptors[1, None, :, None] - obj.position[:, None, :, 1]) ** 2) <= reach**2  # (T, n_hex, n)
    t, h = np.nonzero(near.any(-1))
    if not len(t):
        return out
    grid = np.stack(_turn(-path.angle[:, None], *_window_grid())).astype(np.float32)  # (2, T, 169)
    z = _object_layer(obj, t, receptors[:, h].astype(np.float32), grid, near[t, h])
    covered = ~np.isnan(z)
    lum = np.where(covered, np.clip(movie.mean * (1 + movie.contrast * z), 0, 1), 0).sum(1)
    # background under the covered pixels: along each window row (scene-aligned) the covered runs
    # telescope to the column integrals at run ends (start +, end -)
    edge = np.diff(covered.reshape(-1, KERNEL, KERNEL).astype(np.int8), axis=2, prepend=0, append=0)
    c, r, k = np.nonzero(edge)
    s = path.scale[t[c]]
    y0 = qy[t[c], h[c]] + (r - KERNEL / 2) * s
    x = qx[t[c], h[c]] + (k - KERNEL / 2) * s
    strip = _bilinear(sat, y0 + s, x) - _bilinear(sat, y0, x)
    bg = -np.bincount(c, edge[c, r, k] * strip / s**2, minlength=len(t))
    out[t, h] = (lum - bg) / KERNEL**2
    return out


def render_hexals(movie: SceneMovie, extent: int = 8) -> np.ndarray:
    """(T, n_hex) float32 in [0, 1]: the BoxEye window mean of every hexal in every frame."""
    path = movie.path
    receptors = _receptors(extent)
    ty, tx = _turn(path.angle[:, None], *receptors)
    scale = path.scale[:, None]
    qy, qx = path.centre[:, 0, None] + scale * ty, path.centre[:, 1, None] + scale * tx
    half = KERNEL / 2 * scale
    reach = half.max() + 1
    sat, (oy, ox) = _summed_area(movie.background, movie.periodic, np.array([qy.min(), qx.min()]) - reach,
                                 np.array([qy.max(), qx.max()]) + reach, movie.mean, movie.contrast)
    qy, qx = qy - oy, qx - ox
    box = _box_sum(sat, qy - half, qx - half, qy + half, qx + half) / (2 * half) ** 2
    out = box + _object_correction(movie, sat, qy, qx, receptors)
    return np.clip(out, 0, 1).astype(np.float32)


def render_frames(movie: SceneMovie, frames: Sequence[int], extent: int = 8) -> np.ndarray:
    """Full frames (len(frames), S, S) of :func:`movies.frame_size` px, pixels = area means of the
    texture (slow; for figures and tests). Without roll, BoxEye of these equals :func:`render_hexals`."""
    path, t = movie.path, np.asarray(frames)
    size = movies.frame_size(extent)
    grid = (np.mgrid[0:size, 0:size].reshape(2, -1) - (size - 1) / 2).astype(np.float32)
    ty, tx = _turn(path.angle[t, None], *grid)
    scale = path.scale[t, None]
    qy, qx = path.centre[t, 0, None] + scale * ty, path.centre[t, 1, None] + scale * tx
    half = scale / 2
    sat, (oy, ox) = _summed_area(movie.background, movie.periodic, np.array([qy.min(), qx.min()]) - 2,
                                 np.array([qy.max(), qx.max()]) + 2, movie.mean, movie.contrast)
    qy, qx = qy - oy, qx - ox
    out = _box_sum(sat, qy - half, qx - half, qy + half, qx + half) / (2 * half) ** 2
    near = np.ones((len(t), len(movie.objects.radius)), bool)
    z = _object_layer(movie.objects, t, np.zeros((2, len(t)), np.float32),
                      np.broadcast_to(grid[:, None], (2, len(path.angle), grid.shape[1])), near)
    out = np.where(np.isnan(z), out, np.clip(movie.mean * (1 + movie.contrast * z), 0, 1))
    return np.clip(out, 0, 1).reshape(len(t), size, size).astype(np.float32)


def augment_hexals(rng: np.random.Generator, frames: np.ndarray, extent: int = 8) -> np.ndarray:
    """One of the 8 DAVIS variants, drawn: flip {none, axis 1}, then rotation by 0, 1, 3 or 4 x 60 degrees."""
    flip = davis.FLIPS[int(rng.integers(len(davis.FLIPS)))]
    rot = davis.ROTATIONS[int(rng.integers(len(davis.ROTATIONS)))]
    return frames[:, flip_permutation(extent, flip)][:, rotation_permutation(extent, rot)]


def scene_sequence(rng: np.random.Generator, n_frames: int, split: str = "train", extent: int = 8,
                   load_still: Callable[[str], np.ndarray] = movies.load_natural_image,
                   n_objects: tuple[int, int] = (1, 5), augment: bool = True,
                   luminance: tuple[float, float] = LUMINANCE, contrast: tuple[float, float] = CONTRAST) -> np.ndarray:
    """One ``scenes`` sequence (n_frames, n_hex) float32 in [0, 1] (augmentation drawn last)."""
    frames = render_hexals(draw_movie(rng, n_frames, split, load_still, n_objects, luminance, contrast), extent)
    return augment_hexals(rng, frames, extent) if augment else frames
