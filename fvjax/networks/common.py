"""What every network kind's generator shares: the per-split random key and the chunked simulation
of one split into a dataset writer (:mod:`fvjax.dataset`)."""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from ..config import Config
from ..dataset import SPLITS
from ..simulate import simulate


def split_key(seed: int, split: str):
    """The process-noise key of ``split``: PRNGKey(seed) folded with the split's index in SPLITS."""
    return jax.random.fold_in(jax.random.PRNGKey(seed), SPLITS.index(split))


def simulate_split(cfg: Config, circuit, v0, n_frames: int, stimulus_at: Callable[[int, int], np.ndarray], key,
                   writer, desc: str, progress: bool, hint: str) -> None:
    """Simulate ``n_frames`` chunk by chunk and write them; ``stimulus_at(start, stop)`` gives the
    input-node values of those frames, ``hint`` what to try if the simulation diverges."""
    from tqdm.auto import tqdm

    sim = cfg.simulation
    v = v0
    with tqdm(total=n_frames, desc=desc, unit="frame", disable=not progress) as bar:
        for start in range(0, n_frames, sim.chunk_frames):
            stim = stimulus_at(start, min(start + sim.chunk_frames, n_frames))
            v, traj = simulate(circuit, v, jnp.asarray(stim), key, start, dt=sim.delta_t,
                               noise_std=sim.noise_model_level, tau_clamp=sim.tau_clamp)
            volts = np.asarray(traj.voltage)
            if not np.isfinite(volts).all():
                raise FloatingPointError(f"{desc}: simulation diverged near frame {start}; {hint}")
            writer.write(start, voltage=volts, target=np.asarray(traj.target), stimulus=stim)
            bar.update(len(stim))
