"""Adam with one learning rate per parameter group (optax partitions) and the reference schedulers."""

from __future__ import annotations

from functools import lru_cache

import jax
import jax.numpy as jnp
import optax

from ..config import TrainingConfig
from .average import AverageState, track_average

GROUPS = ("W", "g_phi", "f_theta", "a", "NNR_f", "b")


def group_lrs(cfg: TrainingConfig) -> dict[str, float]:
    """Learning rate per parameter group. The per-neuron bias ``b`` is a group only when it exists
    (``TrainingConfig.neuron_bias``), so the optimizer state of a run without it is what it always was."""
    lrs = {"W": cfg.lr_W, "g_phi": cfg.lr, "a": cfg.lr_embedding,
           "f_theta": cfg.learning_rate_update_start or cfg.lr, "NNR_f": cfg.learning_rate_NNR_f}
    return {**lrs, "b": cfg.lr_bias} if cfg.neuron_bias else lrs


def lr_multiplier(cfg: TrainingConfig, base: float, floor: float):
    """Schedule step -> learning rate for one group (``floor`` = shared eta_min)."""
    if cfg.lr_scheduler == "none":
        return base

    def cosine(step):
        # CosineAnnealingWarmRestarts: period T0 * T_mult^i
        t0, mult = cfg.lr_scheduler_T0, cfg.lr_scheduler_T_mult
        step = jnp.asarray(step, jnp.float32)
        if mult == 1:
            cycle_start, period = jnp.floor(step / t0) * t0, jnp.asarray(float(t0))
        else:
            i = jnp.floor(jnp.log1p(step * (mult - 1) / t0) / jnp.log(float(mult)))
            cycle_start = t0 * (mult**i - 1) / (mult - 1)
            period = t0 * mult**i
        frac = (step - cycle_start) / period
        return floor + (base - floor) * 0.5 * (1 + jnp.cos(jnp.pi * frac))

    if cfg.lr_scheduler == "cosine_warm_restarts":
        return cosine

    warm = max(cfg.lr_scheduler_warmup_iters, 1)

    def warmup_cosine(step):  # a real linear warm-up, then cosine restarts (the reference's chain
        # let the cosine overwrite the warm-up; fvjax applies both)
        ramp = jnp.clip(jnp.asarray(step, jnp.float32) / warm, 1e-6, 1.0)
        return ramp * cosine(step)

    return warmup_cosine


GROUP_OF = {"W_L": "W", "W_R": "W",   # low-rank factors learn at W's rate
            "f_gain": "f_theta"}       # the message gain of update "gain" is part of the update rule


def labels(params: dict) -> dict:
    return {k: jax.tree.map(lambda _: GROUP_OF.get(k, k), v) for k, v in params.items()}


def ramped(rate, n_iters: int):
    """``rate`` (a number or a schedule) times min(step / n_iters, 1): a linear warm-up from 0."""
    if n_iters <= 0:
        return rate

    def schedule(step):
        ramp = jnp.minimum(jnp.asarray(step, jnp.float32) / n_iters, 1.0)
        return ramp * (rate(step) if callable(rate) else rate)
    return schedule


# groups with their own warm-up: group -> TrainingConfig key of its length in iterations
WARMUPS = {"W": "lr_W_warmup_iters"}


@lru_cache(maxsize=32)
def make_optimizer(cfg: TrainingConfig, lr_scale: float = 1.0,
                   frozen: tuple[str, ...] = ()) -> optax.GradientTransformation:
    """Adam (0.9, 0.999, eps 1e-8) per group; W's gradient norm clipped when ``grad_clip_W`` > 0;
    the parameters' running average tracked last when ``ema_decay`` > 0 (:mod:`fvjax.train.average`).
    Groups in ``frozen`` get learning rate 0 (same state structure, so a state moves between the two;
    the other groups' schedules are unchanged). Memoised (optax transformations are stateless), so
    fits of one configuration in one process share their compiled steps (``make_steps``)."""
    unknown = set(frozen) - set(GROUPS)
    if unknown:
        raise ValueError(f"frozen groups {sorted(unknown)}: expected some of {GROUPS}")
    lrs = {k: v * lr_scale for k, v in group_lrs(cfg).items()}
    gnn = [v for k, v in lrs.items() if k in ("W", "g_phi", "f_theta", "a") and v > 0]   # not the SIREN's or the bias's
    floor = min(gnn) * cfg.lr_scheduler_eta_min_ratio if gnn else 0.0
    transforms = {}
    for name, lr in lrs.items():
        rate = lr_multiplier(cfg, 0.0, 0.0) if name in frozen else lr_multiplier(cfg, lr, floor)
        rate = ramped(rate, getattr(cfg, WARMUPS[name]) if name in WARMUPS else 0)
        adam = optax.adam(rate, b1=0.9, b2=0.999, eps=1e-8)
        if name == "W" and cfg.grad_clip_W > 0:
            adam = optax.chain(optax.clip_by_global_norm(cfg.grad_clip_W), adam)
        transforms[name] = adam
    partitioned = optax.multi_transform(transforms, labels)
    return optax.chain(partitioned, track_average(cfg.ema_decay)) if cfg.ema_decay > 0 else partitioned


def fresh_moments(optimizer: optax.GradientTransformation, opt_state, params, keep_average: bool = False):
    """``optimizer``'s initial state for ``params`` (Adam's moments and bias-correction count back to 0),
    keeping the learning-rate schedules' step counts of ``opt_state``, and with ``keep_average`` the
    parameters' running average too (``training.ema_decay``; restarted only when the parameters jumped)."""
    kept = (optax.ScaleByScheduleState, AverageState) if keep_average else (optax.ScaleByScheduleState,)
    is_kept = lambda x: isinstance(x, kept)  # noqa: E731
    return jax.tree.map(lambda new, old: old if is_kept(new) else new,
                        optimizer.init(params), opt_state, is_leaf=is_kept)
