"""Run an exploration: batches of mutated configurations, logged as a tree, parents chosen by UCB.

Folder layout (``out``)::

    <name>_tree.jsonl       the journal, source of truth: one JSON line per node (fvjax.explore.journal)
    <name>_analysis.md      text view of the journal, one entry per iteration (seeds' form), re-rendered
    <name>_ucb_scores.txt   scores of the current block's nodes, best first (rewritten every batch)
    configs/iter_NNN.json   parent and config changes (from the base) of every node, written at launch
    iter_NNN/               the run folder of each iteration (metrics.json, analysis.log, plots)
    data/                   the shared dataset (unless regenerate_data)
    robustness.json         repeat-seed statistics of the best node (robustness_seeds > 0)

Re-running the same command resumes after the last logged iteration. A folder from before the journal
(a text log only) is imported once: its log is kept verbatim in the journal, its nodes parsed from it.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Callable

import numpy as np

from ..config import Config, ConfigError, to_dict
from .proposers import Proposal, Proposer
from .journal import append_event, node_event, nodes_of, read_events, render_log
from .tree import Node, format_scores, parse_log, ucb_scores


@dataclass(frozen=True)
class ExploreSettings:
    name: str = "explore"
    n_iterations: int = 12
    n_parallel: int = 1           # slots (configurations) per batch
    n_iter_block: int = 12        # UCB only looks at the current block; a block starts from root
    ucb_c: float = 1.414
    reward_key: str = "connectivity_R2"
    formula: str = "puct"
    regenerate_data: bool = False  # seed 000: new simulation seed per iteration; seed 003: one dataset
    robustness_seeds: int = 0      # finally re-run the best node with this many training seeds
    jobs: int = 1                  # worker processes (one core each) for the slots of a batch
    retries: int = 2               # with a dask client: times a failed slot is re-run (fvjax.cluster)
    seed: int = 0                  # of the proposer's random choices

    def __post_init__(self):
        if min(self.n_iterations, self.n_parallel, self.n_iter_block) < 1:
            raise ValueError("n_iterations, n_parallel and n_iter_block must be >= 1")


def _flat(cfg: Config) -> dict:
    out = {}
    for section, values in to_dict(cfg).items():
        if isinstance(values, dict):
            out.update({f"{section}.{k}": v for k, v in values.items()})
    return out


def mutation_text(base: Config, parent_changes: dict, changes: dict) -> str:
    before = {**_flat(base), **parent_changes}
    return "; ".join(f"{k}: {before.get(k)} -> {v}" for k, v in changes.items()) or "none"


class Exploration:
    """State of one exploration folder (see the module docstring)."""

    def __init__(self, base: Config, out: str | Path, settings: ExploreSettings):
        self.base, self.out, self.s = base, Path(out), settings
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / "configs").mkdir(exist_ok=True)
        self.journal = self.out / f"{settings.name}_tree.jsonl"
        self.log = self.out / f"{settings.name}_analysis.md"
        self.ucb_file = self.out / f"{settings.name}_ucb_scores.txt"

    def nodes(self) -> list[Node]:
        if not self.journal.exists() and self.log.exists():
            self.import_text_log()
        return nodes_of(read_events(self.journal, repair=True)) if self.journal.exists() else []

    def import_text_log(self) -> None:
        """Journal an exploration logged as text only: the log verbatim, then its parsed nodes (configs
        from configs/iter_NNN.json)."""
        text = self.log.read_text()
        events = [{"event": "legacy_log", "file": self.log.name, "text": text}]
        for n in parse_log(text):
            f = self.out / "configs" / f"iter_{n.id:03d}.json"
            if f.exists():
                n.config = json.loads(f.read_text())["changes"]
            events.append(node_event(n, reward_key=self.s.reward_key, imported=True))
        tmp = self.journal.with_name(self.journal.name + ".tmp")
        tmp.unlink(missing_ok=True)
        for e in events:
            append_event(tmp, e)
        tmp.replace(self.journal)

    def append(self, event: dict) -> None:
        """Journal ``event`` and re-render the text log from the journal."""
        from ..evaluate.report import atomic_write_text

        append_event(self.journal, event)
        atomic_write_text(self.log, render_log(read_events(self.journal), self.s.reward_key))

    def block_of(self, iteration: int) -> tuple[int, int]:
        b = (iteration - 1) // self.s.n_iter_block
        return b * self.s.n_iter_block + 1, (b + 1) * self.s.n_iter_block

    def scores(self, nodes, iteration: int):
        return ucb_scores(nodes, self.s.ucb_c, self.s.reward_key, self.block_of(iteration), self.s.formula)

    def write_scores(self, nodes, iteration: int) -> None:
        first, last = self.block_of(iteration)
        header = (f"=== UCB Scores (block {(first - 1) // self.s.n_iter_block}, iters {first}-{last}, "
                  f"N={len([n for n in nodes if first <= n.id <= last])}, c={self.s.ucb_c}) ===")
        self.ucb_file.write_text(format_scores(self.scores(nodes, iteration), header, self.s.reward_key))

    def config_for(self, changes: dict, iteration: int, slot: int) -> Config:
        seeds = {}
        if self.s.regenerate_data:  # the reference's rule: seeds forced per iteration and slot
            seeds = {"simulation.seed": iteration * 1000 + slot, "training.seed": iteration * 1000 + slot + 500}
        return self.base.replace(**{**changes, **seeds})

    def task(self, node: Node, cfg: Config) -> dict:
        """Record the node's config, and the keyword arguments of its run."""
        (self.out / "configs" / f"iter_{node.id:03d}.json").write_text(
            json.dumps({"parent": node.parent, "changes": node.config}, indent=1))
        return {"cfg": cfg, "run_dir": self.out / f"iter_{node.id:03d}", "header": {"iteration": node.id},
                "data_dir": None if self.s.regenerate_data else self.out / "data"}

    def record(self, node: Node, metrics: dict, proposal: Proposal) -> Node:
        note = proposal.note
        if "error" in metrics:       # a diverged run is a result, not a crash
            metrics, node.status, note = {self.s.reward_key: float("nan")}, "failed", f"run failed: {metrics['error']}"
        node.metrics = metrics
        event = node_event(node, proposal.rule, note, self.s.reward_key)
        node.status = event["status"]
        self.append(event)
        return node


