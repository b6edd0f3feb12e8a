"""DAVIS-2017-layout video folders -> hexal luminance sequences (the flyvis-gnn reference pipeline).

Layout: ``<root>/JPEGImages/480p/<video>/*.jpg``. Per video: frames sorted by file name; videos with
fewer than ``min_frames`` frames skipped; the first ``max_frames`` kept; luminance
0.299 R + 0.587 G + 0.114 B of RGB/255; each frame turned 90 degrees clockwise; the last image axis
centre-cropped to ``crop_fraction``; BoxEye(extent, 13 px). Augmentation: hex flips {none, axis 1} x
rotations {0, 1, 3, 4} x 60 degrees = 8 variants per video. Split: videos sorted by name, the first
``int(train_fraction * n)`` are train (the reference used filesystem order, which is not reproducible).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..connectome.hexlattice import flip_permutation, rotation_permutation
from .boxeye import min_frame_size, render
from .movies import luminance

ROTATIONS = (0, 1, 3, 4)   # the reference's "0, 90, 180, 270 degrees" mapped to 60-degree steps
FLIPS = (0, 1)


class VideoError(ValueError):
    """A video folder that cannot be used as it is (frames too small, too few videos to split)."""


@dataclass(frozen=True)
class DavisVideo:
    name: str
    frames: np.ndarray  # (T, n_hex) luminance


def video_dirs(root: str | Path) -> list[Path]:
    base = Path(root) / "JPEGImages" / "480p"
    if not base.is_dir():
        raise FileNotFoundError(
            f"{root}: expected a DAVIS-2017 folder with JPEGImages/480p/<video>/*.jpg "
            f"(set simulation.datavis_roots to a list of folders, one of which contains JPEGImages)"
        )
    dirs = sorted(p for p in base.iterdir() if p.is_dir())
    if not dirs:
        raise FileNotFoundError(f"{base} contains no video folders")
    return dirs


def load_frames(folder: Path, max_frames: int) -> np.ndarray:
    """(T, H, W) luminance in [0, 1] of the first ``max_frames`` JPEGs (sorted by name)."""
    from PIL import Image

    files = sorted(folder.glob("*.jpg"))[:max_frames]
    return np.stack([luminance(np.asarray(Image.open(f).convert("RGB"), np.float32) / 255.0) for f in files])


def preprocess(frames: np.ndarray, crop_fraction: float, extent: int) -> np.ndarray:
    """Rotate 90 degrees clockwise, centre-crop the last axis, BoxEye -> (T, n_hex)."""
    rotated = np.rot90(frames, k=-1, axes=(-2, -1))
    width = rotated.shape[-1]
    keep = int(round(width * crop_fraction))
    start = (width - keep) // 2
    return render(np.ascontiguousarray(rotated[..., start:start + keep]), extent)


def load_videos(root: str | Path, extent: int = 8, min_frames: int = 50, max_frames: int = 80,
                crop_fraction: float = 0.6) -> list[DavisVideo]:
    """Every usable video under ``root``, rendered, in name order."""
    videos = []
    for folder in video_dirs(root):
        n = len(list(folder.glob("*.jpg")))
        if n < min_frames:
            continue
        frames = load_frames(folder, max_frames)
        _check_size(folder, frames.shape[1:], crop_fraction, extent)
        videos.append(DavisVideo(folder.name, preprocess(frames, crop_fraction, extent)))
    if not videos:
        raise FileNotFoundError(f"{root}: no video with at least {min_frames} JPEG frames")
    return videos


def _check_size(folder: Path, shape: tuple[int, int], crop_fraction: float, extent: int) -> None:
    """Refuse frames that BoxEye cannot cover after the rotation and the centre crop (flyvis resizes them)."""
    height, width = shape
    need = min_frame_size(extent)
    if min(height, width) < need:
        raise VideoError(f"{folder}: frames of {width}x{height} px (width x height) are smaller than BoxEye's {need}x{need} at extent "
                         f"{extent}; use the 480p frames (854x480) or upscale these (fvjax does not resize silently, "
                         f"flyvis would)")
    kept = int(round(height * crop_fraction))   # after rot90 the image height is the cropped axis
    if kept < need:
        raise VideoError(f"{folder}: simulation.center_crop_fraction {crop_fraction} keeps {kept} of the frames' "
                         f"{height} px, less than BoxEye's {need} at extent {extent}; set it to at least "
                         f"{math.ceil(100 * need / height) / 100:.2f}, or use the 480p frames (854x480)")


def augment(frames: np.ndarray, extent: int) -> list[np.ndarray]:
    """The 8 deterministic variants (flip, then rotation) of a (T, n_hex) sequence."""
    out = []
    for flip in FLIPS:
        flipped = frames[:, flip_permutation(extent, flip)]
        out += [flipped[:, rotation_permutation(extent, r)] for r in ROTATIONS]
    return out


def split_sequences(videos: list[DavisVideo], seed: int, extent: int = 8,
                    train_fraction: float = 0.8) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(train, test) augmented sequences; split by video, each list shuffled with ``seed``."""
    n_train = int(train_fraction * len(videos))
    if n_train == 0 or n_train == len(videos):
        raise VideoError(f"DAVIS: need videos on both sides of the {train_fraction:.0%} train/test split by video; "
                         f"found {len(videos)} usable ({', '.join(v.name for v in videos)}); add videos")
    rng = np.random.default_rng(seed)
    splits = []
    for part in (videos[:n_train], videos[n_train:]):
        seqs = [s for v in part for s in augment(v.frames, extent)]
        splits.append([seqs[i] for i in rng.permutation(len(seqs))])
    return splits[0], splits[1]
