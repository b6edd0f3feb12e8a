"""One jitted training step, and K steps fused under ``lax.scan`` (identical results)."""

from __future__ import annotations

from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from .. import model as M
from .losses import Batch, Coefficients, SeqBatch, one_step_loss, recurrent_loss
from .ode import ODEConfig, ode_loss


class TrainState(NamedTuple):
    params: dict
    opt_state: Any
    step: jax.Array


class StepConfig(NamedTuple):
    """Static choices of the step (hashable)."""

    recurrent: bool = False
    dt: float = 0.02
    noise_recurrent_level: float = 0.0
    multi_start: bool = False
    ode: ODEConfig | None = None     # neural-ODE training over the window (instead of Euler unrolls)


def init_state(params: dict, optimizer: optax.GradientTransformation) -> TrainState:
    return TrainState(params, optimizer.init(params), jnp.zeros((), jnp.int32))


def _loss(params, spec, graph, batch, xnorm, coeffs, key, sc: StepConfig):
    if sc.ode is not None:
        return ode_loss(params, spec, graph, batch, xnorm, coeffs, key, sc.dt, sc.noise_recurrent_level, sc.ode)
    if sc.recurrent:
        return recurrent_loss(params, spec, graph, batch, xnorm, coeffs, key, sc.dt,
                              sc.noise_recurrent_level, sc.multi_start)
    return one_step_loss(params, spec, graph, batch, xnorm, coeffs)


def train_step(state: TrainState, batch: Batch | SeqBatch, key, graph: M.Graph, xnorm,
               coeffs: Coefficients, *, spec: M.ModelSpec, optimizer, sc: StepConfig):
    """Gradient step; returns (new state, dict of loss terms)."""
    grad_fn = jax.value_and_grad(_loss, has_aux=True)
    (_, terms), grads = grad_fn(state.params, spec, graph, batch, xnorm, coeffs, key, sc)
    updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    return TrainState(params, opt_state, state.step + 1), terms


def make_steps(spec: M.ModelSpec, optimizer, sc: StepConfig):
    """(single, scanned) jitted functions.

    single(state, batch, key, graph, xnorm, coeffs) -> (state, terms)
    scanned(state, batches, keys, graph, xnorm, coeffs) -> (state, terms stacked over K), where
    ``batches`` has a leading axis K and ``keys`` is (K, 2).
    """
    step = partial(train_step, spec=spec, optimizer=optimizer, sc=sc)

    def scanned(state, batches, keys, graph, xnorm, coeffs):
        def body(s, inputs):
            batch, key = inputs
            return step(s, batch, key, graph, xnorm, coeffs)
        return jax.lax.scan(body, state, (batches, keys))

    return jax.jit(step, donate_argnums=0), jax.jit(scanned, donate_argnums=0)
