"""One run end to end: generate (or reuse) the dataset, train (or resume), evaluate, plot.

Works for flyvis and synthetic datasets; experiments are thin wrappers around :func:`run`.
"""

from __future__ import annotations

import json
import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

import jax.numpy as jnp
import numpy as np

from . import model as M
from .config import Config, dump_config, from_stored, settings_diff, to_dict
from .datacache import NOT_IN_DATA
from .dataset import Dataset, load_dataset, verify_dataset
from .networks import generate_dataset, resolve


def network(data: Dataset, cfg: Config):
    """(nodes, ground truth, graph) of a dataset, from the network kind ``cfg`` names
    (:mod:`fvjax.networks`). ``nodes`` has ``node_type``/``n_types`` (a Connectome, or the
    SyntheticNetwork, which is also its own ground truth)."""
    return resolve(cfg).load(data, cfg)


class RunMismatch(ValueError):
    """A run folder was started with other settings than the ones it is asked to continue with."""


# keys that change neither the data, nor the model, nor what training computes
BOOKKEEPING = {"simulation": ("chunk_frames", "data_cache"),
               "training": ("steps_per_call", "eval_every", "eval_budget", "tensorboard")}
# keys a dataset on disk does not depend on (measurement noise is drawn at training time)
DATA_SKIP = {"simulation": NOT_IN_DATA}


def check_usable(cfg: Config, data: Dataset) -> None:
    """Refuse datasets too small to train on or to evaluate (instead of NaN metrics later)."""
    from .dataset import DatasetError

    need_train = cfg.training.time_step + 6      # frames k in [0, T - 4 - time_step) plus the window
    if len(data.train) < need_train:
        raise DatasetError(f"{data.path}: {len(data.train)} training frames, but training needs at least {need_train}; "
                           f"raise simulation.n_frames")
    if len(data.test) < 2:
        raise DatasetError(f"{data.path}: {len(data.test)} test frame(s), but the test rollout needs at least 2; "
                           f"raise simulation.n_test_frames (or n_frames: the default test split is n_frames // 8)")


def check_run_settings(cfg: Config, run_dir: Path) -> None:
    """Refuse to continue a run folder whose config.yaml differs from ``cfg`` (nothing is written)."""
    path = run_dir / "config.yaml"
    if not path.is_file():
        return
    import yaml

    stored = yaml.safe_load(path.read_text()) or {}
    wanted = to_dict(cfg)
    wanted.pop("ignored", None)
    differ = settings_diff(stored, wanted, skip=BOOKKEEPING)
    if differ:
        old = from_stored(stored)
        was = "; ".join(f"{key}: {_shown(_value(old, key))} there, {_shown(_value(cfg, key))} now" for key in differ)
        raise RunMismatch(f"{run_dir} holds a run started with other settings ({was}); its results would be "
                          f"reported under the new ones. Use another run folder (--out) for the new settings, "
                          f"pass the folder's values (--set KEY=VALUE) to continue it, or delete {run_dir} to "
                          f"start over")


def _shown(value) -> str:
    """A config value as --set reads it back: JSON for lists and numbers, strings quoted."""
    return json.dumps(list(value) if isinstance(value, tuple) else value, default=str)


def _value(cfg: Config, dotted: str):
    section, key = dotted.split(".", 1)
    return getattr(getattr(cfg, section), key)


def ensure_dataset(cfg: Config, data_dir: Path, progress: bool = True, verify: bool = False) -> Dataset:
    """Generate the dataset unless ``data_dir`` holds one made with the same ``simulation`` section
    (a different one is an error naming the keys, never silently reused). Loading checks shapes and
    the ground truth's checksum; ``verify`` re-hashes every array of a reused dataset."""
    if not (data_dir / "manifest.json").is_file():
        from .datacache import dataset_lock

        with dataset_lock(data_dir):       # concurrent runs build it once; the others wait, then reuse
            if not (data_dir / "manifest.json").is_file():
                generate_dataset(cfg, data_dir, overwrite=True, progress=progress)
    elif verify:
        verify_dataset(data_dir)
    data = load_dataset(data_dir)
    differ = settings_diff({"simulation": data.manifest["config"]["simulation"]},
                           {"simulation": to_dict(cfg)["simulation"]}, ("simulation",), DATA_SKIP)
    if differ:
        raise RunMismatch(f"{data_dir} was generated with different simulation settings ({', '.join(differ)}); "
                         f"delete it or use another run folder")
    return data


