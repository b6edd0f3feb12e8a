"""Checkpoints of the full training state (params + optimizer), resumable exactly, kept by an orbax
``CheckpointManager`` in ``RUN/checkpoints/<step>/`` (step = iterations done over all epochs; items
``state`` and ``meta`` = {epoch, iteration, wall_time_s}). orbax writes each checkpoint into a
temporary folder and renames it when complete, and keeps the last ``keep``.

Run folders written before 2026-12-01 hold ``checkpoints/e{epoch}_i{iteration}/`` (``state`` +
``meta.json``); they are still found and restored, so those runs resume; new checkpoints then go
to the manager and the old folders are removed once a newer one exists.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import jax
import numpy as np


@dataclass(frozen=True)
class Checkpoint:
    """One finished checkpoint: an orbax step (``step``) or a pre-manager folder (``step`` None)."""

    path: Path
    step: int | None

    @property
    def name(self) -> str:
        return self.path.name


def _dir(run_dir: Path) -> Path:
    return (Path(run_dir) / "checkpoints").absolute()


def _manager(run_dir: Path, keep: int = 2):
    import orbax.checkpoint as ocp

    options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True, enable_async_checkpointing=False)
    return ocp.CheckpointManager(_dir(run_dir), options=options, item_names=("state", "meta"))


def _legacy(run_dir: Path) -> list[Path]:
    folder = _dir(run_dir)
    return sorted(p for p in folder.glob("e*_i*") if (p / "meta.json").exists()) if folder.is_dir() else []


def save_checkpoint(run_dir: str | Path, state, epoch: int, iteration: int, wall_time_s: float, step: int,
                    keep: int = 2) -> Checkpoint:
    """Save ``state`` as ``step`` (replacing a checkpoint of the same step) and keep the last ``keep``."""
    import orbax.checkpoint as ocp

    meta = {"epoch": epoch, "iteration": iteration, "wall_time_s": wall_time_s, "step": step}
    with _manager(Path(run_dir), keep) as mngr:
        if step in mngr.all_steps():
            mngr.delete(step)
        mngr.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(jax.tree.map(np.asarray, state)),
                                                meta=ocp.args.JsonSave(meta)), force=True)
        mngr.wait_until_finished()
    for old in _legacy(Path(run_dir)):
        shutil.rmtree(old)
    return Checkpoint(_dir(Path(run_dir)) / str(step), step)


def latest_checkpoint(run_dir: str | Path) -> Checkpoint | None:
    """The newest finished checkpoint of a run folder, or None."""
    if not _dir(Path(run_dir)).is_dir():
        return None
    with _manager(Path(run_dir)) as mngr:
        step = mngr.latest_step()
    if step is not None:
        return Checkpoint(_dir(Path(run_dir)) / str(step), step)
    legacy = _legacy(Path(run_dir))
    return Checkpoint(legacy[-1], None) if legacy else None


def restore_checkpoint(ckpt: Checkpoint, like):
    """(state, meta) of a checkpoint; ``like`` gives the pytree structure and dtypes."""
    import orbax.checkpoint as ocp

    target = jax.tree.map(np.asarray, like)
    if ckpt.step is None:
        state = ocp.StandardCheckpointer().restore(ckpt.path.absolute() / "state", target)
        meta = json.loads((ckpt.path / "meta.json").read_text())
    else:
        with _manager(ckpt.path.parent.parent) as mngr:
            got = mngr.restore(ckpt.step, args=ocp.args.Composite(state=ocp.args.StandardRestore(target),
                                                                 meta=ocp.args.JsonRestore()))
        state, meta = got["state"], dict(got["meta"])
    return jax.tree.map(jax.numpy.asarray, state), meta
