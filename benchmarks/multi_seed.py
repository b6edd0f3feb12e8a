"""Several models trained at once with vmap (same graph, different data and initialisations) vs one.

    python benchmarks/multi_seed.py [--models 2 3]

Same process: one model's K = 20 scanned training steps (batch 2, full graph) vs S models' steps
vmapped into one XLA program. Prints ms per model-iteration and the throughput ratio against running
the S models one after another. This decides whether `--seeds` should vmap (issue #4).
"""

from __future__ import annotations

import argparse
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from fvjax import model as M
from fvjax.config import load_config
from fvjax.connectome import build_connectome
from fvjax.train import Batch, coefficients, init_state, make_optimizer, make_steps, model_spec
from fvjax.train.step import StepConfig

K, B = 20, 2


def random_batches(rng, conn, lead: tuple[int, ...]) -> Batch:
    shape = lead + (K, B)
    return Batch(jnp.asarray(rng.normal(0.5, 0.5, shape + (conn.n_nodes,)), jnp.float32),
                 jnp.asarray(rng.normal(0.0, 5.0, shape + (conn.n_nodes,)), jnp.float32),
                 jnp.asarray(rng.uniform(0.0, 1.0, shape + (conn.n_inputs,)), jnp.float32))


def median_ms(fn, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) / K * 1e3)
    return statistics.median(times)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--models", type=int, nargs="+", default=[2, 3])
    args = p.parse_args()
    conn = build_connectome(8)
    cfg = load_config()
    graph = M.Graph(jnp.asarray(conn.edge_src), jnp.asarray(conn.edge_dst),
                    jnp.asarray(conn.input_node_index.reshape(-1)))
    spec = model_spec(cfg, conn.n_nodes, conn.n_edges)
    opt = make_optimizer(cfg.training)
    coeffs = coefficients(cfg.training, 0)
    _, one = make_steps(spec, opt, StepConfig())
    many = jax.jit(jax.vmap(one, in_axes=(0, 0, 0, None, 0, None)))
    rng = np.random.default_rng(0)
    state = {"one": init_state(M.init(jax.random.PRNGKey(0), spec), opt)}
    b1, k1 = random_batches(rng, conn, ()), jax.random.split(jax.random.PRNGKey(0), K)

    def run_one():
        state["one"], terms = one(state["one"], b1, k1, graph, 1.0, coeffs)
        jax.block_until_ready(terms)

    run_one()  # compile
    single = median_ms(run_one)
    print(f"jax {jax.__version__} on {jax.devices()[0].platform}; one model: {single:.1f} ms/iteration (batch {B})")
    for S in args.models:
        keys = jax.random.split(jax.random.PRNGKey(1), S)
        state["many"] = jax.vmap(lambda k: init_state(M.init(k, spec), opt))(keys)
        bS = random_batches(rng, conn, (S,))
        kS = jax.vmap(lambda k: jax.random.split(k, K))(keys)
        xnorm = jnp.ones(S)

        def run_many():
            state["many"], terms = many(state["many"], bS, kS, graph, xnorm, coeffs)
            jax.block_until_ready(terms)

        run_many()  # compile
        t = median_ms(run_many)
        print(f"{S} models vmapped: {t:.1f} ms/iteration = {t / S:.1f} ms per model-iteration; "
              f"throughput x{single * S / t:.2f} vs sequential")


if __name__ == "__main__":
    main()
