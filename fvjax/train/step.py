"""One jitted training step, and K steps fused under ``lax.scan`` (identical results)."""

from __future__ import annotations

from functools import lru_cache, partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from .. import model as M
from ..rng import stream_key
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
    measurement_noise: float = 0.0   # sigma_m: training sees v + n(t) and y + (n(t+1) - n(t)) / dt
    measurement_seed: int = 0        # the simulation seed; n(t) comes from its measurement stream
    additive: bool = False           # add the f_theta additivity penalty (coeff_f_theta_additive > 0)


def measurement_noise(seed: int, frames, n_nodes: int, sigma: float, dtype=jnp.float32):
    """Measurement noise n(t) (frames.shape + (N,)) of training frame t: a fixed function of the seed
    and the frame, so every read of frame t sees the same sample (as if it had been stored)."""
    key = stream_key(seed, "measurement")   # the same key as before the named streams (tag 0x6D6E)
    flat = jnp.reshape(frames, (-1,))
    draw = jax.vmap(lambda t: jax.random.normal(jax.random.fold_in(key, t), (n_nodes,), dtype))(flat)
    return sigma * draw.reshape(tuple(jnp.shape(frames)) + (n_nodes,))


def noisy_batch(batch: Batch | SeqBatch, sc: StepConfig):
    """The batch as a noisy recording sees it (the later reference's measurement noise): voltages
    plus n(t); one-step targets become the noisy derivative y + (n(t+1) - n(t)) / dt."""
    if sc.measurement_noise <= 0:
        return batch
    n_nodes = batch.voltage.shape[-1]
    if isinstance(batch, SeqBatch):   # windows v(k) ... v(k + S)
        frames = batch.frame[:, None] + jnp.arange(batch.voltage.shape[1])
        return batch._replace(voltage=batch.voltage + measurement_noise(sc.measurement_seed, frames, n_nodes,
                                                                        sc.measurement_noise))
    noise = measurement_noise(sc.measurement_seed, batch.frame[:, None] + jnp.arange(2), n_nodes, sc.measurement_noise)
    return batch._replace(voltage=batch.voltage + noise[:, 0],
                          target=batch.target + (noise[:, 1] - noise[:, 0]) / sc.dt)


def init_state(params: dict, optimizer: optax.GradientTransformation) -> TrainState:
    return TrainState(params, optimizer.init(params), jnp.zeros((), jnp.int32))


def _loss(params, spec, graph, batch, xnorm, coeffs, key, sc: StepConfig):
    batch = noisy_batch(batch, sc)
    if sc.ode is not None:
        return ode_loss(params, spec, graph, batch, xnorm, coeffs, key, sc.dt, sc.noise_recurrent_level, sc.ode)
    if sc.recurrent:
        return recurrent_loss(params, spec, graph, batch, xnorm, coeffs, key, sc.dt,
                              sc.noise_recurrent_level, sc.multi_start)
    return one_step_loss(params, spec, graph, batch, xnorm, coeffs, sc.additive)


def centred_gradients(grads: dict, graph: M.Graph) -> dict:
    """W's gradient in the coordinates (W, b_c = b + M W), (M W)_i = sum_{e: j->i} W_e mu_j: dL/dW_e - mu_j dL/db_i.
    For a message linear in W and b this is the gradient of W_e (g(v_j) - mu_j): a step on W alone leaves the
    neuron's input at its mean source activity unchanged (training.centre_W)."""
    mu = graph.centre[graph.src]
    return {**grads, "W": grads["W"] - mu * grads["b"][graph.dst]}


def uncentred_updates(updates: dict, graph: M.Graph) -> dict:
    """A step (dW, db_c) taken in centred coordinates, as a step of the model's (W, b): db = db_c - M dW."""
    shift = jax.ops.segment_sum(updates["W"] * graph.centre[graph.src], graph.dst, num_segments=graph.centre.shape[0])
    return {**updates, "b": updates["b"] - shift}


def train_step(state: TrainState, batch: Batch | SeqBatch, key, graph: M.Graph, xnorm,
               coeffs: Coefficients, *, spec: M.ModelSpec, optimizer, sc: StepConfig):
    """Gradient step; returns (new state, dict of loss terms)."""
    grad_fn = jax.value_and_grad(_loss, has_aux=True)
    (_, terms), grads = grad_fn(state.params, spec, graph, batch, xnorm, coeffs, key, sc)
    if graph.centre is not None:
        grads = centred_gradients(grads, graph)
    updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
    if graph.centre is not None:
        updates = uncentred_updates(updates, graph)
    params = optax.apply_updates(state.params, updates)
    if graph.learned_edges is not None:   # weights the data cannot see stay at 0
        params = {**params, "W": params["W"] * graph.learned_edges.astype(params["W"].dtype)}
    return TrainState(params, opt_state, state.step + 1), terms


@lru_cache(maxsize=16)
def make_steps(spec: M.ModelSpec, optimizer, sc: StepConfig):
    """(single, scanned) jitted functions.

    single(state, batch, key, graph, xnorm, coeffs) -> (state, terms)
    scanned(state, batches, keys, graph, xnorm, coeffs) -> (state, terms stacked over K), where
    ``batches`` has a leading axis K and ``keys`` is (K, 2).
    Memoised on its (hashable) arguments, so epochs with the same step configuration reuse one
    compiled program instead of tracing it again.
    """
    step = partial(train_step, spec=spec, optimizer=optimizer, sc=sc)

    def scanned(state, batches, keys, graph, xnorm, coeffs):
        def body(s, inputs):
            batch, key = inputs
            return step(s, batch, key, graph, xnorm, coeffs)
        return jax.lax.scan(body, state, (batches, keys))

    return jax.jit(step, donate_argnums=0), jax.jit(scanned, donate_argnums=0)
