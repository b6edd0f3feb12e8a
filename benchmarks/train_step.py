"""Training-step time on the full flyvis graph (13,741 nodes, 434,112 edges), batch 1/2/4.

    python benchmarks/train_step.py [--batches 1 2 4] [--iters 40]
    python benchmarks/train_step.py --mlp [--batches 1 2 4] [--rounds 16]

All in one process: (1) a faithful per-edge baseline (g_phi evaluated once per edge, like the
reference), single jitted step; (2) fvjax (g_phi once per source node, gathered), single jitted step;
(3) fvjax with K steps fused under lax.scan. Same loss, regularisers and Adam partitions.
Prints ms/iteration (median of repeats) and ratios, plus the reference's measured 2.2 s/iteration.

``--ablate``: the scanned step without each of its parts in turn (the g_phi regularisers, the edge
gather/scatter, f_theta's hidden layers), alternating calls; shows where the step's time goes.

``--linear``: the step of experiments.vrest's recipe with coeff_g_phi_linear off, with the secant slope
and with the tangent slope (one program, three coefficient sets, alternating calls).

``--mlp``: the step with g_phi and f_theta as the Flax modules of ``fvjax.nn`` against the hand-written
MLP they replaced (same K-step scanned program otherwise). The two are timed call by call in
alternation (the order swapped every round, so background load hits both alike); prints the medians,
the median and quartiles of the per-round ratio flax/hand-written, whether the compiled programs are
identical up to instruction names, and whether the two training states are still bit-identical after
all rounds.
"""

from __future__ import annotations

import argparse
import re
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
from common import median_ms, random_batch, training_setup

from fvjax import model as M
from fvjax.config import load_config
from fvjax.train import coefficients, init_state, make_optimizer, make_steps, model_spec
from fvjax.train import losses as L
from fvjax.train.step import StepConfig

REFERENCE_MS = 2200.0  # flyvis-gnn PyTorch step measured on this 2-core machine (batch 2)


def per_edge_messages(params, spec, graph, v):
    """Reference-style: g_phi evaluated for every edge row."""
    a = params["a"]
    x = jnp.concatenate([v[:, graph.src, None], jnp.broadcast_to(a[graph.src], v.shape[:1] + a[graph.src].shape)], -1)
    h = M.mlp_apply(params["g_phi"], x, spec.activation)[..., 0] ** 2
    return jax.ops.segment_sum(params["W"][:, None] * h.T, graph.dst, num_segments=spec.n_nodes).T


def hand_written_mlp_apply(layers, x, activation="relu"):
    """g_phi / f_theta as fvjax computed them before fvjax.nn (the baseline of --mlp)."""
    act = M.ACTIVATIONS[activation]
    for layer in layers[:-1]:
        x = act(x @ layer["w"] + layer["b"])
    return x @ layers[-1]["w"] + layers[-1]["b"]


def _program(compiled) -> str:
    """Compiled HLO without metadata and instruction numbering (which differ with tracing order)."""
    text = re.sub(r", metadata=\{[^}]*\}", "", compiled.as_text())
    return re.sub(r"\.\d+\b|_\d+\.\d+|region_\d+", "", text[text.index("%"):])


def alternate(steps: dict, states: dict, args: tuple, iters: int, rounds: int) -> dict[str, list[float]]:
    """ms per iteration of each compiled step in ``steps`` (name -> scanned step of ``iters`` steps),
    timed call by call in alternation, the order reversed every round so background load hits all
    alike; ``states`` is advanced in place."""
    names, times = list(steps), {name: [] for name in steps}
    for r in range(rounds):
        for name in (names if r % 2 == 0 else names[::-1]):
            t = time.perf_counter()
            states[name], terms = steps[name](states[name], *args)
            jax.block_until_ready(terms)
            times[name].append((time.perf_counter() - t) / iters * 1e3)
    return times


def compare_mlp(setup, batches, iters, rounds):
    """Flax MLP vs hand-written MLP in the scanned step, alternating calls; one line per batch size."""
    conn, graph, spec, opt, coeffs = setup
    xnorm, key, rng = jnp.float32(1.0), jax.random.PRNGKey(0), np.random.default_rng(0)
    print(f"{'batch':>5} {'hand-written ms':>15} {'flax ms':>8} {'flax/hand':>10} {'quartiles':>12} {'same program':>13} "
          f"{'same state':>11}")
    for B in batches:
        bk, keys = random_batch(rng, conn, (iters, B)), jax.random.split(key, iters)
        steps, states, programs = {}, {}, {}
        for name, fn in (("hand", hand_written_mlp_apply), ("flax", M.mlp_apply)):
            orig, M.mlp_apply = M.mlp_apply, fn
            make_steps.cache_clear()   # memoised: the other variant's program would be reused
            try:   # traced (and compiled) here, with this MLP
                _, steps[name] = make_steps(spec, opt, StepConfig())
                states[name] = init_state(M.init(key, spec), opt)
                programs[name] = _program(steps[name].lower(states[name], bk, keys, graph, xnorm, coeffs).compile())
                states[name], _ = steps[name](states[name], bk, keys, graph, xnorm, coeffs)
                jax.block_until_ready(states[name])
            finally:
                M.mlp_apply = orig
        times = alternate(steps, states, (bk, keys, graph, xnorm, coeffs), iters, rounds)
        hand, flax = statistics.median(times["hand"]), statistics.median(times["flax"])
        q1, ratio, q3 = statistics.quantiles([f / h for f, h in zip(times["flax"], times["hand"])], n=4)
        same_state = all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(states["hand"]),
                                                              jax.tree.leaves(states["flax"])))
        print(f"{B:>5} {hand:>15.1f} {flax:>8.1f} {ratio:>10.3f} {f'{q1:.3f}-{q3:.3f}':>12} "
              f"{str(programs['hand'] == programs['flax']):>13} {str(same_state):>11}")


