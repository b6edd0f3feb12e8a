"""Training-step time on the full flyvis graph (13,741 nodes, 434,112 edges), batch 1/2/4.

    python benchmarks/train_step.py [--batches 1 2 4] [--iters 40]

All in one process: (1) a faithful per-edge baseline (g_phi evaluated once per edge, like the
reference), single jitted step; (2) fvjax (g_phi once per source node, gathered), single jitted step;
(3) fvjax with K steps fused under lax.scan. Same loss, regularisers and Adam partitions.
Prints ms/iteration (median of repeats) and ratios, plus the reference's measured 2.2 s/iteration.
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

REFERENCE_MS = 2200.0  # flyvis-gnn PyTorch step measured on this 2-core machine (batch 2)


def per_edge_messages(params, spec, graph, v):
    """Reference-style: g_phi evaluated for every edge row."""
    a = params["a"]
    x = jnp.concatenate([v[:, graph.src, None], jnp.broadcast_to(a[graph.src], v.shape[:1] + a[graph.src].shape)], -1)
    h = M.mlp_apply(params["g_phi"], x, spec.activation)[..., 0] ** 2
    return jax.ops.segment_sum(params["W"][:, None] * h.T, graph.dst, num_segments=spec.n_nodes).T


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--batches", type=int, nargs="+", default=[1, 2, 4])
    p.add_argument("--iters", type=int, default=20)
    p.add_argument("--baseline-iters", type=int, default=3)
    args = p.parse_args()
    conn, graph, spec, opt, coeffs = training_setup()
    xnorm = jnp.float32(1.0)
    rng = np.random.default_rng(0)
    print(f"jax {jax.__version__} on {jax.devices()[0].platform}; reference step: {REFERENCE_MS:.0f} ms (batch 2)")
    print(f"{'batch':>5} {'per-edge ms':>12} {'per-node ms':>12} {'scanned ms':>11} {'node/edge':>10} {'ref/scanned':>12}")
    for B in args.batches:
        key = jax.random.PRNGKey(0)
        results = {}
        for name, messages in (("edge", per_edge_messages), ("node", M.messages)):
            orig = M.messages
            M.messages = messages
            try:
                single, scanned = make_steps(spec, opt, StepConfig())
                state = init_state(M.init(key, spec), opt)
                b1 = random_batch(rng, conn, (B,))
                state, _ = single(state, b1, key, graph, xnorm, coeffs)
                jax.block_until_ready(state)
                n = args.baseline_iters if name == "edge" else args.iters

                def run_single():
                    nonlocal state
                    for _ in range(n):
                        state, terms = single(state, b1, key, graph, xnorm, coeffs)
                    jax.block_until_ready(terms)
                results[name] = median_ms(run_single, n)
                if name == "node":
                    bk = random_batch(rng, conn, (args.iters, B))
                    keys = jax.random.split(key, args.iters)
                    state, _ = scanned(state, bk, keys, graph, xnorm, coeffs)
                    jax.block_until_ready(state)

                    def run_scan():
                        nonlocal state
                        state, terms = scanned(state, bk, keys, graph, xnorm, coeffs)
                        jax.block_until_ready(terms)
                    results["scan"] = median_ms(run_scan, args.iters)
            finally:
                M.messages = orig
        print(f"{B:>5} {results['edge']:>12.1f} {results['node']:>12.1f} {results['scan']:>11.1f} "
              f"{results['edge'] / results['node']:>9.1f}x {REFERENCE_MS / results['scan']:>11.0f}x")


if __name__ == "__main__":
    main()
