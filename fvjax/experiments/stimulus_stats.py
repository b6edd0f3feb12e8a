"""Per-cell-type activity of a ground truth under each stimulus: what the GNN gets to see.

    python -m experiments.stimulus_stats                       # model 000, natural vs scenes, 2,000 frames
    python -m experiments.stimulus_stats --inputs natural,scenes,DAVIS --set simulation.datavis_roots=[/data/DAVIS]

Per stimulus: median over cell types of the per-type median temporal std of the voltage, the
fraction of voltages below 0 (rectified by ReLU), the number of near-silent types (median std
< 0.01), the effective rank (90 %/99 %, the reference's definition), and per type the range of the
true summed input (message) relative to its std (how far msg = 0 lies from the data), and per type
how well a constant input can be told apart from the neuron's regressors
(``fvjax.evaluate.diagnostics.rest_identifiability`` on 400 frames; near 0 = V_rest confounded with the
weights of almost constant sources, docs/drift.md), and the connectivity R^2 ceiling: the weights of
sources never active over the frames leave no trace in the data
(``fvjax.evaluate.diagnostics.connectivity_ceiling``). Writes ``stimulus_stats.json`` in --out.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np


def activity_stats(conn, gt, voltage: np.ndarray) -> dict:
    """Summary of a (T, N) voltage recording (see the module docstring)."""
    from fvjax.dataset import ever_active, spread_frames
    from fvjax.evaluate.diagnostics import connectivity_ceiling, rest_identifiability
    from fvjax.evaluate.metrics import effective_rank

    std = voltage.std(0)
    per_type_std = np.array([np.median(std[conn.node_type == t]) for t in range(conn.n_types)])
    pre = np.maximum(voltage, 0)
    msg = np.stack([np.bincount(conn.edge_dst, gt.W * pre[k, conn.edge_src], minlength=conn.n_nodes)
                    for k in range(0, len(voltage), max(len(voltage) // 200, 1))])
    zero_dist = np.abs(msg.mean(0)) / np.maximum(msg.std(0), 1e-9)
    per_type_zero = {conn.type_names[t]: float(np.median(zero_dist[conn.node_type == t])) for t in range(conn.n_types)}
    r90, r99 = effective_rank(voltage)
    ident = rest_identifiability(voltage[spread_frames(len(voltage), 400)], conn.edge_src, conn.edge_dst, conn.n_nodes)
    per_type_ident = np.array([np.median(ident[conn.node_type == t]) for t in range(conn.n_types)])
    ceiling = connectivity_ceiling(ever_active(voltage), gt.W, conn.edge_src, list(conn.type_names), conn.node_type)
    return {"median_type_std": float(np.median(per_type_std)), "fraction_below_0": float((voltage < 0).mean()),
            "connectivity_ceiling_R2": ceiling["ceiling_R2"], "silent_sources": ceiling["silent_sources"],
            "silent_weight_share": ceiling["silent_weight_share"], "silent_per_type": ceiling["silent_per_type"],
            "silent_types": int((per_type_std < 0.01).sum()), "effective_rank_90": r90, "effective_rank_99": r99,
            "per_type_std": dict(zip(conn.type_names, map(float, per_type_std))),
            "msg_zero_in_stds": per_type_zero,
            "median_rest_identifiability": float(np.median(per_type_ident)),
            "rest_identifiability": dict(zip(conn.type_names, map(float, per_type_ident)))}


def response(circuit, conn, frames: np.ndarray, seed: int, noise_std: float) -> np.ndarray:
    """(T, N) voltages of ``circuit`` driven by ``frames`` (T, n_hex) from its grey steady state."""
    import jax
    import jax.numpy as jnp

    from fvjax.simulate import expand_frame, simulate, steady_state

    _, traj = simulate(circuit, steady_state(circuit), jnp.asarray(expand_frame(conn, frames)),
                       jax.random.PRNGKey(seed), noise_std=noise_std)
    return np.asarray(traj.voltage)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m experiments.stimulus_stats", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--inputs", default="natural,scenes", help="visual_input_type values, comma-separated")
    p.add_argument("--n-frames", type=int, default=2000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/stimulus_stats")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = p.parse_args(argv)
    from fvjax.config import ConfigError, load_config
    from fvjax.connectome import build_connectome
    from fvjax.networks.flyvis import resolve_ground_truth
    from fvjax.generate import parse_sets
    from fvjax.simulate import make_circuit
    from fvjax.stimulus import VideoError, train_test_frames

    results = {}
    for kind in args.inputs.split(","):
        try:
            cfg = load_config(None, {**parse_sets(args.set), "simulation.visual_input_type": kind,
                                     "simulation.n_frames": args.n_frames, "simulation.seed": args.seed})
        except ConfigError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        if kind == args.inputs.split(",")[0]:   # the network does not depend on the stimulus
            conn = build_connectome(cfg.simulation.extent)
            gt = resolve_ground_truth(cfg, conn, progress=False)
            circuit = make_circuit(conn, gt)
        try:
            train, _ = train_test_frames(cfg.simulation)
        except (FileNotFoundError, VideoError) as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        results[kind] = activity_stats(conn, gt, response(circuit, conn, train, args.seed,
                                                          cfg.simulation.noise_model_level))
        r = results[kind]
        print(f"{kind:8s} median type std {r['median_type_std']:.3f}  below 0 {r['fraction_below_0']:.1%}  "
              f"silent types {r['silent_types']}  eff. rank 90/99 {r['effective_rank_90']}/{r['effective_rank_99']}  "
              f"msg=0 at (Am, L1, L3) {r['msg_zero_in_stds']['Am']:.1f}/{r['msg_zero_in_stds']['L1']:.1f}/"
              f"{r['msg_zero_in_stds']['L3']:.1f} std  rest identifiability (median type) "
              f"{r['median_rest_identifiability']:.1e}  never active {r['silent_sources']} neurons "
              f"({r['silent_weight_share']:.1%} of sum W^2), conn R2 ceiling {r['connectivity_ceiling_R2']:.4f}",
              flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "stimulus_stats.json").write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