def run_safely(run_fn: Callable, **task) -> dict:
    """``run_fn(**task)``, with a diverged or invalid run returned as ``{"error": ...}``."""
    try:
        return run_fn(**task)
    except (FloatingPointError, ValueError) as err:
        return {"error": f"{type(err).__name__}: {err}"}


def _batch(ex: Exploration, proposer: Proposer, proposals: list[Proposal], nodes: list[Node], first: int):
    """(node, task) for each proposal; invalid proposals stop the exploration with a clear error."""
    by_id = {n.id: n for n in nodes}
    out = []
    for slot, p in enumerate(proposals):
        parent_changes = by_id[p.parent].config if p.parent in by_id else {}
        node = Node(first + slot, p.parent, strategy=p.strategy, config={**parent_changes, **p.changes},
                    mutation=mutation_text(ex.base, parent_changes, p.changes))
        data_keys = [k for k in p.changes if k.startswith("simulation.")]
        if data_keys and not ex.s.regenerate_data:
            raise ConfigError(f"proposal for iteration {node.id} changes {data_keys}, which changes the data; "
                              f"the shared dataset cannot follow (use regenerate_data / --regenerate-data)")
        try:
            cfg = ex.config_for(node.config, node.id, slot)
        except ConfigError as err:
            raise ConfigError(f"proposal for iteration {node.id} ({proposer.describe()}): {err}") from None
        out.append((node, ex.task(node, cfg)))
    return out


