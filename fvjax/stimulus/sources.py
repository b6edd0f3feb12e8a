"""Stimulus sources chosen by ``simulation.visual_input_type``: train/test frame arrays (T, n_hex).

Generated kinds draw sequences of ``sequence_frames`` length forever from a seeded generator;
``DAVIS`` cycles through its shuffled augmented videos (train) or makes one pass (test). Frames are
concatenated back to back, like the reference (the voltage is not reset between sequences).
``blank_prefix_fraction`` darkens the start of every training sequence (test movies stay as they are).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ..config import SimulationConfig
from . import davis, movies, scenes

MIXED = ("natural", "gratings", "bars", "flashes", "noise")  # what `mixed` draws from (unchanged: data reproduce)
GENERATED = MIXED + ("scenes",)


# one sequence of n frames per generated kind: f(rng, n, split, cfg, load, images) -> (n, n_hex)
SEQUENCES = {
    "natural": lambda rng, n, split, cfg, load, images: movies.natural_sequence(
        load(images[int(rng.integers(len(images)))]), rng, n, cfg.extent),
    "scenes": lambda rng, n, split, cfg, load, images: scenes.scene_sequence(
        rng, n, split, cfg.extent, load, cfg.scene_objects, cfg.scene_augment, cfg.scene_luminance,
        cfg.scene_contrast),
    "gratings": lambda rng, n, split, cfg, load, images: movies.grating_sequence(rng, n, cfg.extent, dt=cfg.delta_t),
    "bars": lambda rng, n, split, cfg, load, images: movies.bar_sequence(rng, n, cfg.extent),
    "flashes": lambda rng, n, split, cfg, load, images: movies.flash_sequence(rng, n, cfg.extent),
    "noise": lambda rng, n, split, cfg, load, images: movies.noise_sequence(rng, n, cfg.extent, cfg.noise_hold_frames),
}
# kinds that draw another kind per sequence (before its length)
CHOOSERS = {"mixed": lambda rng: MIXED[int(rng.integers(len(MIXED)))]}


def _generated(kind: str, split: str, rng: np.random.Generator, cfg: SimulationConfig) -> Iterator[np.ndarray]:
    images = movies.NATURAL_IMAGES[:12] if split == "train" else movies.NATURAL_TEST_IMAGES
    loaded: dict[str, np.ndarray] = {}

    def load(name: str) -> np.ndarray:
        if name not in loaded:
            loaded[name] = movies.load_natural_image(name)
        return loaded[name]

    lo, hi = cfg.sequence_frames
    while True:
        this = CHOOSERS[kind](rng) if kind in CHOOSERS else kind
        n = int(rng.integers(lo, hi + 1))
        yield SEQUENCES[this](rng, n, split, cfg, load, images)


def davis_root(cfg: SimulationConfig) -> Path:
    for root in cfg.datavis_roots:
        if (Path(root) / "JPEGImages").is_dir():
            return Path(root)
    raise FileNotFoundError(
        "simulation.visual_input_type is DAVIS but no simulation.datavis_roots entry contains "
        f"JPEGImages/480p (given: {list(cfg.datavis_roots) or 'none'}). Download DAVIS-2017 trainval 480p "
        "and list its folder in simulation.datavis_roots, or pick an embedded visual_input_type "
        f"({', '.join(GENERATED + ('mixed',))})."
    )


def _davis_splits(cfg: SimulationConfig, seed: int):
    min_frames = cfg.min_video_frames if cfg.skip_short_videos else 1
    videos = davis.load_videos(davis_root(cfg), cfg.extent, min_frames, cfg.max_video_frames,
                               cfg.center_crop_fraction)
    return davis.split_sequences(videos, seed, cfg.extent)


def _take(stream: Iterator[np.ndarray], n_frames: int) -> np.ndarray:
    out, total = [], 0
    for seq in stream:
        out.append(seq[: n_frames - total])
        total += len(out[-1])
        if total >= n_frames:
            break
    return np.concatenate(out).astype(np.float32)


def blank_prefix(stream: Iterator[np.ndarray], fraction: float) -> Iterator[np.ndarray]:
    """Each sequence with its first ``floor(fraction len)`` frames dark (0); copies, the input untouched."""
    for seq in stream:
        out = np.array(seq, copy=True)
        out[: int(fraction * len(out))] = 0.0
        yield out


def _train_stream(stream: Iterator[np.ndarray], cfg: SimulationConfig) -> Iterator[np.ndarray]:
    return blank_prefix(stream, cfg.blank_prefix_fraction) if cfg.blank_prefix_fraction > 0 else stream


def _cycle(seqs: list[np.ndarray]) -> Iterator[np.ndarray]:
    while True:
        yield from seqs


def _davis_frames(cfg: SimulationConfig, seed: int) -> tuple[np.ndarray, np.ndarray]:
    train_seqs, test_seqs = _davis_splits(cfg, seed)
    train = _take(_train_stream(_cycle(train_seqs), cfg), cfg.n_frames)
    test = np.concatenate(test_seqs) if cfg.n_test_frames == 0 else _take(_cycle(test_seqs), cfg.n_test_frames)
    return train, test.astype(np.float32)


def _generated_frames(cfg: SimulationConfig, seed: int) -> tuple[np.ndarray, np.ndarray]:
    n_test = cfg.n_test_frames or max(cfg.n_frames // 8, 1)
    train_rng, test_rng = (np.random.default_rng([seed, k]) for k in (0, 1))
    return (_take(_train_stream(_generated(cfg.visual_input_type, "train", train_rng, cfg), cfg), cfg.n_frames),
            _take(_generated(cfg.visual_input_type, "test", test_rng, cfg), n_test))


# visual_input_type -> (cfg, seed) -> (train, test); every kind not listed is generated
RECORDED = {"DAVIS": _davis_frames}


def train_test_frames(cfg: SimulationConfig, seed: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(train, test) hexal luminance, shapes (n_frames, n_hex) and (n_test, n_hex)."""
    seed = cfg.seed if seed is None else seed
    return RECORDED.get(cfg.visual_input_type, _generated_frames)(cfg, seed)
