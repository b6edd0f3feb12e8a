"""Several models trained at once vs one after another.

    python benchmarks/multi_seed.py [--models 2 3]          # vmap in one process
    python benchmarks/multi_seed.py --processes 2           # one process per core, running together

vmap: one model's K = 20 scanned training steps (batch 2, full graph) vs S models' steps vmapped into
one XLA program, same process. Processes: P copies of the one-model loop, each pinned to its own
core, started together (a file barrier after compilation); compared with the one-model time measured
in this process on all cores. Prints ms per model-iteration and the throughput ratio against running
the models one after another. This decides what `--seeds` does (issue #4).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from common import median_ms, random_batch, training_setup

from fvjax import model as M
from fvjax.train import init_state, make_steps
from fvjax.train.step import StepConfig

K, B = 20, 2


def worker(core: int, barrier: Path, n_workers: int, calls: int) -> None:
    """One pinned model: compile, wait for the others, then time ``calls`` scanned calls."""
    os.sched_setaffinity(0, {core})
    conn, graph, spec, opt, coeffs = training_setup()
    _, one = make_steps(spec, opt, StepConfig())
    state = init_state(M.init(jax.random.PRNGKey(core), spec), opt)
    b1, k1 = random_batch(np.random.default_rng(core), conn, (K, B)), jax.random.split(jax.random.PRNGKey(core), K)
    state, terms = one(state, b1, k1, graph, 1.0, coeffs)
    jax.block_until_ready(terms)
    (barrier / f"ready{core}").touch()
    while len(list(barrier.glob("ready*"))) < n_workers:
        time.sleep(0.05)
    t = time.perf_counter()
    for _ in range(calls):
        state, terms = one(state, b1, k1, graph, 1.0, coeffs)
    jax.block_until_ready(terms)
    print(f"{(time.perf_counter() - t) / (calls * K) * 1e3:.3f}", flush=True)


def processes(n: int, single_ms: float, calls: int = 10) -> None:
    cores = sorted(os.sched_getaffinity(0))[:n]
    with tempfile.TemporaryDirectory() as tmp:
        procs = [subprocess.Popen([sys.executable, __file__, "--worker", str(c), "--barrier", tmp, "--n-workers",
                                   str(len(cores)), "--calls", str(calls)], stdout=subprocess.PIPE, text=True)
                 for c in cores]
        per = [float(p.communicate()[0].strip().splitlines()[-1]) for p in procs]
    slowest = max(per)
    print(f"{len(cores)} pinned processes together: {', '.join(f'{x:.1f}' for x in per)} ms/iteration each = "
          f"{slowest / len(cores):.1f} ms per model-iteration; throughput x{single_ms * len(cores) / slowest:.2f} "
          f"vs sequential on all cores")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--models", type=int, nargs="+", default=[2, 3])
    p.add_argument("--processes", type=int, default=0, help="also time this many pinned processes")
    p.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    p.add_argument("--barrier", help=argparse.SUPPRESS)
    p.add_argument("--n-workers", type=int, help=argparse.SUPPRESS)
    p.add_argument("--calls", type=int, default=10, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker is not None:
        return worker(args.worker, Path(args.barrier), args.n_workers, args.calls)
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
    if args.processes:
        processes(args.processes, single)
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
