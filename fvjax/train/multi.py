"""Several seeds' models trained as one program: their states stacked on a leading axis and one
``jax.vmap`` of the scanned step trains them together, each on its own dataset, frames and keys.

Every seed's folder gets what :func:`fvjax.train.fit` writes (loss.csv, metrics_during.csv,
checkpoints) and the same parameters up to float rounding (tested against sequential fits). Only
runs that differ in nothing but their seeds can share the program.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Callable

import jax
import jax.numpy as jnp

from .. import model as M
from ..config import Config, ConfigError, settings_diff, to_dict
from ..dataset import Dataset
from ..rng import stream_key
from .loop import (FitResult, _epoch_mode, _Loop, _postfix, block_keys, frame_indices, gather_block, training_graph,
                   model_spec, step_config)
from .average import model_params
from .losses import coefficients
from .optim import make_optimizer
from .step import make_steps

SEED_KEYS = {"simulation": ("seed", "data_cache"), "training": ("seed",)}


def check_same_but_seeds(cfgs: list[Config]) -> None:
    """ConfigError unless the configs differ only in their seeds, and use nothing vmapped training lacks."""
    def settings(cfg):
        return {k: v for k, v in to_dict(cfg).items() if k != "ignored"}
    for cfg in cfgs[1:]:
        differ = settings_diff(settings(cfgs[0]), settings(cfg), skip=SEED_KEYS)
        if differ:
            raise ConfigError(f"vmapped seeds must differ only in their seeds; these differ: {', '.join(differ)}")
    tr, sim = cfgs[0].training, cfgs[0].simulation
    unsupported = {"training.sparsity": tr.sparsity != "none", "training.W_refit_every": tr.W_refit_every > 0,
                   "training.centre_W": tr.centre_W,
                   "simulation.measurement_noise_level": sim.measurement_noise_level > 0}
    bad = [k for k, on in unsupported.items() if on]
    if bad:
        raise ConfigError(f"vmapped seeds do not support {', '.join(bad)}; run these seeds one after another")


@lru_cache(maxsize=8)
def vmapped_steps(spec: M.ModelSpec, optimizer, sc, per_seed_edges: bool = False):
    """The scanned step of :func:`make_steps` vmapped over seeds: (states, batches, keys, xnorms) carry
    a leading seed axis; the graph and the regulariser weights are shared, except the graph's
    ``learned_edges`` when ``per_seed_edges`` (each seed's own silent sources)."""
    _, scanned = make_steps(spec, optimizer, sc)
    graph_axes = M.Graph(None, None, None, None, 0) if per_seed_edges else None
    return jax.jit(jax.vmap(scanned, in_axes=(0, 0, 0, graph_axes, 0, None)), donate_argnums=0)


def shared_graph(graphs: list[M.Graph]) -> M.Graph:
    """The graph the vmapped step takes: the seeds' common edges, with their ``learned_edges`` masks
    (training.hold_silent_sources) stacked on a leading seed axis."""
    if graphs[0].learned_edges is None:
        return graphs[0]
    return graphs[0]._replace(learned_edges=jnp.stack([g.learned_edges for g in graphs]))


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
    loops, states, starts = [], [], set()
    for cfg, data, run_dir, on_eval in zip(cfgs, datas, map(Path, run_dirs), on_evals or [None] * len(cfgs)):
        run_dir.mkdir(parents=True, exist_ok=True)
        loop, state, epoch, it = _Loop.open(cfg, data, training_graph(cfg, data, graph, spec), run_dir, spec, optimizer,
                                            on_eval, checkpoint_every_s)
        loops.append(loop)
        states.append(state)
        starts.add((epoch, it))
    if len(starts) > 1:
        raise ConfigError(f"the folders' checkpoints are at different iterations {sorted(starts)}; "
                          "finish them one at a time (without --vmap)")
    (start_epoch, start_iter), = starts
    state = stack(states)
    try:
        for epoch in range(start_epoch, tr.n_epochs):
            state = _epoch_many(loops, state, epoch, start_iter if epoch == start_epoch else 0, optimizer, progress)
            for i, loop in enumerate(loops):
                loop.save_epoch(unstack(state, i), epoch)
    finally:
        for loop in loops:
            loop.log.close()
    return [loop.result(model_params(unstack(state, i))) for i, loop in enumerate(loops)]


def _epoch_many(loops: list[_Loop], state, epoch: int, start: int, optimizer, progress: bool):
    """One epoch of every seed from iteration ``start``; the states stacked."""
    from tqdm.auto import tqdm

    cfg, n_iter = loops[0].cfg, loops[0].n_iter
    recurrent, time_step = _epoch_mode(cfg, epoch)
    graph = shared_graph([lp.graph for lp in loops])
    step = vmapped_steps(loops[0].spec, optimizer, step_config(cfg, epoch), graph.learned_edges is not None)
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
        keys = jnp.stack([block_keys(b, epoch * n_iter + it, k) for b in base_keys])
        state, terms = step(state, batches, keys, graph, xnorms, coeffs)
        it += k
        after = []
        for i, lp in enumerate(loops):
            one = unstack(state, i)
            row = lp.record(one, {name: v[i] for name, v in terms.items()}, epoch, it)
            after.append(lp.after_block(one, epoch, it))
        if loops[0].solve_due(epoch, it):   # training.refit_every set each seed's W and b: go on from them
            state = stack(after)
        bar.update(k)
        bar.set_postfix(_postfix(row["data"] / lp.data.train.voltage.shape[1], loops[0].cadence), refresh=False)
    bar.close()
    return state