def run(cfg: Config, run_dir: str | Path, *, data_dir: str | Path | None = None, progress: bool = True,
        header: dict | None = None, plots: bool = True, verify_data: bool = False) -> dict:
    """Train and evaluate ``cfg`` in ``run_dir`` with the dataset in ``data_dir`` (default: the shared
    dataset cache, :mod:`fvjax.datacache`; ``run_dir/data`` for run folders made before it).
    ``header`` (e.g. the seed) heads analysis.log and is recorded in the metrics.

    Writes config.yaml, loss.csv, metrics_during.csv, checkpoints/, metrics.json, analysis.log,
    recovered.npz and plots/*.png; returns the metrics. Re-running resumes. One process at a time
    per folder (:func:`run_lock`)."""
    from .device import configure_jax

    configure_jax()
    cfg, run_dir, data_dir = _run_folder(cfg, run_dir, data_dir)
    with run_lock(run_dir):
        return _run_locked(cfg, run_dir, data_dir, progress, header, plots, verify_data)


class RunLocked(RuntimeError):
    """Another live process is writing to this run folder."""


# the lock holder refreshes its lock's mtime this often; a lock from another host (a cluster worker
# that was lost) whose mtime is older than LOCK_STALE_S is taken over
LOCK_HEARTBEAT_S, LOCK_STALE_S = 60.0, 600.0


def _lock_is_stale(lock: Path, owner: dict, host: str) -> bool:
    from .dataset import _pid_alive

    if not owner.get("pid"):
        return True
    if owner.get("host") == host:
        return not _pid_alive(int(owner["pid"]))
    try:
        return time.time() - lock.stat().st_mtime > LOCK_STALE_S
    except FileNotFoundError:
        return True


@contextmanager
def run_lock(run_dir: Path):
    """One writer per run folder: ``run_dir/.lock`` holds the owner's host and pid, and its mtime is
    refreshed every LOCK_HEARTBEAT_S while held. A lock left by a process that no longer exists on
    this host, or by another host without a heartbeat for LOCK_STALE_S (a lost cluster worker), is
    taken over (with a message); a live one refuses."""
    import socket
    import threading

    lock, host = run_dir / ".lock", socket.gethostname()
    me = {"host": host, "pid": os.getpid()}
    try:
        fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        try:
            owner = json.loads(lock.read_text())
        except (OSError, ValueError):
            owner = {}
        if not _lock_is_stale(lock, owner, host):
            raise RunLocked(f"{run_dir} is being written by process {owner.get('pid')} on {owner.get('host')} "
                            f"(its {lock}); wait for it, or use another run folder") from None
        print(f"note: taking over {lock} left by process {owner.get('pid')} on {owner.get('host')}, which is gone",
              flush=True)   # (or an empty lock)
        lock.unlink(missing_ok=True)
        fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    with os.fdopen(fd, "w") as fh:
        fh.write(json.dumps(me))
    stop = threading.Event()

    def heartbeat():
        while not stop.wait(LOCK_HEARTBEAT_S):
            try:
                os.utime(lock)
            except OSError:
                pass
    beat = threading.Thread(target=heartbeat, name=f"lock {run_dir.name}", daemon=True)
    beat.start()
    try:
        yield
    finally:
        stop.set()
        beat.join()
        lock.unlink(missing_ok=True)


class Prepared(NamedTuple):
    """A run folder ready to train: its data, ground truth and graph (see :func:`_prepare`)."""

    cfg: Config
    run_dir: Path
    data: Dataset
    nodes: object
    gt: object
    graph: M.Graph
    spec: M.ModelSpec
    kind: object
    started: float


def _prepare(cfg: Config, run_dir: Path, data_dir, progress: bool, verify_data: bool = False) -> Prepared:
    """Generate or reuse the dataset, check it, write config.yaml, load the network's ground truth."""
    from .train import model_spec

    started = time.time()
    data = ensure_dataset(cfg, Path(data_dir), progress, verify_data)
    check_usable(cfg, data)
    tmp = run_dir / "config.yaml.tmp"   # written once the data are usable: a refused run leaves no settings
    dump_config(cfg, tmp)
    os.replace(tmp, run_dir / "config.yaml")
    kind = resolve(cfg)
    nodes, gt, graph = kind.load(data, cfg)
    spec = model_spec(cfg, int(data.manifest["n_nodes"]), int(graph.src.shape[0]))
    return Prepared(cfg, run_dir, data, nodes, gt, graph, spec, kind, started)


