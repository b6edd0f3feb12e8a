"""Random streams: one root per seed, split by name, so that no two purposes share draws.

``stream_key(seed, "training")`` is ``fold_in(PRNGKey(seed), tag)`` with a fixed tag per stream
name; ``stream_rng`` is numpy's generator seeded by ``[seed, tag, *more]``. Seed arithmetic such as
``PRNGKey(seed + 1)`` would make run 7's training stream run 8's initialisation stream."""

from __future__ import annotations

import jax
import numpy as np

# fixed tags (ASCII of the name's start): changing one changes every run's numbers
STREAMS = {"init": 0x696E6974, "training": 0x74726169, "frames": 0x6672616D, "measurement": 0x6D6E}


def _tag(name: str) -> int:
    try:
        return STREAMS[name]
    except KeyError:
        raise ValueError(f"unknown random stream {name!r}; known: {', '.join(STREAMS)}") from None


def stream_key(seed: int, name: str) -> jax.Array:
    """The JAX key of stream ``name`` under root ``seed``."""
    return jax.random.fold_in(jax.random.PRNGKey(seed), _tag(name))


def stream_rng(seed: int, name: str, *more: int) -> np.random.Generator:
    """A numpy generator for stream ``name`` under root ``seed`` (``more``: e.g. the epoch)."""
    return np.random.default_rng([seed, _tag(name), *more])
