"""Orbax checkpoints of the full training state (params + optimizer), resumable exactly."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import jax
import numpy as np


def _dir(run_dir: Path) -> Path:
    return Path(run_dir) / "checkpoints"


def save_checkpoint(run_dir: str | Path, state, epoch: int, iteration: int, wall_time_s: float, keep: int = 2) -> Path:
    """Write ``checkpoints/e{epoch}_i{iteration}`` (orbax, atomic) and drop all but the last ``keep``."""
    import orbax.checkpoint as ocp

    path = _dir(Path(run_dir)).absolute() / f"e{epoch:03d}_i{iteration:08d}"
    if path.exists():
        shutil.rmtree(path)
    ckptr = ocp.StandardCheckpointer()
    ckptr.save(path / "state", jax.tree.map(np.asarray, state))
    ckptr.wait_until_finished()
    meta = {"epoch": epoch, "iteration": iteration, "wall_time_s": wall_time_s}
    (path / "meta.json").write_text(json.dumps(meta))  # written last: marks the checkpoint complete
    for old in sorted(p for p in _dir(Path(run_dir)).iterdir() if (p / "meta.json").exists())[:-keep]:
        shutil.rmtree(old)
    return path


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    folder = _dir(Path(run_dir))
    done = sorted(p for p in folder.iterdir() if (p / "meta.json").exists()) if folder.is_dir() else []
    return done[-1] if done else None


def restore_checkpoint(path: str | Path, like):
    """(state, meta) from a checkpoint folder; ``like`` gives the pytree structure and dtypes."""
    import orbax.checkpoint as ocp

    path = Path(path).absolute()
    state = ocp.StandardCheckpointer().restore(path / "state", jax.tree.map(np.asarray, like))
    meta = json.loads((path / "meta.json").read_text())
    return jax.tree.map(jax.numpy.asarray, state), meta
