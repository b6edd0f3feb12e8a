"""Ground-truth simulator throughput (frames per second) on the full extent-8 flyvis network.

    python benchmarks/simulate.py [--frames 8000] [--chunk 2000]

Runs in one process: (1) a baseline of the same Euler update in float32 numpy with a scipy CSR
mat-vec per step (how a plain per-step implementation runs), (2) fvjax.simulate (jit + lax.scan in
chunks, process noise drawn in-scan). Prints medians, the ratio, and the projected time for a
64,000-frame dataset. Peak resident memory is printed to show chunking bounds it.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse as sp

from fvjax.connectome import build_connectome
from fvjax.groundtruth import flyvis_initial
from fvjax.simulate import expand_frame, make_circuit, simulate, steady_state


def numpy_baseline(conn, gt, stim, noise_std=0.05, dt=0.02, seed=0):
    W = sp.csr_matrix((gt.W, (conn.edge_dst, conn.edge_src)), shape=(conn.n_nodes,) * 2, dtype=np.float32)
    rng = np.random.default_rng(seed)
    v = gt.V_rest.copy()
    x = np.zeros(conn.n_nodes, np.float32)
    idx = conn.input_node_index.reshape(-1)
    for frame in stim:
        x[idx] = frame
        y = (-v + gt.V_rest + W @ np.maximum(v, 0) + x) / gt.tau
        v = v + dt * y + noise_std * rng.standard_normal(conn.n_nodes, dtype=np.float32)
    return v


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--frames", type=int, default=8000)
    p.add_argument("--chunk", type=int, default=2000)
    p.add_argument("--baseline-frames", type=int, default=500)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()

    conn = build_connectome(8)
    gt = flyvis_initial(conn)  # any parameters: the cost does not depend on the values
    rng = np.random.default_rng(0)
    stim = expand_frame(conn, rng.uniform(0, 1, (args.frames, 217)).astype(np.float32))

    base = []
    for _ in range(args.repeats):
        t = time.perf_counter()
        numpy_baseline(conn, gt, stim[: args.baseline_frames])
        base.append(args.baseline_frames / (time.perf_counter() - t))

    circuit = make_circuit(conn, gt)
    key = jax.random.PRNGKey(0)
    v0 = steady_state(circuit)
    jax.block_until_ready(simulate(circuit, v0, jnp.asarray(stim[: args.chunk]), key))  # compile
    fast = []
    for _ in range(args.repeats):
        t = time.perf_counter()
        v = v0
        for start in range(0, args.frames, args.chunk):
            v, traj = simulate(circuit, v, jnp.asarray(stim[start:start + args.chunk]), key, start)
            np.asarray(traj.voltage), np.asarray(traj.target)  # include the device->host copy
        fast.append(args.frames / (time.perf_counter() - t))

    b, f = statistics.median(base), statistics.median(fast)
    print(f"jax {jax.__version__} on {jax.devices()[0].platform}, {conn.n_nodes} nodes, {conn.n_edges} edges")
    print(f"numpy/scipy baseline : {b:9.0f} frames/s (median of {args.repeats})")
    print(f"fvjax.simulate       : {f:9.0f} frames/s (median of {args.repeats}, chunk {args.chunk})")
    print(f"speed-up             : {f / b:9.1f}x")
    print(f"64,000 frames        : {64000 / f:9.1f} s projected (target <= 60 s)")
    print(f"peak RSS             : {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:9.0f} MiB")


if __name__ == "__main__":
    main()
