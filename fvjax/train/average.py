"""Parameter averaging (fvjax's own, ``training.ema_decay``): an exponential moving average of the
parameters, kept in the optimizer state so that checkpoints, resume and ``--vmap`` carry it unchanged.

After every step ``avg <- d_t avg + (1 - d_t) params`` with ``d_t = min(decay, (1 + t) / (10 + t))``
(t = steps averaged so far): early on the average follows the parameters closely, later it spans about
``1 / (1 - decay)`` steps. Recovery checks, the final evaluation and ``Run.params()`` read the average
(:func:`model_params`); training itself steps the raw parameters. Why: docs/drift.md, section 4.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax


class AverageState(NamedTuple):
    count: jax.Array   # steps averaged so far
    average: Any       # the averaged parameters (same pytree as the parameters)


def warm_decay(decay: float, count) -> jax.Array:
    """The decay applied at the ``count``-th averaged step (count >= 1)."""
    count = jnp.asarray(count, jnp.float32)
    return jnp.minimum(decay, (1.0 + count) / (10.0 + count))


def track_average(decay: float) -> optax.GradientTransformation:
    """A transformation that leaves the updates unchanged and averages ``params + updates`` (chain it
    last, so the updates it sees are the final ones)."""
    if not 0.0 < decay < 1.0:
        raise ValueError(f"decay {decay!r}: expected 0 < decay < 1")

    def init(params):
        return AverageState(jnp.zeros((), jnp.int32), jax.tree.map(jnp.array, params))

    def update(updates, state, params=None):
        if params is None:
            raise ValueError("track_average needs the parameters (optimizer.update(grads, state, params))")
        count = state.count + 1
        d = warm_decay(decay, count)
        new = optax.apply_updates(params, updates)
        average = jax.tree.map(lambda a, p: (d * a + (1.0 - d) * p).astype(a.dtype), state.average, new)
        return updates, AverageState(count, average)

    return optax.GradientTransformation(init, update)


def _is_average(x) -> bool:
    return isinstance(x, AverageState)


def model_params(state):
    """The parameters a training state stands for: the running average when the optimizer keeps one
    (``training.ema_decay`` > 0), else the trained parameters themselves."""
    found = [s for s in jax.tree.leaves(state.opt_state, is_leaf=_is_average) if _is_average(s)]
    return found[0].average if found else state.params