def compare_linear(iters, rounds):
    """The step of experiments.vrest's recipe with coeff_g_phi_linear off, with the secant slope and with
    the tangent slope: one compiled program (the term's form is picked at run time by lax.switch), three
    coefficient sets, calls alternated; ratio = median of the per-round ratios to "off"."""
    from fvjax.experiments.vrest import RECIPES

    conn, graph, *_ = training_setup()
    variants = {"off": {}, "secant": {"training.coeff_g_phi_linear": 0.9, "training.g_phi_linear_slope": "secant"},
                "tangent": {"training.coeff_g_phi_linear": 0.9, "training.g_phi_linear_slope": "tangent"}}
    cfgs = {name: load_config(None, {**RECIPES["fvjax"], **v}) for name, v in variants.items()}
    spec, opt = model_spec(cfgs["off"], conn.n_nodes, conn.n_edges), make_optimizer(cfgs["off"].training)
    _, step = make_steps(spec, opt, StepConfig())
    key, xnorm = jax.random.PRNGKey(0), jnp.float32(1.0)
    bk, keys = random_batch(np.random.default_rng(0), conn, (iters, 2)), jax.random.split(key, iters)
    times = {name: [] for name in cfgs}
    states = {name: init_state(M.init(key, spec), opt) for name in cfgs}
    for r in range(rounds + 1):
        for name in (list(cfgs) if r % 2 == 0 else list(cfgs)[::-1]):
            t = time.perf_counter()
            states[name], terms = step(states[name], bk, keys, graph, xnorm, coefficients(cfgs[name].training, 0))
            jax.block_until_ready(terms)
            if r:   # round 0 compiles
                times[name].append((time.perf_counter() - t) / iters * 1e3)
    print("| g_phi_linear (batch 2, recipe fvjax) | ms/iteration | ratio to off |")
    for name in cfgs:
        ratio = statistics.median(a / b for a, b in zip(times[name], times["off"]))
        print(f"| {name} | {statistics.median(times[name]):.1f} | {ratio:.3f} |")


def _no_g_phi_regularisers(params, spec, v0, xnorm, c):
    return {"W_L2": c.W_L2 * L.l2(params["W"])}


def _own_message(params, spec, graph, v):
    return M.edge_function(params, spec, v, params["a"]) * params["W"][: spec.n_nodes]


def _linear_update(params, spec, v, a, msg, stim):
    x = jnp.concatenate([v[..., None], jnp.broadcast_to(a, v.shape + a.shape[-1:]), msg[..., None], stim[..., None]], -1)
    return x @ params["f_theta"][0]["w"][:, 0]


# --ablate: (table, key, replacement) per variant; each removes one part of the step
ABLATIONS = {"full step": None,
             "without the g_phi regularisers": (vars(L), "regularizers", _no_g_phi_regularisers),
             "without the edge gather/scatter": (M.MESSAGES, "flyvis_A", _own_message),
             "f_theta as one linear layer": (M.UPDATE_FUNCTIONS, "generic", _linear_update)}


def ablate(setup, iters, rounds):
    """Where the step's time goes: each variant of ABLATIONS compiled once, calls alternated (order
    reversed every round); ratio = median of the per-round ratios to the full step."""
    conn, graph, spec, opt, coeffs = setup
    xnorm, key = jnp.float32(1.0), jax.random.PRNGKey(0)
    bk, keys = random_batch(np.random.default_rng(0), conn, (iters, 2)), jax.random.split(key, iters)
    steps, states = {}, {}
    for name, change in ABLATIONS.items():
        table, k, fn = change or ({}, None, None)
        saved = table.get(k)
        if change:
            table[k] = fn
        make_steps.cache_clear()
        try:
            _, steps[name] = make_steps(spec, opt, StepConfig())
            states[name], terms = steps[name](init_state(M.init(key, spec), opt), bk, keys, graph, xnorm, coeffs)
            jax.block_until_ready(terms)
        finally:
            if change:
                table[k] = saved
    times = alternate(steps, states, (bk, keys, graph, xnorm, coeffs), iters, rounds)
    print("| variant (batch 2) | ms/iteration | ratio to the full step |")
    for name in ABLATIONS:
        ratio = statistics.median(a / b for a, b in zip(times[name], times["full step"]))
        print(f"| {name} | {statistics.median(times[name]):.1f} | {ratio:.3f} |")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--batches", type=int, nargs="+", default=[1, 2, 4])
    p.add_argument("--iters", type=int, default=20)
    p.add_argument("--baseline-iters", type=int, default=3)
    p.add_argument("--mlp", action="store_true", help="Flax vs hand-written MLP in the scanned step")
    p.add_argument("--rounds", type=int, default=16, help="--mlp, --ablate: alternating timed calls per variant")
    p.add_argument("--ablate", action="store_true", help="time the step without each of its parts (batch 2)")
    p.add_argument("--linear", action="store_true", help="g_phi_linear off / secant / tangent (batch 2)")
    args = p.parse_args()
    if args.linear:
        return compare_linear(args.iters, args.rounds)
    if args.ablate:
        return ablate(training_setup(), args.iters, args.rounds)
    if args.mlp:
        return compare_mlp(training_setup(), args.batches, args.iters, args.rounds)
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
            make_steps.cache_clear()   # memoised: the other variant's program would be reused
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