def explore(base: Config, out: str | Path, proposer: Proposer, settings: ExploreSettings,
            run_fn: Callable | None = None, progress: bool = True, client=None) -> list[Node]:
    """Run (or resume) the exploration; returns every node. ``run_fn(cfg, run_dir, data_dir=,
    progress=, header=) -> metrics`` defaults to :func:`fvjax.pipeline.run`. With ``settings.jobs``
    > 1 the slots of a batch run in pinned worker processes, with a dask ``client`` as tasks on its
    cluster (fvjax.cluster); ``run_fn`` must then be importable."""
    from ..pipeline import ensure_dataset, run, run_many

    run_fn = run_fn or run
    ex = Exploration(base, out, settings)
    rng = np.random.default_rng(settings.seed)
    nodes = ex.nodes()
    done = max((n.id for n in nodes), default=0)
    while done < settings.n_iterations:
        first = done + 1
        n_slots = min(settings.n_parallel, settings.n_iterations - done)
        proposals: list[Proposal] = proposer.propose(nodes, ex.scores(nodes, first), n_slots, rng)
        batch = _batch(ex, proposer, proposals, nodes, first)
        if (settings.jobs > 1 or client is not None) and not settings.regenerate_data and run_fn is run:
            ensure_dataset(batch[0][1]["cfg"], ex.out / "data", progress)   # once, before the workers
        if progress:
            for node, _ in batch:
                print(f"== iteration {node.id} (parent {node.parent or 'root'}): {node.mutation}", flush=True)
        results = run_many([t for _, t in batch], settings.jobs, progress=progress, fn=partial(run_safely, run_fn),
                           client=client, retries=settings.retries)
        nodes += [ex.record(node, metrics, p) for (node, _), metrics, p in zip(batch, results, proposals)]
        proposer.consumed(len(proposals))
        done = first + len(proposals) - 1
        ex.write_scores(nodes, done)
    if settings.robustness_seeds:
        robustness(ex, nodes, run_fn, progress, client)
    return nodes


def robustness(ex: Exploration, nodes: list[Node], run_fn: Callable, progress: bool, client=None) -> dict:
    """Re-run the best node with seeds 1..K (training; simulation too with regenerate_data); write
    robustness.json and a log entry."""
    key = ex.s.reward_key
    best = max((n for n in nodes if math.isfinite(n.metrics.get(key, float("nan")))),
               key=lambda n: n.metrics[key], default=None)
    path = ex.out / "robustness.json"
    if best is None or path.exists():
        return json.loads(path.read_text()) if path.exists() else {}
    from ..pipeline import run_many

    tasks = []
    for seed in range(1, ex.s.robustness_seeds + 1):   # new data too when every iteration has its own
        seeds = {"training.seed": seed, **({"simulation.seed": seed} if ex.s.regenerate_data else {})}
        tasks.append({"cfg": ex.base.replace(**{**best.config, **seeds}),
                      "run_dir": ex.out / f"robust_{best.id:03d}_seed{seed}",
                      "data_dir": None if ex.s.regenerate_data else ex.out / "data",
                      "header": {"robustness_of": best.id, "seed": seed}})
    results = run_many(tasks, ex.s.jobs, progress=progress, fn=partial(run_safely, run_fn), client=client,
                       retries=ex.s.retries)
    values = [m.get(key, float("nan")) for m in results]
    v = np.asarray(values, float)
    ok = v[np.isfinite(v)]                      # failed runs are counted, not averaged
    mean, std = (float(ok.mean()), float(ok.std())) if len(ok) else (float("nan"), float("nan"))
    stats = {"node": best.id, "seeds": list(range(1, len(v) + 1)), key: values, "mean": mean, "std": std,
             "cv_percent": 100 * std / abs(mean) if mean else float("nan"), "failed": int(len(v) - len(ok)),
             "min": float(ok.min()) if len(ok) else float("nan"), "max": float(ok.max()) if len(ok) else float("nan")}
    ex.append({"event": "robustness", "reward_key": key, **stats})   # before the file that marks it done
    path.write_text(json.dumps(stats, indent=1))
    return stats