def _checks(p: Prepared):
    """The in-training recovery check of a prepared run (writes during/recovered_<it>.npz)."""
    from .evaluate.report import quick_metrics

    return lambda params, it: quick_metrics(params, p.spec, p.graph, p.data, p.gt,
                                            save_to=p.run_dir / "during" / f"recovered_{it:07d}.npz")


def evaluate_params(cfg: Config, params, spec: M.ModelSpec, data: Dataset, nodes, gt, graph: M.Graph):
    """(metrics, arrays): the full evaluation of a run's parameters (what metrics.json holds)."""
    from .evaluate.report import evaluate

    return evaluate(params, spec, graph, data, nodes, gt, cfg.simulation.delta_t,
                    cluster_components=resolve(cfg).cluster_components(nodes))


REFIT_FILE = "refit.npz"   # training.refit_at_end's W and b, with the checkpoint step they were solved at


def stored_refit(run_dir: Path, params: dict, step: int) -> dict | None:
    """``params`` with the W and b of ``run_dir/refit.npz`` when it was solved at ``step``, else None."""
    path = Path(run_dir) / REFIT_FILE
    if not path.is_file():
        return None
    with np.load(path) as f:
        if int(f["step"]) != step:
            return None
        return {**params, "W": jnp.asarray(f["W"], params["W"].dtype), "b": jnp.asarray(f["b"], params["W"].dtype)}


def refit_at_end(p: Prepared, params: dict, step: int, progress: bool) -> tuple[dict, dict]:
    """(params, metrics entries) after ``training.refit_at_end``: W and b set to their least-squares values
    (:func:`fvjax.train.refit.refit_edges`), solved once per final checkpoint and kept in ``RUN/refit.npz`` so
    a re-run, ``Run.params`` and the diagnostics read the same values. The entries include the trained
    parameters' quick scores (``before_refit_*``) so a run shows what the refit changed."""
    tr = p.cfg.training
    if not tr.refit_at_end:
        return params, {}
    stored = stored_refit(p.run_dir, params, step)
    if stored is not None:
        return stored, json.loads((p.run_dir / REFIT_FILE).with_suffix(".json").read_text())
    from .evaluate.report import atomic_write_text
    from .train.loop import hold_silent
    from .train.refit import refit_edges

    if progress:
        print(f"refitting W and b by least squares over {tr.refit_frames} training frames...", flush=True)
    from .evaluate.report import quick_metrics

    trained = {f"before_refit_{k}": v for k, v in quick_metrics(params, p.spec, p.graph, p.data, p.gt).items()}
    tick = time.time()
    params, (before, after) = refit_edges(params, p.spec, hold_silent(p.cfg, p.data, p.graph, p.spec), p.data,
                                          tr.refit_frames, tr.refit_ridge)
    info = {"refit_rms_before": before, "refit_rms_after": after,
            "refit_time_min": round((time.time() - tick) / 60, 2), **trained}
    tmp = p.run_dir / f".refit.tmp-{os.getpid()}.npz"
    np.savez(tmp, W=np.asarray(params["W"]), b=np.asarray(params["b"]), step=step)
    atomic_write_text((p.run_dir / REFIT_FILE).with_suffix(".json"), json.dumps(info))
    os.replace(tmp, p.run_dir / REFIT_FILE)
    return params, info


def _csv_rows(run_dir: Path, name: str) -> list[dict]:
    """A run's CSV log (loss.csv, metrics_during.csv) from disk as rows of floats, empty cells NaN; [] if absent."""
    import csv

    if not (run_dir / name).exists():
        return []
    with open(run_dir / name, newline="") as fh:
        return [{k: float(v) if v != "" else float("nan") for k, v in row.items()} for row in csv.DictReader(fh)]


