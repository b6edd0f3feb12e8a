"""Several seeds' models trained as one program: their states stacked on a leading axis and one
``jax.vmap`` of the scanned step trains them together, each on its own dataset, frames and keys.

Every seed's folder gets what :func:`fvjax.train.fit` writes (loss.csv, metrics_during.csv,
checkpoints) and the same parameters up to float rounding (tested against sequential fits). Only
runs that differ in nothing but their seeds can share the program.
"""

from __future__ import annotations

import time
from functools import lru_cache
from pathlib import Path
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from .. import model as M
from ..config import Config, ConfigError, to_dict
from ..dataset import Dataset
from ..rng import stream_key
from .cadence import EvalCadence
from .checkpoint import save_checkpoint
from .loop import (FitResult, TrainingLog, _check_finite, _epoch_mode, _Loop, _postfix, _restore, frame_indices,
                   gather_block, model_spec, n_iterations, step_config)
from .losses import coefficients
from .optim import make_optimizer
from .step import init_state, make_steps

SEED_KEYS = {("simulation", "seed"), ("training", "seed"), ("simulation", "data_cache")}


def check_same_but_seeds(cfgs: list[Config]) -> None:
    """ConfigError unless the configs differ only in their seeds, and use nothing vmapped training lacks."""
    def settings(cfg):
        d = to_dict(cfg)
        return {(s, k): v for s in ("simulation", "graph_model", "training") for k, v in d[s].items()
                if (s, k) not in SEED_KEYS}
    first = settings(cfgs[0])
    for cfg in cfgs[1:]:
        differ = sorted(f"{s}.{k}" for (s, k), v in settings(cfg).items() if first.get((s, k)) != v)
        if differ:
            raise ConfigError(f"vmapped seeds must differ only in their seeds; these differ: {', '.join(differ)}")
    tr, sim = cfgs[0].training, cfgs[0].simulation
    unsupported = {"training.sparsity": tr.sparsity != "none", "training.W_refit_every": tr.W_refit_every > 0,
                   "simulation.measurement_noise_level": sim.measurement_noise_level > 0}
    bad = [k for k, on in unsupported.items() if on]
    if bad:
        raise ConfigError(f"vmapped seeds do not support {', '.join(bad)}; run these seeds one after another")


@lru_cache(maxsize=8)
def vmapped_steps(spec: M.ModelSpec, optimizer, sc):
    """The scanned step of :func:`make_steps` vmapped over seeds: (states, batches, keys, xnorms) carry
    a leading seed axis; the graph and the regulariser weights are shared."""
    _, scanned = make_steps(spec, optimizer, sc)
    return jax.jit(jax.vmap(scanned, in_axes=(0, 0, 0, None, 0, None)), donate_argnums=0)


def stack(trees):
    return jax.tree.map(lambda *xs: jnp.stack(xs), *trees)


def unstack(tree, i: int):
    return jax.tree.map(lambda x: x[i], tree)


def fit_many(cfgs: list[Config], datas: list[Dataset], graph: M.Graph, run_dirs: list[str | Path], *,
             on_evals: list[Callable | None] | None = None, progress: bool = True,
             checkpoint_every_s: float = 600.0) -> list[FitResult]:
    """:func:`fvjax.train.fit` for several seeds at once (one vmapped step); resumes when every
    folder's latest checkpoint is at the same iteration."""
    check_same_but_seeds(cfgs)
    tr = cfgs[0].training
    spec = model_spec(cfgs[0], datas[0].train.voltage.shape[1], int(graph.src.shape[0]))
    optimizer = make_optimizer(tr)
    n_iter = n_iterations(cfgs[0], len(datas[0].train))
    on_evals = on_evals or [None] * len(cfgs)
    loops, states, starts, resumed_s = [], [], set(), []
    for cfg, data, run_dir, on_eval in zip(cfgs, datas, map(Path, run_dirs), on_evals):
        run_dir.mkdir(parents=True, exist_ok=True)
        fresh = init_state(M.init(stream_key(cfg.training.seed, "init"), spec), optimizer)
        state, epoch, it, elapsed = _restore(run_dir, True, fresh, n_iter)
        starts.add((epoch, it))
        cadence = EvalCadence(tr.eval_every or max(n_iter // 10, 1), tr.eval_budget if on_eval else 0.0)
        loops.append(_Loop(cfg, data, graph, run_dir, spec, n_iter, cadence, TrainingLog(run_dir), on_eval,
                           checkpoint_every_s, time.time() - elapsed))
        states.append(state)
        resumed_s.append(elapsed)
    if len(starts) > 1:
        raise ConfigError(f"the folders' checkpoints are at different iterations {sorted(starts)}; "
                          "finish them one at a time (without --vmap)")
    (start_epoch, start_iter), = starts
    state = stack(states)
    try:
        for epoch in range(start_epoch, tr.n_epochs):
            first = start_iter if epoch == start_epoch else 0
            state = _epoch_many(loops, state, epoch, first, optimizer, progress)
            for i, loop in enumerate(loops):
                loop.log.flush()
                save_checkpoint(loop.run_dir, unstack(state, i), epoch + 1, 0, time.time() - loop.t0,
                                step=(epoch + 1) * n_iter)
    finally:
        for loop in loops:
            loop.log.close()
    return [FitResult(unstack(state.params, i), spec, loop.log.history, time.time() - loop.t0, tr.n_epochs * n_iter,
                      resumed) for i, (loop, resumed) in enumerate(zip(loops, resumed_s))]


def _epoch_many(loops: list[_Loop], state, epoch: int, start: int, optimizer, progress: bool):
    """One epoch of every seed from iteration ``start``; the states stacked."""
    from tqdm.auto import tqdm

    cfg, n_iter = loops[0].cfg, loops[0].n_iter
    recurrent, time_step = _epoch_mode(cfg, epoch)
    step = vmapped_steps(loops[0].spec, optimizer, step_config(cfg, epoch))
    coeffs = coefficients(cfg.training, epoch)
    idx = [frame_indices(lp.cfg, len(lp.data.train), epoch, n_iter, time_step) for lp in loops]
    xnorms = jnp.asarray([lp.data.xnorm for lp in loops], jnp.float32)
    base_keys = [stream_key(lp.cfg.training.seed, "training") for lp in loops]
    bar = tqdm(total=n_iter, initial=start, desc=f"epoch {epoch + 1}/{cfg.training.n_epochs} ({len(loops)} seeds)",
               disable=not progress)
    it = start
    while it < n_iter:
        k = loops[0].block_size(it)
        batches = stack([gather_block(lp.data, ix[it:it + k], time_step, recurrent) for lp, ix in zip(loops, idx)])
        steps = jnp.arange(k) + epoch * n_iter + it
        keys = jnp.stack([jax.vmap(lambda i, b=b: jax.random.fold_in(b, i))(steps) for b in base_keys])
        state, terms = step(state, batches, keys, loops[0].graph, xnorms, coeffs)
        it += k
        for i, lp in enumerate(loops):
            seed_terms = {name: np.asarray(v[i]) for name, v in terms.items()}
            row = lp.log.losses(epoch, it, epoch * n_iter + it, round(time.time() - lp.t0, 2), seed_terms)
            one = unstack(state, i)
            _check_finite(seed_terms, one.params, epoch, it, lp.run_dir, lp.log)
            lp.after_block(one, epoch, it)
        bar.update(k)
        bar.set_postfix(_postfix(row["data"] / lp.data.train.voltage.shape[1], loops[0].cadence), refresh=False)
    bar.close()
    return state
