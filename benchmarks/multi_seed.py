"""Several models trained at once with vmap (same graph, different data and initialisations) vs one.

    python benchmarks/multi_seed.py [--models 2 3]

Same process: one model's K = 20 scanned training steps (batch 2, full graph) vs S models' steps
vmapped into one XLA program. Prints ms per model-iteration and the throughput ratio against running
the S models one after another. This decides whether `--seeds` should vmap (issue #4).
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np
from common import median_ms, random_batch, training_setup

from fvjax import model as M
from fvjax.train import init_state, make_steps
from fvjax.train.step import StepConfig

K, B = 20, 2


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--models", type=int, nargs="+", default=[2, 3])
    args = p.parse_args()
    conn, graph, spec, opt, coeffs = training_setup()
    _, one = make_steps(spec, opt, StepConfig())
    many = jax.jit(jax.vmap(one, in_axes=(0, 0, 0, None, 0, None)))
    rng = np.random.default_rng(0)
    state = {"one": init_state(M.init(jax.random.PRNGKey(0), spec), opt)}
    b1, k1 = random_batch(rng, conn, (K, B)), jax.random.split(jax.random.PRNGKey(0), K)

    def run_one():
        state["one"], terms = one(state["one"], b1, k1, graph, 1.0, coeffs)
        jax.block_until_ready(terms)

    run_one()  # compile
    single = median_ms(run_one, K)
    print(f"jax {jax.__version__} on {jax.devices()[0].platform}; one model: {single:.1f} ms/iteration (batch {B})")
    for S in args.models:
        keys = jax.random.split(jax.random.PRNGKey(1), S)
        state["many"] = jax.vmap(lambda k: init_state(M.init(k, spec), opt))(keys)
        bS = random_batch(rng, conn, (S, K, B))
        kS = jax.vmap(lambda k: jax.random.split(k, K))(keys)
        xnorm = jnp.ones(S)

        def run_many():
            state["many"], terms = many(state["many"], bS, kS, graph, xnorm, coeffs)
            jax.block_until_ready(terms)

        run_many()  # compile
        t = median_ms(run_many, K)
        print(f"{S} models vmapped: {t:.1f} ms/iteration = {t / S:.1f} ms per model-iteration; "
              f"throughput x{single * S / t:.2f} vs sequential")


if __name__ == "__main__":
    main()
