"""Why fusing K training steps under lax.scan helps: per-call overhead, isolated.

    python benchmarks/scan_overhead.py [--batch 2] [--iters 40]
    python benchmarks/scan_overhead.py --mallopt      # the same with glibc's mmap threshold raised

Measures, in one process, ms per training step for single jitted calls (dispatched asynchronously,
one block at the end) and for scans of K = 1, 2, 5, 20 steps per call, plus the minor page faults per
step (getrusage). Fitting t(K) = t_step + t_call / K separates the per-call cost from the step
itself. ``--mallopt`` raises glibc's M_MMAP_THRESHOLD/M_TRIM_THRESHOLD before JAX starts, so large
temporary buffers are reused from the heap instead of being mmapped (and zero-filled by page faults)
on every call.
"""

from __future__ import annotations

import argparse
import ctypes
import resource

import numpy as np


def raise_mmap_threshold(nbytes: int = 1 << 30) -> bool:
    """glibc mallopt(M_MMAP_THRESHOLD) and mallopt(M_TRIM_THRESHOLD); False if not glibc."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
    return bool(libc.mallopt(M_MMAP_THRESHOLD, nbytes)) and bool(libc.mallopt(M_TRIM_THRESHOLD, 4 * nbytes))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--iters", type=int, default=40)
    p.add_argument("--mallopt", action="store_true")
    args = p.parse_args()
    if args.mallopt:
        print("mallopt:", raise_mmap_threshold())

    import jax
    import jax.numpy as jnp
    from common import median_ms, random_batch, training_setup

    from fvjax import model as M
    from fvjax.train import init_state, make_steps
    from fvjax.train.step import StepConfig

    conn, graph, spec, opt, coeffs = training_setup()
    xnorm, key = jnp.float32(1.0), jax.random.PRNGKey(0)
    rng = np.random.default_rng(0)
    single, scanned = make_steps(spec, opt, StepConfig())
    state = init_state(M.init(key, spec), opt)
    n = args.iters

    def measure(name, K, run, steps):
        """ms per step (median of 3 calls of run) and minor page faults per step."""
        f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        ms = median_ms(run, steps)
        rows.append((name, K, ms, (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0) / (3 * steps)))

    rows = []
    b1 = random_batch(rng, conn, (args.batch,))
    state, terms = single(state, b1, key, graph, xnorm, coeffs)
    jax.block_until_ready(terms)

    def run_single():
        nonlocal state
        for _ in range(n):
            state, t = single(state, b1, key, graph, xnorm, coeffs)
        jax.block_until_ready(t)

    measure("single", 1, run_single, n)
    for K in (1, 2, 5, 20):
        bk = random_batch(rng, conn, (K, args.batch))
        keys = jax.random.split(key, K)
        state, terms = scanned(state, bk, keys, graph, xnorm, coeffs)
        jax.block_until_ready(terms)
        calls = max(n // K, 1)

        def run_scan():
            nonlocal state
            for _ in range(calls):
                state, t = scanned(state, bk, keys, graph, xnorm, coeffs)
            jax.block_until_ready(t)

        measure(f"scan K={K}", K, run_scan, calls * K)
    print(f"jax {jax.__version__}, batch {args.batch}, mallopt={args.mallopt}")
    print(f"{'variant':>12} {'ms/step':>9} {'page faults/step':>17}")
    for name, _, ms, pf in rows:
        print(f"{name:>12} {ms:>9.1f} {pf:>17.0f}")
    ks = np.array([r[1] for r in rows[1:]], float)
    ts = np.array([r[2] for r in rows[1:]])
    t_call, t_step = np.polyfit(1 / ks, ts, 1)
    print(f"fit t(K) = t_step + t_call / K: t_step = {t_step:.1f} ms, t_call = {t_call:.1f} ms per call")


if __name__ == "__main__":
    main()
