"""Data losses and regularisers (flyvis-gnn recipe; see docs/training.md for the differences).

Norms follow the reference: ``l1 = sum |x|``, ``l2 = Euclidean norm`` (not squared).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .. import model as M
from ..config import LINEAR_SLOPES, TrainingConfig


class Coefficients(NamedTuple):
    """Regulariser weights as traced scalars (annealing changes them without recompiling)."""

    W_L1: jax.Array
    W_L2: jax.Array
    g_phi_weight_L1: jax.Array
    g_phi_weight_L2: jax.Array
    f_theta_weight_L1: jax.Array
    f_theta_weight_L2: jax.Array
    g_phi_diff: jax.Array
    g_phi_norm: jax.Array
    f_theta_additive: jax.Array = 0.0   # fvjax's own: see f_theta_interaction
    f_theta_zero: jax.Array = 0.0       # c ||f_theta(v=0, a, msg=0, e=0)||_2, already times the batch size
    g_phi_zero: jax.Array = 0.0         # fvjax's own: c ||g_phi(0, a_j)^2||_2 (ReLU(0) = 0)
    g_phi_linear: jax.Array = 0.0       # fvjax's own: c ||g(v) - v g'(v)||_2 where v > 0 (see off_the_line)
    g_phi_linear_slope: jax.Array = 0   # index into config.LINEAR_SLOPES: how g'(v) is taken
    diff_scale: jax.Array = 1.05     # g_phi_diff compares g(v) with g(diff_scale v + diff_shift max(xnorm, 1e-6))
    diff_shift: jax.Array = 0.0


def annealing(rate: float, epoch: int) -> float:
    """1 - exp(-rate * epoch) for rate > 0 (0 in epoch 0), else 1."""
    return float(1.0 - np.exp(-rate * epoch)) if rate > 0 else 1.0


def power_annealing(rate: float, epoch: int) -> float:
    """1 - exp(-rate ** epoch): the Node-21 code's g_phi L1 form (1 - 1/e = 0.632 in epoch 0, then
    falling for rate < 1), kept to reproduce the recipe that made the seed-000 baseline."""
    return float(1.0 - np.exp(-(rate**epoch)))


ANNEALING = {"exponential": annealing, "power": power_annealing}


def coefficients(cfg: TrainingConfig, epoch: int) -> Coefficients:
    """Weights for ``epoch``. W_L2 and the L2 weight penalties are annealed by ``regul_annealing_rate``
    (the later reference's single rate); W_L1, f_theta's L1 and g_phi's L1 by their own rates instead
    (``coeff_W_L1_rate``, ``coeff_f_theta_weight_L1_rate``, ``coeff_g_phi_weight_L1_rate`` in the form
    ``g_phi_weight_L1_annealing``), as in the Node-21 code."""
    anneal = annealing(cfg.regul_annealing_rate, epoch)
    g_l1 = ANNEALING[cfg.g_phi_weight_L1_annealing](cfg.coeff_g_phi_weight_L1_rate, epoch)
    f = lambda x: jnp.asarray(x, jnp.float32)  # noqa: E731
    return Coefficients(
        W_L1=f(cfg.coeff_W_L1 * annealing(cfg.coeff_W_L1_rate, epoch)), W_L2=f(cfg.coeff_W_L2 * anneal),
        g_phi_weight_L1=f(cfg.coeff_g_phi_weight_L1 * g_l1),
        g_phi_weight_L2=f(cfg.coeff_g_phi_weight_L2 * anneal),
        f_theta_weight_L1=f(cfg.coeff_f_theta_weight_L1 * annealing(cfg.coeff_f_theta_weight_L1_rate, epoch)),
        f_theta_weight_L2=f(cfg.coeff_f_theta_weight_L2 * anneal),
        g_phi_diff=f(cfg.coeff_g_phi_diff), g_phi_norm=f(cfg.coeff_g_phi_norm),
        f_theta_additive=f(cfg.coeff_f_theta_additive), g_phi_zero=f(cfg.coeff_g_phi_zero),
        g_phi_linear=f(cfg.coeff_g_phi_linear), g_phi_linear_slope=jnp.asarray(LINEAR_SLOPES.index(cfg.g_phi_linear_slope)),
        # the reference adds its regularisers once per frame of the batch; this one does not depend on the frame
        f_theta_zero=f(cfg.coeff_f_theta_zero * cfg.batch_size),
        **dict(zip(("diff_scale", "diff_shift"), map(f, PERTURBATION[cfg.g_phi_diff_perturbation](cfg.g_phi_diff_delta)))),
    )


# g_phi_diff's comparison point v1 = scale v + shift max(xnorm, 1e-6), per perturbation form
PERTURBATION = {"multiplicative": lambda delta: (1.0 + delta, 0.0),   # Node 21: v (1 + delta)
                "additive": lambda delta: (1.0, delta)}              # later reference: v + delta xnorm


def l2(x):
    """Euclidean norm with gradient 0 (not NaN) at x = 0, like torch.norm's subgradient."""
    sq = jnp.sum(x**2)
    positive = sq > 0
    return jnp.where(positive, jnp.sqrt(jnp.where(positive, sq, 1.0)), 0.0)


def l1(x):
    """sum |x| with subgradient sign(x) (0 at x = 0, like torch; jnp.abs would give 1)."""
    return jnp.sum(x * jax.lax.stop_gradient(jnp.sign(x)))


def _weight_penalty(layers, c1, c2):
    leaves = jax.tree.leaves(layers)
    return sum(c1 * l1(p) + c2 * l2(p) for p in leaves)


def regularizers(params: dict, spec: M.ModelSpec, v0: jax.Array, xnorm, c: Coefficients) -> dict:
    """All regulariser terms (dict name -> scalar). ``v0``: (N,) voltages of the batch's first frame.

    g_phi_diff / g_phi_norm / g_phi_zero see detached inputs (v and a), so their gradient reaches g_phi only.
    """
    a = jax.lax.stop_gradient(params["a"])
    v0 = jax.lax.stop_gradient(v0)
    v1 = c.diff_scale * v0 + c.diff_shift * jnp.maximum(xnorm, 1e-6)
    terms = {
        "W_L1": c.W_L1 * l1(M.weights(params, spec)),
        "W_L2": c.W_L2 * l2(M.weights(params, spec)),
        "g_phi_weight": _weight_penalty(params["g_phi"], c.g_phi_weight_L1, c.g_phi_weight_L2),
        "f_theta_weight": _weight_penalty(params["f_theta"], c.f_theta_weight_L1, c.f_theta_weight_L2),
    }
    terms["f_theta_zero"] = jax.lax.cond(c.f_theta_zero > 0, lambda: c.f_theta_zero * l2(f_theta_at_zero(params, spec)),
                                         lambda: jnp.zeros((), v0.dtype))
    if not spec.pairwise:
        def g_of(v_src):
            return M.edge_function(params, spec, v_src, a)
    else:  # flyvis_B: g_phi([v_i, v_j, a_i, a_j]); perturb v_j, pair each a with itself
        def g_of(v_src):
            return M.pair_edge_function(params, spec, v0, v_src, a, a)
    g0, g1 = g_of(v0), g_of(v1)
    terms["g_phi_diff"] = c.g_phi_diff * l2(jax.nn.relu(g0 - g1))
    terms["g_phi_norm"] = c.g_phi_norm * l2(g_of(jnp.full_like(v0, 2.0 * xnorm)) - 2.0 * xnorm)
    # the message of a silent source: ReLU(0) = 0 in flyvis; pins g_phi's level where the data pin only its slope
    terms["g_phi_zero"] = jax.lax.cond(c.g_phi_zero > 0, lambda: c.g_phi_zero * l2(g_of(jnp.zeros_like(v0))),
                                       lambda: jnp.zeros((), v0.dtype))
    branches = (lambda: jnp.zeros((), v0.dtype),                                      # off
                lambda: c.g_phi_linear * l2(off_the_secant(v0, v1, g0, g1)),             # LINEAR_SLOPES[0]
                lambda: c.g_phi_linear * l2(off_the_line(g_of, v0)))                    # LINEAR_SLOPES[1]
    terms["g_phi_linear"] = jax.lax.switch(jnp.where(c.g_phi_linear > 0, 1 + c.g_phi_linear_slope, 0), branches)
    return terms


def off_the_secant(v0: jax.Array, v1: jax.Array, g0: jax.Array, g1: jax.Array) -> jax.Array:
    """g(v0) - v0 (g(v1) - g(v0)) / (v1 - v0) where v0 > 0 and v1 > v0, else 0: :func:`off_the_line` with
    the slope of the secant to g_phi_diff's comparison point v1, so it reuses g_phi_diff's two evaluations
    of g (the tangent costs one more g_phi pass). Equal to it for a line; for a curved g it differs by
    about v0 (v1 - v0) g''/2."""
    h = v1 - v0
    on = (v0 > 0) & (h > 0)
    return jnp.where(on, g0 - v0 * (g1 - g0) / jnp.where(on, h, 1.0), 0.0)


def off_the_line(g_of, v: jax.Array) -> jax.Array:
    """g(v) - v g'(v) where v > 0, else 0, for a message function ``g_of`` that acts on each source's
    voltage separately: 0 wherever g is a line through the origin, as ReLU(v) = v is above 0. Pins
    g_phi's level on sources that never come near 0, whose slope alone the data constrain (docs/drift.md §3)."""
    g, slope = jax.jvp(g_of, (v,), (jnp.ones_like(v),))
    return jnp.where(v > 0, g - v * slope, 0.0)


def f_theta_at_zero(params, spec) -> jax.Array:
    """(N,) the update at v = 0, msg = 0, e = 0 (the embeddings not detached, as in the reference)."""
    return M.update_without_input(params, spec, jnp.zeros(params["a"].shape[:1], params["a"].dtype), params["a"])


class Batch(NamedTuple):
    """One-step batch: B frames."""

    voltage: jax.Array    # (B, N)
    target: jax.Array     # (B, N) dv/dt
    stimulus: jax.Array   # (B, n_inputs)
    frame: jax.Array | None = None   # (B,) frame indices (the visual field's time input)


class SeqBatch(NamedTuple):
    """Recurrent batch: B windows of S steps."""

    voltage: jax.Array    # (B, S + 1, N): v(k) ... v(k+S)
    stimulus: jax.Array   # (B, S, n_inputs)
    frame: jax.Array | None = None   # (B,) first frame k of each window


def stimulus(params, spec, graph, recorded, frame):
    """The recorded input, or the learned visual field at the same frames (``field: visual``).
    ``recorded``: (B, n_in) or (B, S, n_in); ``frame``: (B,) first frame."""
    if not spec.learns_field:
        return recorded
    if frame is None:
        raise ValueError("the visual field needs the batch's frame indices (Batch.frame)")
    frames = frame if recorded.ndim == 2 else frame[:, None] + jnp.arange(recorded.shape[1])
    return M.visual_field(params, spec, graph, frames)


def f_theta_interaction(params, spec, v, msg, e) -> jax.Array:
    """f(v, m) - f(v, 0) - f(0, m) + f(0, 0) per neuron (a and e as given): the part of f_theta that
    couples voltage and message. The true update (V_rest - v + msg + e) / tau has none, so it is
    identically 0 there; a learned f_theta free to couple them can have any v-slope at msg = 0 — the
    point the reference's tau, V_rest and W* probes evaluate — however well it fits the data."""
    a = params["a"]
    zero = jnp.zeros_like(v)

    def f(vv, mm):
        return M.update_function(params, spec, vv, a, mm, e)

    return f(v, msg) - f(v, zero) - f(zero, msg) + f(zero, zero)


def additivity_penalty(params, spec, graph, v, msg, stim, c: Coefficients) -> jax.Array:
    """c ||f_theta_interaction||_2 on one frame (inputs detached: it shapes f_theta only)."""
    e = M.node_stimulus(graph, stim, spec.n_nodes)
    v, msg, e = (jax.lax.stop_gradient(x) for x in (v, msg, e))
    return c.f_theta_additive * l2(f_theta_interaction(params, spec, v, msg, e))


def one_step_loss(params, spec, graph, batch: Batch, xnorm, c: Coefficients, additive: bool = False):
    """``||pred - y||_2`` + regularisers; ``additive`` (static) adds :func:`additivity_penalty`."""
    stim = stimulus(params, spec, graph, batch.stimulus, batch.frame)
    pred, msg = M.apply(params, spec, graph, batch.voltage, stim)
    data = l2(pred - batch.target)
    terms = regularizers(params, spec, batch.voltage[0], xnorm, c)
    if additive:
        terms["f_theta_additive"] = additivity_penalty(params, spec, graph, batch.voltage[:1], msg[:1], stim[:1], c)
    return data + sum(terms.values()), {"data": data, **terms}


def rollout(params, spec, graph, v0, stimulus, key, dt: float, noise_std: float):
    """Unroll the model's own Euler steps: v0 (B, N), stimulus (B, S, n_in) -> v(S) (B, N)."""
    def step(v, inputs):
        stim, k = inputs
        dv, _ = M.apply(params, spec, graph, v, stim)
        v_next = v + dt * dv
        if noise_std > 0:
            v_next = v_next + noise_std * jax.random.normal(k, v.shape, v.dtype)
        return v_next, None

    n_steps = stimulus.shape[1]
    keys = jax.random.split(key, n_steps)
    v_end, _ = jax.lax.scan(step, v0, (jnp.swapaxes(stimulus, 0, 1), keys))
    return v_end


def recurrent_loss(params, spec, graph, batch: SeqBatch, xnorm, c: Coefficients, key, dt: float,
                   noise_std: float, multi_start: bool = False):
    """BPTT over S steps; loss ||(v_hat(k+S) - v(k+S)) / (dt S)||_2 (+ regularisers once).

    ``multi_start``: also start at k+1 ... k+S-1 (shorter unrolls to the same target frame) and
    average the S terms (the reference's intent, without its B = S indexing assumption)."""
    n_steps = batch.stimulus.shape[1]
    target = batch.voltage[:, -1]
    starts = range(n_steps) if multi_start else (0,)
    keys = jax.random.split(key, n_steps)
    data = 0.0
    stim = stimulus(params, spec, graph, batch.stimulus, batch.frame)
    for s in starts:
        v_hat = rollout(params, spec, graph, batch.voltage[:, s], stim[:, s:], keys[s], dt, noise_std)
        data = data + l2((v_hat - target) / (dt * n_steps))
    data = data / len(starts)
    terms = regularizers(params, spec, batch.voltage[0, 0], xnorm, c)
    return data + sum(terms.values()), {"data": data, **terms}