def _final_data_loss(run_dir: Path, history: list[dict]) -> float:
    """The last logged data loss: this process's last block, or, when the run had finished before this
    process (re-evaluated by running its command again), the last row of its loss.csv."""
    rows = history or _csv_rows(run_dir, "loss.csv")
    return float(rows[-1].get("data", float("nan"))) if rows else float("nan")


def _finish(p: Prepared, result, progress: bool, header: dict | None, plots: bool) -> dict:
    """Evaluate the trained parameters; write metrics.json, analysis.log, recovered.npz and plots."""
    from .evaluate.report import write_analysis_log, write_metrics

    if progress:
        print("evaluating (recovered parameters, clustering, test rollout)...", flush=True)
    cfg, data = p.cfg, p.data
    params, refit_info = refit_at_end(p, result.params, result.iterations, progress)
    metrics, arrays = evaluate_params(cfg, params, result.spec, data, p.nodes, p.gt, p.graph)
    metrics.update({"model": p.kind.label(cfg), **refit_info,
                    "final_loss": _final_data_loss(p.run_dir, result.history) / p.spec.n_nodes,
                    "training_time_min": round(result.wall_time_s / 60, 2),
                    # this process's wall time plus the training time of the processes it resumed from
                    "total_time_min": round((time.time() - p.started + result.resumed_wall_s) / 60, 2),
                    "iterations": result.iterations,
                    "data_dir": str(Path(data.path).resolve()),
                    **(header or {})})
    write_metrics(p.run_dir, metrics, arrays)
    write_analysis_log(p.run_dir / "analysis.log", metrics,
                       header={**(header or {}), "n_frames": len(data.train), "iterations": result.iterations,
                               "batch_size": cfg.training.batch_size, "time_step": cfg.training.time_step})
    if plots:
        save_plots(p.run_dir, result, arrays, p.gt, p.nodes, metrics)
    return metrics


def _run_locked(cfg: Config, run_dir: Path, data_dir, progress: bool, header: dict | None, plots: bool,
                verify_data: bool = False) -> dict:
    from .train import fit

    p = _prepare(cfg, run_dir, data_dir, progress, verify_data)
    result = fit(cfg, p.data, p.graph, run_dir, progress=progress, on_eval=_checks(p))
    return _finish(p, result, progress, header, plots)


def _run_folder(cfg: Config, run_dir: str | Path, data_dir) -> tuple[Config, Path, Path]:
    """(cfg with its data cache recorded, run_dir, data_dir) for :func:`run` and :func:`run_vmapped`."""
    from .datacache import cache_root, dataset_dir

    run_dir = Path(run_dir)
    check_run_settings(cfg, run_dir)
    if data_dir is None:
        data_dir = dataset_dir(cfg, run_dir)
        cfg = cfg.replace(**{"simulation.data_cache": str(cache_root(cfg, run_dir))})   # recorded in config.yaml
    run_dir.mkdir(parents=True, exist_ok=True)
    return cfg, run_dir, Path(data_dir)


def run_vmapped(tasks: list[dict], progress: bool = True) -> list[dict]:
    """Several runs that differ only in their seeds, trained as one program: the models of all seeds
    are stacked and one vmapped step trains them together (:func:`fvjax.train.fit_many`); each run
    folder gets what :func:`run` writes. A task holds cfg, run_dir and optionally header, plots,
    data_dir, verify_data. Pays where one model does not fill the device (a GPU); on a 2-core CPU it
    is slower than one run after another (benchmarks/README.md)."""
    from contextlib import ExitStack

    from .device import configure_jax
    from .train import fit_many

    configure_jax()
    folders = [_run_folder(t["cfg"], t["run_dir"], t.get("data_dir")) for t in tasks]
    with ExitStack() as stack:
        for _, run_dir, _ in folders:
            stack.enter_context(run_lock(run_dir))
        prepared = [_prepare(cfg, run_dir, data_dir, progress, t.get("verify_data", False))
                    for (cfg, run_dir, data_dir), t in zip(folders, tasks)]
        results = fit_many([p.cfg for p in prepared], [p.data for p in prepared], prepared[0].graph,
                           [p.run_dir for p in prepared], on_evals=[_checks(p) for p in prepared], progress=progress)
        return [_finish(p, r, progress, t.get("header"), t.get("plots", True))
                for p, r, t in zip(prepared, results, tasks)]


