"""The end-of-training refit's least-squares solve (fvjax.train.refit.edge_least_squares) against its
first version, kept here as the baseline: the same per-target ridge solve with the Gram matrices formed by
numpy's plain batched einsum over (T, m, d + 1) gathers. Full extent-8 graph, random H and R of T frames,
5 % of the edges held; both in this process, alternated; prints seconds, the ratio and the largest
difference of the solutions. With ``--features``: the regressors' forward pass (g_phi and f_theta over
(frames, N)) op by op against the jitted functions fvjax.train.refit uses, default model, random voltages.
With ``--threads``: the solve on one BLAS thread (what ``edge_least_squares`` does) against the same solve
(``solve_edges``) with OpenBLAS's default pool; ``--busy N`` keeps N other processes spinning on the cores meanwhile.

    python benchmarks/refit.py [--frames 1000] [--rounds 2] [--features | --threads [--busy 2]]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from fvjax.connectome import build_connectome
from common import busy
from fvjax.train.refit import _by_degree, edge_least_squares, solve_edges


def baseline(H, R, src, dst, kept, W0, b0, ridge: float, block: int = 20_000_000):
    """The first version of edge_least_squares (2026-12-04, commit 1e9ca9a)."""
    H, R = np.asarray(H, np.float64), np.asarray(R, np.float64)
    W, b = np.where(kept, np.asarray(W0, np.float64), 0.0), np.array(b0, np.float64)
    T, ss = len(H), np.zeros(2)
    for d, (targets, edges) in _by_degree(dst, kept, len(b)).items():
        step = max(block // (T * (d + 1)), 1)
        for s in range(0, len(targets), step):
            tg, ed = targets[s:s + step], edges[s:s + step]
            X = np.concatenate([H[:, src[ed]], np.ones((T, len(tg), 1))], -1)
            x0 = np.concatenate([W[ed], b[tg, None]], -1)
            G = np.einsum("tmi,tmj->mij", X, X)
            resid = R[:, tg] - np.einsum("tmi,mi->tm", X, x0)
            lam = (ridge + 1e-12) * np.trace(G, axis1=1, axis2=2) / (d + 1)
            dx = np.linalg.solve(G + lam[:, None, None] * np.eye(d + 1), np.einsum("tmi,tm->mi", X, resid)[..., None])
            sol = x0 + dx[..., 0]
            W[ed], b[tg] = sol[:, :d], sol[:, d]
            ss += [np.sum(resid**2), np.sum((resid - np.einsum("tmi,mi->tm", X, dx[..., 0]))**2)]
    return W, b, tuple(np.sqrt(ss / R.size))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--frames", type=int, default=1000)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--features", action="store_true", help="time the forward pass instead of the solve")
    p.add_argument("--threads", action="store_true", help="one BLAS thread against the default pool")
    p.add_argument("--busy", type=int, default=0, help="with --threads: other processes spinning meanwhile")
    args = p.parse_args()
    if args.features:
        return features(args.frames, args.rounds)
    contenders = ([("default pool", solve_edges), ("one thread", edge_least_squares)] if args.threads
                  else [("baseline", baseline), ("fvjax", edge_least_squares)])
    n_busy = args.busy if args.threads else 0
    conn = build_connectome(8)
    src, dst = np.asarray(conn.edge_src), np.asarray(conn.edge_dst)
    rng = np.random.default_rng(0)
    H = rng.uniform(0, 2, (args.frames, conn.n_nodes))
    R = rng.normal(size=(args.frames, conn.n_nodes))
    kept = rng.random(len(src)) > 0.05
    W0, b0 = rng.normal(0, 0.1, len(src)), np.zeros(conn.n_nodes)
    times, out = {name: [] for name, _ in contenders}, {}
    with busy(n_busy):
        for r in range(args.rounds):
            for name, fn in contenders[:: 1 if r % 2 == 0 else -1]:
                tick = time.perf_counter()
                out[name] = fn(H, R, src, dst, kept, W0, b0, 1e-4)
                times[name].append(time.perf_counter() - tick)
    med = {k: statistics.median(v) for k, v in times.items()}
    (base, ref), (ours, new) = [(name, out[name]) for name, _ in contenders]
    print(f"{args.frames} frames, {conn.n_nodes} targets, {int(kept.sum())} edges solved, busy processes {n_busy}")
    for k, v in med.items():
        print(f"{k:12s} {v:8.2f} s   (rounds: {', '.join(f'{x:.2f}' for x in times[k])})")
    print(f"speed-up {med[base] / med[ours]:.1f}x; max |dW| {np.abs(new[0] - ref[0]).max():.2e}, "
          f"max |db| {np.abs(new[1] - ref[1]).max():.2e}, rms {new[2]} vs {ref[2]}")


def features(frames: int, rounds: int) -> None:
    import jax
    import jax.numpy as jnp

    from fvjax import model as M
    from fvjax.config import load_config
    from fvjax.train import model_spec
    from fvjax.train import refit as fr

    conn = build_connectome(8)
    spec = model_spec(load_config(None, {"graph_model.update_type": "gain"}), conn.n_nodes, conn.n_edges)
    params = M.init(jax.random.PRNGKey(0), spec)
    v = jnp.asarray(np.random.default_rng(0).normal(0.5, 0.5, (frames, conn.n_nodes)), jnp.float32)
    pairs = {"eager": (M.edge_function, M._f_theta_of_voltage), "jit": (fr._edge_function, fr._f_theta_of_voltage)}
    for g, f in pairs.values():   # compile and warm up
        np.asarray(g(params, spec, v, params["a"])), np.asarray(f(params, spec, v, params["a"]))
    times, out = {k: [] for k in pairs}, {}
    for r in range(rounds):
        for name in list(pairs)[:: 1 if r % 2 == 0 else -1]:
            g, f = pairs[name]
            tick = time.perf_counter()
            out[name] = (np.asarray(g(params, spec, v, params["a"])), np.asarray(f(params, spec, v, params["a"])))
            times[name].append(time.perf_counter() - tick)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"g_phi + f_theta over ({frames}, {conn.n_nodes}): eager {med['eager']:.2f} s, jit {med['jit']:.2f} s, "
          f"speed-up {med['eager'] / med['jit']:.1f}x; identical: "
          f"{all(np.array_equal(a, b) for a, b in zip(out['eager'], out['jit']))}")


if __name__ == "__main__":
    main()
