"""Finished (or running) run folders as Python objects: ``load_run`` and ``compare_runs``.

    run = fvjax.load_run("runs/vrest/default_seed7")
    run.metrics["connectivity_R2"], run.loss, run.during        # scalars, pandas DataFrames
    run.per_type                                                  # one row per cell type
    params = run.params()                                         # latest checkpoint (plain pytree)
    run.evaluate(last=True)                                       # its last iterate scored (ema runs)
    fvjax.compare_runs(["runs/vrest/default_seed1", "runs/vrest/default_seed2"])
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

PER_TYPE_COLUMNS = ("type", "n_neurons", "tau_true", "tau_learned", "V_rest_true", "V_rest_learned",
                    "W_R2", "cluster", "cluster_share")
# per-neuron parameter of a ground truth -> its recovered array (fvjax.evaluate.pde_n2); medians per type
PARAMETER_COLUMNS = {"c": "c_hat", "s": "s_hat", "g": "g_hat"}


@dataclass
class Run:
    """A run folder: its settings, metrics, curves and recovered parameters (read lazily)."""

    path: Path
    config: object = field(repr=False)

    @cached_property
    def metrics(self) -> dict:
        """metrics.json ({} while the run has not been evaluated)."""
        path = self.path / "metrics.json"
        return json.loads(path.read_text()) if path.is_file() else {}

    @cached_property
    def loss(self):
        """loss.csv as a DataFrame (epoch, iteration, wall_s, one column per loss term)."""
        return _csv(self.path / "loss.csv")

    @cached_property
    def during(self):
        """metrics_during.csv as a DataFrame (R^2 values at the in-training checkpoints)."""
        return _csv(self.path / "metrics_during.csv")

    @cached_property
    def recovered(self) -> dict:
        """recovered.npz: per-neuron tau, V_rest, cluster label, per-edge corrected W, slopes, gains."""
        path = self.path / "recovered.npz"
        if not path.is_file():
            raise FileNotFoundError(f"{path} does not exist: the run has not been evaluated yet")
        with np.load(path) as data:
            return {k: data[k] for k in data.files}

    @cached_property
    def dataset(self):
        from .dataset import load_dataset
        from .datacache import dataset_dir

        return load_dataset(self.metrics.get("data_dir") or dataset_dir(self.config, self.path))

    @cached_property
    def _network(self):
        """(nodes, ground truth, graph), built once."""
        from .pipeline import network

        return network(self.dataset, self.config)

    @property
    def nodes(self):
        """The network's nodes (a Connectome for flyvis, the SyntheticNetwork otherwise)."""
        return self._network[0]

    @property
    def ground_truth(self):
        return self._network[1]

    @property
    def graph(self):
        """The model's Graph (edges, input nodes and their positions)."""
        return self._network[2]

    def params(self, last: bool = False, refit: bool = True):
        """The model parameters of the latest checkpoint (a plain pytree) and its ModelSpec: the running
        average when the run kept one (``training.ema_decay``), or with ``last`` the trained parameters
        themselves (the last iterate; the same thing when the run kept no average). With
        ``training.refit_at_end``, the refit W and b of ``RUN/refit.npz`` once the run has finished
        (``refit=False``: the trained W, without b)."""
        from . import model as M
        from .train import init_state, make_optimizer, model_params, model_spec
        from .train.checkpoint import latest_checkpoint, restore_checkpoint

        ckpt = latest_checkpoint(self.path)
        if ckpt is None:
            raise FileNotFoundError(f"{self.path}/checkpoints holds no finished checkpoint yet")
        graph = self._network[2]
        spec = model_spec(self.config, int(self.dataset.manifest["n_nodes"]), int(graph.src.shape[0]))
        import jax

        like = init_state(M.init(jax.random.PRNGKey(0), spec), make_optimizer(self.config.training))
        state, _ = restore_checkpoint(ckpt, like)
        params = state.params if last else model_params(state)
        if refit and self.config.training.refit_at_end and ckpt.step is not None:   # the evaluated W and b (training.refit_at_end)
            from .pipeline import stored_refit

            params = stored_refit(self.path, params, ckpt.step) or params
        return params, spec

    def evaluate(self, last: bool = False) -> dict:
        """The full evaluation (``metrics.json``'s keys) of the latest checkpoint's parameters, as
        :meth:`params` picks them; written nowhere. ``last=True`` scores the last iterate of a run that
        kept a parameter average."""
        from .pipeline import evaluate_params

        params, spec = self.params(last)
        return evaluate_params(self.config, params, spec, self.dataset, self.nodes, self.ground_truth, self.graph)[0]

    @cached_property
    def per_type(self):
        """One row per cell type (:func:`per_type_table`)."""
        return per_type_table(self.recovered, self.nodes, self.ground_truth)


