"""Shared set-up for the training benchmarks (imported by the scripts in this folder)."""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import statistics
import time
from typing import NamedTuple

import jax.numpy as jnp
import numpy as np

from fvjax import model as M
from fvjax.config import load_config
from fvjax.connectome import Connectome, build_connectome
from fvjax.train import Batch, Coefficients, coefficients, make_optimizer, model_spec


class Setup(NamedTuple):
    conn: Connectome
    graph: M.Graph
    spec: M.ModelSpec
    optimizer: object
    coeffs: Coefficients


def training_setup() -> Setup:
    """Full extent-8 graph with the default (Node-21) model, optimiser and regulariser weights."""
    conn = build_connectome(8)
    cfg = load_config()
    graph = M.Graph(jnp.asarray(conn.edge_src), jnp.asarray(conn.edge_dst),
                    jnp.asarray(conn.input_node_index.reshape(-1)))
    return Setup(conn, graph, model_spec(cfg, conn.n_nodes, conn.n_edges), make_optimizer(cfg.training),
                 coefficients(cfg.training, 0))


def random_batch(rng: np.random.Generator, conn: Connectome, shape: tuple[int, ...]) -> Batch:
    """Random voltages, targets and stimuli with leading ``shape`` (e.g. (K, B))."""
    return Batch(jnp.asarray(rng.normal(0.5, 0.5, shape + (conn.n_nodes,)), jnp.float32),
                 jnp.asarray(rng.normal(0.0, 5.0, shape + (conn.n_nodes,)), jnp.float32),
                 jnp.asarray(rng.uniform(0.0, 1.0, shape + (conn.n_inputs,)), jnp.float32))


def median_ms(fn, n_iterations: int, repeats: int = 3) -> float:
    """Median over ``repeats`` calls of ``fn`` of the time per iteration, in ms."""
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) / n_iterations * 1e3)
    return statistics.median(times)


def _spin(stop) -> None:
    x = np.random.default_rng(0).normal(size=(200, 200))
    while not stop.is_set():
        x = np.tanh(x @ x.T / 200)


@contextlib.contextmanager
def busy(n: int):
    """``n`` other processes spinning on the cores while the block runs (a second training job, a cluster
    node's other tasks)."""
    stop = mp.Event()
    spinners = [mp.Process(target=_spin, args=(stop,), daemon=True) for _ in range(n)]
    for s in spinners:
        s.start()
    try:
        yield
    finally:
        stop.set()
        for s in spinners:
            s.join()
