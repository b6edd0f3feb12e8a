"""The training loop: sample frames, stream them from the memory-mapped dataset in blocks of
``steps_per_call`` iterations, run the scanned step, log, checkpoint, resume."""

from __future__ import annotations

import csv
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from .. import model as M
from ..config import G_PHI_INPUTS, UPDATE_TYPES, Config, ConfigError
from ..dataset import Dataset, ever_active, mean_rectified, read_rows, voltage_sample
from ..rng import stream_key, stream_rng
from .average import model_params
from .cadence import EvalCadence
from .checkpoint import latest_checkpoint, restore_checkpoint, save_checkpoint
from .losses import Batch, SeqBatch, coefficients
from .optim import fresh_moments, make_optimizer
from .refit import refit_edges, refit_W
from .snap import GRID_FRAMES, SNAPS, frozen_groups, record_snap, snap_due
from .ode import ODEConfig
from .step import StepConfig, init_state, make_steps
from .tensorboard import open_tensorboard


def n_iterations(cfg: Config, n_frames: int) -> int:
    """Iterations per epoch: ``training.n_iter`` or the reference's int(T * aug // B * 0.2)."""
    tr = cfg.training
    return tr.n_iter or max(int((n_frames * tr.data_augmentation_loop // tr.batch_size) * 0.2), 1)


def frame_indices(cfg: Config, n_frames: int, epoch: int, n_iter: int, time_step: int) -> np.ndarray:
    """(n_iter, B) start frames: i.i.d. uniform like the reference's (which drew them with
    RandomState of the seed plus the epoch), from the run's "frames" stream and the epoch; aligned down to a
    multiple of time_step for recurrent training."""
    tr = cfg.training
    high = max(n_frames - 4 - time_step, 1)
    idx = stream_rng(tr.seed, "frames", epoch).integers(0, high, size=n_iter * tr.batch_size)
    if time_step > 1:
        idx -= idx % time_step
    return idx.reshape(n_iter, tr.batch_size)


def model_spec(cfg: Config, n_nodes: int, n_edges: int) -> M.ModelSpec:
    gm, tr = cfg.graph_model, cfg.training
    return M.ModelSpec(n_nodes=n_nodes, n_edges=n_edges, variant=gm.signal_model_name,
                       embedding_dim=gm.embedding_dim, hidden_dim=gm.hidden_dim, n_layers=gm.n_layers,
                       hidden_dim_update=gm.hidden_dim_update, n_layers_update=gm.n_layers_update,
                       activation=gm.MLP_activation, g_phi_positive=gm.g_phi_positive,
                       edge_embedding=G_PHI_INPUTS[gm.g_phi_input], update=UPDATE_TYPES[gm.update_type][0],
                       w_init_mode=tr.w_init_mode, w_init_scale=tr.w_init_scale, field=gm.field_type,
                       low_rank=gm.low_rank if gm.low_rank_factorization else 0,
                       siren_hidden=gm.hidden_dim_nnr_f, siren_layers=gm.n_layers_nnr_f, omega=gm.omega_f,
                       xy_period=gm.nnr_f_xy_period, T_period=gm.nnr_f_T_period, neuron_bias=tr.neuron_bias)


def gather_block(data: Dataset, idx: np.ndarray, time_step: int, recurrent: bool):
    """Read one block of batches (K, B, ...) from the dataset files (only those frames, with pread)."""
    split = data.train
    flat = idx.reshape(-1)
    if not recurrent:
        get = lambda a: read_rows(a, flat).reshape(idx.shape + a.shape[1:])  # noqa: E731
        return Batch(jnp.asarray(get(split.voltage)), jnp.asarray(get(split.target)), jnp.asarray(get(split.stimulus)),
                     jnp.asarray(idx, jnp.int32))
    window = flat[:, None] + np.arange(time_step + 1)[None]
    volts = read_rows(split.voltage, window).reshape(window.shape + split.voltage.shape[1:])
    stims = read_rows(split.stimulus, window[:, :-1]).reshape(window[:, :-1].shape + split.stimulus.shape[1:])
    k, b = idx.shape
    return SeqBatch(jnp.asarray(volts.reshape(k, b, time_step + 1, -1)),
                    jnp.asarray(stims.reshape(k, b, time_step, -1)), jnp.asarray(idx, jnp.int32))


@dataclass
class FitResult:
    params: dict
    spec: M.ModelSpec
    history: list[dict] = field(default_factory=list)
    wall_time_s: float = 0.0         # training wall time of this run, over every process that resumed it
    iterations: int = 0
    resumed_wall_s: float = 0.0      # the part of wall_time_s spent by earlier processes (0 for a fresh run)


def _epoch_mode(cfg: Config, epoch: int) -> tuple[bool, int]:
    """(windowed, time_step): recurrent and neural-ODE training read windows of time_step frames."""
    tr = cfg.training
    windowed = (tr.recurrent_training or tr.neural_ODE_training) and epoch >= tr.recurrent_training_start_epoch
    return windowed, (tr.time_step if windowed else 1)


def step_config(cfg: Config, epoch: int) -> StepConfig:
    tr = cfg.training
    windowed, _ = _epoch_mode(cfg, epoch)
    ode = None
    if windowed and tr.neural_ODE_training:
        ode = ODEConfig(tr.ode_method, tr.ode_rtol, tr.ode_atol, tr.ode_adjoint, tr.ode_state_clamp)
    return StepConfig(windowed, cfg.simulation.delta_t, tr.noise_recurrent_level, tr.multi_start_recurrent, ode,
                      cfg.simulation.measurement_noise_level, cfg.simulation.seed,
                      tr.coeff_f_theta_additive > 0)


def _restore(run_dir: Path, resume: bool, state, n_iter: int) -> tuple:
    """(state, epoch, iteration, wall seconds) to start from: the latest checkpoint when resuming
    (its logs are cut back to it), else the fresh state at 0."""
    ckpt = latest_checkpoint(run_dir) if resume else None
    if ckpt is None:
        return state, 0, 0, 0.0
    state, meta = restore_checkpoint(ckpt, state)
    epoch, it = meta["epoch"], meta["iteration"]
    _truncate_log(run_dir / "loss.csv", epoch, it)
    _truncate_checks(run_dir / "metrics_during.csv", epoch * n_iter + it)
    _truncate_checks(run_dir / "refits.csv", epoch * n_iter + it)
    return state, epoch, it, meta["wall_time_s"]


@dataclass
class _Loop:
    """What every block of one run folder's fit shares (built once by :meth:`open`, in :func:`fit` and
    per seed in :func:`fvjax.train.fit_many`)."""

    cfg: Config
    data: Dataset
    graph: M.Graph
    run_dir: Path
    spec: M.ModelSpec
    n_iter: int
    cadence: EvalCadence
    log: "TrainingLog"
    on_eval: Callable | None
    checkpoint_every_s: float
    t0: float
    last_ckpt: float = field(default_factory=time.time)
    resumed_s: float = 0.0     # training wall time of the processes this run resumed from

    @classmethod
    def open(cls, cfg: Config, data: Dataset, graph: M.Graph, run_dir: Path, spec: M.ModelSpec, optimizer,
             on_eval: Callable | None, checkpoint_every_s: float, resume: bool = True):
        """(loop, state, epoch, iteration) to start from: the latest checkpoint in ``run_dir`` when
        resuming, else the initial state of the run's "init" stream at (0, 0)."""
        tr = cfg.training
        n_iter = n_iterations(cfg, len(data.train))
        fresh = init_state(M.init(stream_key(tr.seed, "init"), spec), optimizer)
        state, epoch, it, elapsed = _restore(run_dir, resume, fresh, n_iter)
        cadence = EvalCadence(tr.eval_every or max(n_iter // 10, 1), tr.eval_budget if on_eval else 0.0)
        loop = cls(cfg, data, graph, run_dir, spec, n_iter, cadence, TrainingLog(run_dir, tensorboard=tr.tensorboard),
                   on_eval, checkpoint_every_s, time.time() - elapsed, resumed_s=elapsed)
        return loop, state, epoch, it

    def record(self, state, terms: dict, epoch: int, it: int) -> dict:
        """Log the block ending at iteration ``it`` (its loss terms as numpy) and stop on non-finite
        terms or parameters; returns the logged row."""
        terms = {name: np.asarray(v) for name, v in terms.items()}
        row = self.log.losses(epoch, it, epoch * self.n_iter + it, round(time.time() - self.t0, 2), terms)
        _check_finite(terms, state.params, epoch, it, self.run_dir, self.log)
        return row

    def save_epoch(self, state, epoch: int) -> None:
        """The checkpoint at the end of ``epoch`` (the logs flushed first)."""
        self.log.flush()
        save_checkpoint(self.run_dir, state, epoch + 1, 0, time.time() - self.t0, step=(epoch + 1) * self.n_iter)

    def result(self, params) -> FitResult:
        return FitResult(params, self.spec, self.log.history, time.time() - self.t0,
                         self.cfg.training.n_epochs * self.n_iter, self.resumed_s)

    def optimizer_for(self, epoch: int):
        """Adam for ``epoch``: a and g_phi at learning rate 0 in the epoch after an embedding snap (every
        one has the same state structure; memoised, so each compiles its step once)."""
        return make_optimizer(self.cfg.training, frozen=frozen_groups(self.cfg.training, epoch))

    def block_size(self, it: int) -> int:
        """Steps until the next grid point (epoch end, check, W refit), at most ``steps_per_call``."""
        tr = self.cfg.training
        grids = [self.cadence.every] + [g for g in (tr.W_refit_every, tr.refit_every) if g]
        return min(tr.steps_per_call, self.n_iter - it, *(g - it % g for g in grids))

    def solve_due(self, epoch: int, it: int) -> bool:
        """Whether ``training.refit_every`` solves for W and b after iteration ``it`` (never after the last)."""
        tr = self.cfg.training
        return bool(tr.refit_every) and it % tr.refit_every == 0 and epoch * self.n_iter + it < tr.n_epochs * self.n_iter

    def refit(self, params: dict, step: int) -> dict:
        """``params`` with W and b at their least-squares values (``training.refit_every``; the solve of
        ``refit_at_end``); the residual's rms before and after goes to ``refits.csv``."""
        tr = self.cfg.training
        tick = time.time()
        params, (before, after) = refit_edges(params, self.spec, self.graph, self.data, tr.refit_frames, tr.refit_ridge)
        self.log.refit(step, before, after, time.time() - tick)
        return params

    def checks(self, state, step: int) -> dict:
        """The recovery check of the model's parameters; with parameter averaging also that of the last
        iterate, as ``<name>_last`` (checked first, so files the check writes hold the average's)."""
        model = model_params(state)
        if model is state.params:
            return self.on_eval(model, step)
        last = {f"{k}_last": v for k, v in self.on_eval(state.params, step).items()}
        return {**self.on_eval(model, step), **last}

    def after_block(self, state, epoch: int, it: int):
        """W refit, recovery check and time-based checkpoint due after iteration ``it``."""
        tr, step = self.cfg.training, epoch * self.n_iter + it
        if tr.W_refit_every and it % tr.W_refit_every == 0:
            state = state._replace(params=refit_W(state.params, self.spec, self.graph, self.data,
                                                  tr.W_refit_frames, tr.W_refit_ridge))
        if self.solve_due(epoch, it):
            state = state._replace(params=self.refit(state.params, step))
        if self.cadence.due(it):
            tick = time.time()
            self.log.metrics(self.checks(state, step), step)
            self.cadence.record(time.time() - tick)
        if time.time() - self.last_ckpt > self.checkpoint_every_s:
            self.log.flush()
            save_checkpoint(self.run_dir, state, epoch, it, time.time() - self.t0, step=step)
            self.last_ckpt = time.time()
        return state


def block_keys(base_key, first_step: int, k: int) -> jax.Array:
    """(k, 2) keys of the steps first_step ... first_step + k - 1 (over all epochs) of a run's training stream."""
    return jax.vmap(lambda i: jax.random.fold_in(base_key, i))(jnp.arange(k) + first_step)


def _epoch(loop: _Loop, state, epoch: int, start: int, progress: bool):
    """Train one epoch from iteration ``start``; returns the state at its end."""
    from tqdm.auto import tqdm

    cfg, data, n_iter = loop.cfg, loop.data, loop.n_iter
    recurrent, time_step = _epoch_mode(cfg, epoch)
    _, scanned = make_steps(loop.spec, loop.optimizer_for(epoch), step_config(cfg, epoch))
    coeffs = coefficients(cfg.training, epoch)
    idx = frame_indices(cfg, len(data.train), epoch, n_iter, time_step)
    xnorm = jnp.asarray(data.xnorm, jnp.float32)
    base_key = stream_key(cfg.training.seed, "training")
    it = start
    bar = tqdm(total=n_iter, initial=it, desc=f"epoch {epoch + 1}/{cfg.training.n_epochs}", disable=not progress)
    while it < n_iter:
        k = loop.block_size(it)
        batches = gather_block(data, idx[it:it + k], time_step, recurrent)
        state, terms = scanned(state, batches, block_keys(base_key, epoch * n_iter + it, k), loop.graph, xnorm, coeffs)
        it += k
        row = loop.record(state, terms, epoch, it)
        bar.update(k)
        bar.set_postfix(_postfix(row["data"] / data.train.voltage.shape[1], loop.cadence), refresh=False)
        state = loop.after_block(state, epoch, it)
    bar.close()
    return state


def _epoch_end(loop: _Loop, state, epoch: int, progress: bool):
    """What follows an epoch, before its checkpoint: the embedding snap when due (``training.sparsity``),
    and a fresh Adam after a snap and after the epoch that follows one (the reference rebuilds it)."""
    tr = loop.cfg.training
    snaps_now = snap_due(tr, epoch)
    if snaps_now:
        voltages = voltage_sample(loop.data.train, GRID_FRAMES)
        params, info = SNAPS[tr.sparsity](state.params, loop.spec, voltages, tr)
        record_snap(loop.run_dir, epoch, info)
        state = state._replace(params=params)
        if progress:
            print(f"epoch {epoch + 1}: embeddings snapped to {info['n_clusters']} cluster medians, f_theta refit "
                  f"(loss {info['refit_loss'][0]:.4g} -> {info['refit_loss'][1]:.4g}; {loop.run_dir / 'snaps.json'})",
                  flush=True)
    if snaps_now or (epoch > 0 and snap_due(tr, epoch - 1)):
        state = state._replace(opt_state=fresh_moments(loop.optimizer_for(epoch + 1), state.opt_state, state.params,
                                                       keep_average=not snaps_now))
    return state


def fit(cfg: Config, data: Dataset, graph: M.Graph, run_dir: str | Path, *, resume: bool = True,
        progress: bool = True, on_eval: Callable[[dict, int], dict] | None = None,
        checkpoint_every_s: float = 600.0) -> FitResult:
    """Train for ``training.n_epochs`` epochs, writing ``loss.csv``, checkpoints and eval rows (and
    ``snaps.json`` when ``training.sparsity`` snaps the embeddings at an epoch end, :mod:`fvjax.train.snap`).

    ``on_eval(params, iteration) -> dict`` is called on the grid of ``eval_every`` iterations (default
    10 per epoch) while its cost stays within ``eval_budget`` of the training time (see
    :mod:`fvjax.train.cadence`); its results go to ``metrics_during.csv``. With ``resume`` an existing
    checkpoint in ``run_dir/checkpoints`` is continued exactly (same frames, same keys).
    """
    from ..device import configure_jax

    configure_jax()
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    tr = cfg.training
    spec = model_spec(cfg, data.train.voltage.shape[1], int(graph.src.shape[0]))
    graph = training_graph(cfg, data, graph, spec)
    loop, state, start_epoch, start_iter = _Loop.open(cfg, data, graph, run_dir, spec, make_optimizer(tr), on_eval,
                                                      checkpoint_every_s, resume)
    try:
        for epoch in range(start_epoch, tr.n_epochs):
            state = _epoch(loop, state, epoch, start_iter if epoch == start_epoch else 0, progress)
            state = _epoch_end(loop, state, epoch, progress)
            loop.save_epoch(state, epoch)
    finally:
        loop.log.close()
    return loop.result(model_params(state))


def hold_silent(cfg: Config, data: Dataset, graph: M.Graph, spec: M.ModelSpec) -> M.Graph:
    """``graph`` with ``learned_edges`` set when ``training.hold_silent_sources`` asks for it: 0 on the
    edges whose source never rises above 0 in the training data."""
    if not cfg.training.hold_silent_sources:
        return graph
    if spec.all_to_all:
        raise ConfigError("training.hold_silent_sources needs an edge-list W (signal_model_name flyvis_A or "
                          "flyvis_B); the dense variant's sources act through g_phi, not ReLU. Set "
                          "training.hold_silent_sources=false (experiments.vrest's fvjax recipe turns it on)")
    learned = ever_active(data.train.voltage)[np.asarray(graph.src)]
    return graph._replace(learned_edges=jnp.asarray(learned, jnp.float32))


def centre_sources(cfg: Config, data: Dataset, graph: M.Graph, spec: M.ModelSpec) -> M.Graph:
    """``graph`` with ``centre`` (each source's mean ReLU(v) over the training frames) when
    ``training.centre_W`` asks for it (:func:`fvjax.train.step.centred_gradients`)."""
    if not cfg.training.centre_W:
        return graph
    if spec.all_to_all:
        raise ConfigError("training.centre_W needs an edge-list W (signal_model_name flyvis_A or flyvis_B); "
                          "set training.centre_W=false")
    return graph._replace(centre=jnp.asarray(mean_rectified(data.train.voltage), jnp.float32))


def training_graph(cfg: Config, data: Dataset, graph: M.Graph, spec: M.ModelSpec) -> M.Graph:
    """The graph the training step sees: silent sources held (:func:`hold_silent`), centres set
    (:func:`centre_sources`)."""
    return centre_sources(cfg, data, hold_silent(cfg, data, graph, spec), spec)


def _postfix(loss: float, cadence: EvalCadence) -> dict:
    out = {"loss": f"{loss:.4f}"}
    if cadence.budget > 0:
        out["checks"] = f"{100 * cadence.share():.0f}% of time"
    return out


def _check_finite(terms: dict, params, epoch: int, it: int, run_dir: Path, log: "TrainingLog") -> None:
    bad = [name for name, v in terms.items() if not np.isfinite(v).all()]
    if bad or not params_finite(params):
        log.flush()
        what = f"loss term(s) {', '.join(bad)} not finite" if bad else "parameters not finite"
        raise FloatingPointError(
            f"training diverged at epoch {epoch}, iteration {it} ({what}); nothing was saved after the "
            f"last finite checkpoint in {run_dir / 'checkpoints'}. Lower the learning rates or check the data")


@jax.jit
def _all_finite(params) -> jax.Array:
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(params)]))


def params_finite(params) -> bool:
    """Every parameter finite (checked after each block, before any checkpoint can be written)."""
    return bool(_all_finite(params))


def _truncate_checks(path: Path, step: int) -> None:
    """Drop recovery-check rows after the checkpoint we resume from (they will be redone)."""
    if not path.exists():
        return
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
    keep = [r for r in rows if int(float(r["iteration"])) <= step]
    if len(keep) < len(rows):
        _rewrite_csv(path, list(reader.fieldnames), keep)


def widen_csv_header(path: Path, fields: list[str]) -> list[str]:
    """The columns to append rows of ``fields`` to the CSV at ``path`` under: its own header when it
    already has every field, else the union (old columns first), the file rewritten atomically with
    the old rows' new columns left empty. A run resumed by a newer version that logs another loss
    term then keeps every value under its own name instead of shifting columns."""
    if not path.exists() or path.stat().st_size == 0:
        return fields
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        old = list(reader.fieldnames or [])
        if not set(fields) - set(old):
            return old
        rows = list(reader)
    union = old + [k for k in fields if k not in old]
    _rewrite_csv(path, union, rows)
    return union


def _rewrite_csv(path: Path, fields: list[str], rows: list[dict]) -> None:
    """Replace the CSV at ``path`` by ``fields`` and ``rows`` (missing cells empty), atomically."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields, restval="", lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    os.replace(tmp, path)


def _truncate_log(path: Path, epoch: int, iteration: int) -> None:
    """Drop rows logged after the checkpoint we resume from (they will be recomputed)."""
    if not path.exists():
        return
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
    keep = [r for r in rows if (int(r["epoch"]), int(r["iteration"])) <= (epoch, iteration)]
    if rows and len(keep) < len(rows):
        _rewrite_csv(path, list(reader.fieldnames), keep)


class TrainingLog:
    """Where the training curves go: ``loss.csv`` (one row per block of steps), ``metrics_during.csv``
    and ``last_eval.json`` (one row per recovery check) and, with ``tensorboard``, TensorBoard event
    files in ``run_dir/tensorboard`` (tensorboardX; ``pip install -e ".[tensorboard]"``)."""

    def __init__(self, run_dir: Path, tensorboard: bool = False):
        self.run_dir = run_dir
        self.history: list[dict] = []
        self._board = open_tensorboard(run_dir / "tensorboard") if tensorboard else None
        self._file = None
        self._writer = None

    def losses(self, epoch: int, it: int, step: int, wall_s: float, terms: dict) -> dict:
        row = {"epoch": epoch, "iteration": it, "wall_s": wall_s,
               **{name: float(v.mean()) for name, v in terms.items()}}
        if self._writer is None:
            fields = widen_csv_header(self.run_dir / "loss.csv", list(row))
            self._file = open(self.run_dir / "loss.csv", "a", newline="")
            self._writer = csv.DictWriter(self._file, fieldnames=fields, restval="", lineterminator="\n")
            if self._file.tell() == 0:
                self._writer.writeheader()
        self._writer.writerow(row)
        self.history.append(row)
        if self._board is not None:
            for name in terms:
                self._board.add_scalar(f"loss/{name}", row[name], step)
        return row

    def metrics(self, values: dict, iteration: int) -> None:
        path = self.run_dir / "metrics_during.csv"
        fields = widen_csv_header(path, ["iteration", *values])
        new = not path.exists()
        with open(path, "a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=fields, restval="", lineterminator="\n")
            if new:
                w.writeheader()
            w.writerow({"iteration": iteration, **{k: f"{v:.6f}" for k, v in values.items()}})
        tmp = self.run_dir / f".last_eval.tmp-{os.getpid()}"
        tmp.write_text(json.dumps({"iteration": iteration, **values}))
        os.replace(tmp, self.run_dir / "last_eval.json")
        if self._board is not None:
            for name, v in values.items():
                self._board.add_scalar(f"recovery/{name}", float(v), iteration)

    def refit(self, step: int, rms_before: float, rms_after: float, seconds: float) -> None:
        """One row of ``refits.csv`` (``training.refit_every``)."""
        path = self.run_dir / "refits.csv"
        new = not path.exists()
        with open(path, "a") as f:
            f.write(("iteration,rms_before,rms_after,seconds\n" if new else "")
                    + f"{step},{rms_before:.6g},{rms_after:.6g},{seconds:.1f}\n")

    def flush(self) -> None:
        if self._file is not None:
            self._file.flush()
        if self._board is not None:
            self._board.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
        if self._board is not None:
            self._board.close()