def per_type_table(rec: dict, nodes, gt):
    """One row per cell type: true and learned tau and V_rest (median over the type's neurons; also
    ``V_rest_offset`` where ``rec`` has it), the
    R^2 of the corrected W into the type, and the cluster most of its neurons landed in with that
    cluster's share of them. ``rec``: the recovered arrays (recovered.npz)."""
    import pandas as pd

    types = np.asarray(nodes.node_type)
    names = list(getattr(nodes, "type_names", [f"type {t}" for t in range(nodes.n_types)]))
    w_r2 = rec.get("W_R2_per_target_type", np.full(len(names), np.nan))
    rows = []
    for t, name in enumerate(names):
        mine = types == t
        labels = np.asarray(rec["cluster_label"])[mine] if "cluster_label" in rec else np.array([-1])
        values, counts = np.unique(labels, return_counts=True)
        rows.append((name, int(mine.sum()), float(np.median(gt.tau[mine])), float(np.median(rec["tau"][mine])),
                     float(np.median(gt.V_rest[mine])), float(np.median(rec["V_rest"][mine])),
                     float(w_r2[t]), int(values[counts.argmax()]), float(counts.max() / counts.sum())))
    table = pd.DataFrame(rows, columns=list(PER_TYPE_COLUMNS))
    if "V_rest_offset" in rec:   # the probe at the message's constant part (docs/metrics.md)
        table["V_rest_offset"] = [float(np.median(np.asarray(rec["V_rest_offset"])[types == t])) for t in range(len(names))]
    for name, learned in PARAMETER_COLUMNS.items():   # ground truths with more per-neuron parameters (PDE_N2)
        if learned in rec and hasattr(gt, name):
            table[f"{name}_true"] = [float(np.median(np.asarray(getattr(gt, name))[types == t])) for t in range(len(names))]
            table[f"{name}_learned"] = [float(np.nanmedian(np.asarray(rec[learned])[types == t])) for t in range(len(names))]
    return table


def _csv(path: Path):
    import pandas as pd

    return pd.read_csv(path) if path.is_file() else pd.DataFrame()


def load_run(path: str | Path) -> Run:
    """Open a run folder written by ``fvjax.pipeline.run`` / ``experiments.vrest``."""
    from .config import from_stored

    import yaml

    path = Path(path)
    if not (path / "config.yaml").is_file():
        raise FileNotFoundError(f"{path} is not a run folder (no config.yaml)")
    return Run(path, from_stored(yaml.safe_load((path / "config.yaml").read_text())))


SUMMARY_METRICS = ("connectivity_R2", "connectivity_R2_data", "tau_R2", "tau_R2_data", "V_rest_R2",
                   "V_rest_R2_data", "V_rest_R2_offset", "cluster_accuracy", "test_R2", "test_pearson", "training_time_min")


def seed_summary_name(stem: str, seeds: list[int]) -> str:
    """``<stem>_seeds<A>-<B>_summary.json``: the file a multi-seed experiments.vrest command writes beside its run
    folders (``stem``: the preset and recipe part of the folders' names, e.g. ``default``)."""
    return f"{stem}_seeds{seeds[0]}-{seeds[-1]}_summary.json"


def is_seed_summary(path: str | Path) -> bool:
    """Whether ``path`` is a file named as :func:`seed_summary_name` names them."""
    import re

    path = Path(path)
    return path.is_file() and re.fullmatch(r".+_seeds\d+-\d+_summary\.json", path.name) is not None


def compare_runs(paths, metrics: tuple[str, ...] = SUMMARY_METRICS):
    """(table, summary): one row per run (its folder name, seed and metrics), and mean / std / n of
    each metric over the runs that have it. ``summary.attrs["absent"]``: metric -> the runs whose metrics.json
    lacks it (not defined for its network, or evaluated before fvjax reported it), shown as NaN in the table."""
    import pandas as pd

    rows, absent = [], {}
    for p in paths:
        run = load_run(p)
        rows.append({"run": run.path.name, "seed": run.config.simulation.seed,
                     **{k: run.metrics.get(k, np.nan) for k in metrics}})
        for k in metrics:
            if k not in run.metrics:
                absent.setdefault(k, []).append(run.path.name)
    table = pd.DataFrame(rows)
    numeric = table[[k for k in metrics if k in table]].astype(float)
    summary = pd.DataFrame({"mean": numeric.mean(), "std": numeric.std(ddof=0), "n": numeric.count()})
    summary.attrs["absent"] = absent
    return table, summary