def save_plots(run_dir: Path, result, arrays: dict, gt, nodes, metrics: dict) -> None:
    from .evaluate import plots
    from .evaluate.report import atomic_write_text

    out = run_dir / "plots"
    out.mkdir(exist_ok=True)
    plots.recovery_panel(gt.W, arrays["W"], gt.tau, arrays["tau"], gt.V_rest, arrays["V_rest"],
                         metrics).savefig(out / "recovery.png", dpi=100)
    plots.embedding_plot(result.params["a"], nodes.node_type, nodes.n_types).savefig(out / "embedding.png", dpi=100)
    first = np.array([np.flatnonzero(nodes.node_type == t)[0] for t in range(nodes.n_types)])
    grid = np.linspace(-2, 4, 200, dtype=np.float32)
    v = jnp.broadcast_to(jnp.asarray(grid)[None], (len(first), len(grid)))
    a = result.params["a"][first][:, None, :]
    g = np.asarray(M.edge_function(result.params, result.spec, v, a))
    f = np.asarray(M.update_without_input(result.params, result.spec, v, a))
    plots.function_curves(g, f, grid, nodes.node_type, nodes.n_types).savefig(out / "functions.png", dpi=100)
    # the whole run's curves from disk (a resumed run's history is partial)
    plots.loss_curves(_csv_rows(run_dir, "loss.csv"), _csv_rows(run_dir, "metrics_during.csv")).savefig(
        out / "loss.png", dpi=100)
    if hasattr(nodes, "type_names"):   # flyvis: the per-cell-type table and its figure
        from .runs import per_type_table

        table = per_type_table(arrays, nodes, gt)
        atomic_write_text(run_dir / "per_type.csv", table.to_csv(index=False))
        plots.per_type_figure(table, metrics).savefig(out / "per_type.png", dpi=120)


def _pin_worker(counter, jobs: int) -> None:
    """Process-pool initializer: pin this worker to its own share of the CPU cores (disjoint sets of
    n_cores // jobs cores; round robin when there are more workers than cores), and set the worker
    environment (fvjax.device.worker_env: no GPU memory preallocation) before JAX starts."""
    import os

    from .device import worker_env

    os.environ.update(worker_env())
    cores = sorted(os.sched_getaffinity(0))
    with counter.get_lock():
        index = counter.value
        counter.value += 1
    share = max(len(cores) // jobs, 1)
    start = (index * share) % len(cores)
    os.sched_setaffinity(0, set(cores[start:start + share]))


def run_many(tasks: list[dict], jobs: int = 1, on_result=None, progress: bool = False, fn=None,
             client=None, retries: int = 2) -> list[dict]:
    """Several runs, each ``fn(**task, progress=...)`` (``fn`` default :func:`run`; a task holds cfg,
    run_dir, header, ...): one after another (``jobs`` = 1), in ``jobs`` worker processes each
    pinned to its own share of the cores, or as tasks on a dask ``client`` (fvjax.cluster; each
    retried up to ``retries`` times, resuming from its checkpoint). ``fn`` must be importable for
    the last two. On 2 cores parallel runs are not faster than one after another
    (benchmarks/README.md); they pay on many-core machines and clusters.
    ``on_result(task, metrics)`` is called as each finishes (workers never show progress bars).
    Returns the metrics in task order.

    Runs sharing a ``data_dir`` must find it generated already (the workers would race to write it)."""
    fn = fn or run
    if client is not None:
        from .cluster import run_on_client

        return run_on_client(client, tasks, fn, on_result, retries)
    if jobs <= 1:
        out = []
        for task in tasks:
            out.append(fn(**task, progress=progress))
            if on_result:
                on_result(task, out[-1])
        return out
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed

    ctx = mp.get_context("spawn")          # JAX is not fork-safe
    counter = ctx.Value("i", 0)
    results = {}
    with ProcessPoolExecutor(jobs, mp_context=ctx, initializer=_pin_worker, initargs=(counter, jobs)) as pool:
        futures = {pool.submit(fn, **task, progress=False): i for i, task in enumerate(tasks)}
        for fut in as_completed(futures):
            i = futures[fut]
            results[i] = fut.result()
            if on_result:
                on_result(tasks[i], results[i])
    return [results[i] for i in range(len(tasks))]
