"""Shared datasets: runs that need the same data (same network, ground truth, stimulus, seed, frame
counts, ...) use one dataset in a cache folder, named by a hash of exactly the settings the files
depend on, instead of a multi-GB copy inside every run folder.

The cache folder is ``simulation.data_cache`` (default: ``datasets/`` next to the run folders, i.e.
``<run_dir>/../datasets``); the run's ``config.yaml`` records the resolved folder. Generation holds an
exclusive ``flock`` on ``<cache>/<name>.lock``, so concurrent runs (a seed sweep on a cluster) build
each dataset once and the others wait, then reuse it.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
from contextlib import contextmanager
from pathlib import Path

from .config import BEFORE_KEY, Config, to_dict, unused_simulation_keys

# simulation keys the files on disk do not depend on (measurement noise is drawn at training time)
NOT_IN_DATA = ("chunk_frames", "measurement_noise_level", "data_cache")
NAMED = ("prior", "flyvis_initial")   # ground truths chosen by name (see networks.flyvis.resolve_ground_truth)
KEY_VERSION = 1   # bump when the dataset files change for the same settings
# simulation keys added after KEY_VERSION 1: left out of the name while at these values (which reproduce
# the earlier files) or while the stimulus does not read them, so datasets made before the key existed
# keep their names
LATER_KEYS = BEFORE_KEY["simulation"]


def ground_truth_digest(source: str) -> str:
    """The ground truth's identity: its name, or the content hash of the file it was read from (a
    flyvis model folder is identified by its checkpoint file)."""
    from .connectome.source import sha256_file
    from .groundtruth.bundled import BUNDLED, find_checkpoint

    if source in NAMED or source in BUNDLED:
        return source
    path = Path(source).expanduser()
    if path.is_dir():
        path = find_checkpoint(path)
    return sha256_file(path) if path.is_file() else source


def data_settings(cfg: Config) -> dict:
    """The settings a dataset's files depend on (JSON-able)."""
    unused = unused_simulation_keys(cfg.simulation)
    sim = {k: v for k, v in to_dict(cfg)["simulation"].items()
           if k not in NOT_IN_DATA and not (k in LATER_KEYS and (v == LATER_KEYS[k] or k in unused))}
    sim["ground_truth"] = ground_truth_digest(cfg.simulation.ground_truth)
    return {"key_version": KEY_VERSION, "simulation": sim}


def dataset_name(cfg: Config) -> str:
    """``<network>-<16 hex digits>``: the same for every run whose data would be identical."""
    text = json.dumps(data_settings(cfg), sort_keys=True, default=str)
    return f"{cfg.simulation.network}-{hashlib.sha256(text.encode()).hexdigest()[:16]}"


def cache_root(cfg: Config, run_dir: Path) -> Path:
    """The cache folder: ``simulation.data_cache`` or ``<run_dir>/../datasets``."""
    root = cfg.simulation.data_cache
    return (Path(root).expanduser() if root else Path(run_dir).resolve().parent / "datasets").resolve()


@contextmanager
def dataset_lock(folder: Path):
    """Exclusive advisory lock for building ``folder`` (released when the process dies)."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.with_name(folder.name + ".lock"), "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def dataset_dir(cfg: Config, run_dir: Path) -> Path:
    """Where a run's dataset lives: ``run_dir/data`` for run folders made before the cache (kept so
    they resume), else ``<cache>/<dataset_name>``."""
    legacy = Path(run_dir) / "data"
    if (legacy / "manifest.json").is_file():
        return legacy
    return cache_root(cfg, run_dir) / dataset_name(cfg)
