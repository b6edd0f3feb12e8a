"""How the recovered connectivity changes over training: per target cell type, the gain of the
corrected W* against the true W, the raw W's gain, the target factor msg_gain / -f_slope, and the
share of the connectivity fit's squared error, at every in-training checkpoint of a run. Then, for
the end of the run (RUN/recovered.npz and its last checkpoint), the V_rest error per type next to
the learned message's constant offset, split into what the weights and g_phi's shape contribute
(docs/drift.md, section 3).

    python -m experiments.drift runs/vrest/default_seed7            # prints the table, writes drift.json
    python -m experiments.drift RUN --least-squares L3,Tm1,T1        # + what the data alone give into these types
    python -m experiments.drift RUN --by-source L3,Mi4               # + which sources carry their V_rest offset

Needs ``RUN/during/recovered_*.npz`` (written by every run since 2026-12-01) and ``RUN/data``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m experiments.drift", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", help="run folder")
    p.add_argument("--top", type=int, default=8, help="target types listed (largest error share at the end)")
    p.add_argument("--least-squares", default="", metavar="TYPES",
                   help="comma-separated target types: compare the run's W* into them with a least-squares fit of "
                        "the true equation's form on the training data (what the data alone give)")
    p.add_argument("--by-source", default="", metavar="TYPES",
                   help="comma-separated target types: split the weight part of their V_rest offset by source type")
    args = p.parse_args(argv)
    run = Path(args.run)
    files = sorted((run / "during").glob("recovered_*.npz"))
    from fvjax.dataset import DatasetError
    from fvjax.runs import load_run

    try:
        opened = load_run(run) if files else None
        data = opened.dataset if opened else None
    except (FileNotFoundError, DatasetError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if data is None:
        print(f"error: {run} has no during/recovered_*.npz; run a training there first", file=sys.stderr)
        return 2
    from fvjax.connectome import build_connectome
    from fvjax.evaluate.diagnostics import averaged_checkpoints_r2, drift_table
    from fvjax.networks.flyvis import dataset_ground_truth

    conn = build_connectome(int(data.manifest["config"]["simulation"]["extent"]))
    listed = {opt: [t for t in getattr(args, opt).split(",") if t] for opt in ("least_squares", "by_source")}
    unknown = {opt: [t for t in types if t not in conn.type_names] for opt, types in listed.items()}
    for opt, bad in unknown.items():
        if bad:
            print(f"error: --{opt.replace('_', '-')}: not a cell type: {', '.join(bad)} (cell types: "
                  f"{', '.join(conn.type_names)})", file=sys.stderr)
            return 2
    gt = dataset_ground_truth(data, conn)
    snaps = {int(f.stem.split("_")[-1]): dict(np.load(f)) for f in files}
    table = drift_table(snaps, gt.W, conn.edge_src, conn.edge_dst, conn.node_type, list(conn.type_names))
    (run / "drift.json").write_text(json.dumps(table, indent=1))
    last = table[max(table)]["per_type"]
    top = sorted(last, key=lambda t: -last[t]["error_share"])[:args.top]
    print("iteration  conn_R2  gain IQR (25/50/75)      " + "  ".join(f"{t:>14s}" for t in top))
    for it, row in table.items():
        q = row["gain_spread_iqr"]
        cells = "  ".join(f"{row['per_type'][t]['gain_W_star']:6.2f}/{row['per_type'][t]['error_share']:5.1%}"
                          for t in top)
        print(f"{it:9d}  {row['connectivity_R2']:.3f}   {q[0]:6.2f} {q[1]:6.2f} {q[2]:6.2f}     {cells}")
    print("cells: gain of W* vs true W / share of the squared error;", f"written {run / 'drift.json'}")
    print_ceiling(data, conn, gt, snaps[max(snaps)]["W"])
    if listed["least_squares"]:
        print_least_squares(data, conn, gt, snaps[max(snaps)]["W"], listed["least_squares"])
    means = averaged_checkpoints_r2(snaps, gt.W)
    if means:
        print("conn_R2 of W* averaged over the last k checkpoints: "
              + ", ".join(f"k={k} {r2:.4f}" for k, r2 in means.items()))
    if (run / "recovered.npz").is_file():
        try:
            print_vrest(opened, conn, gt, args.top, listed["by_source"])
        except FileNotFoundError as err:   # recovered.npz without a checkpoint (deleted to save space)
            print(f"V_rest table skipped: {err}", file=sys.stderr)
    return 0


def print_ceiling(data, conn, gt, W_star) -> None:
    """What the training data identify of W (diagnostics.connectivity_ceiling) and the last checkpoint's
    W* on the identifiable edges alone."""
    from fvjax.dataset import ever_active
    from fvjax.evaluate.diagnostics import connectivity_ceiling, identifiable_scores
    from fvjax.evaluate.metrics import r2_filtered

    active = ever_active(data.train.voltage)
    c = connectivity_ceiling(active, gt.W, conn.edge_src, list(conn.type_names), conn.node_type)
    seen_r2 = identifiable_scores(gt.W, W_star, conn.edge_src, active)["connectivity_R2_identifiable"]
    seen = active[np.asarray(conn.edge_src)]
    silent = ", ".join(f"{t} {n}" for t, n in c["silent_per_type"].items()) or "none"
    print(f"never active in the training data: {c['silent_sources']} neurons ({silent}); their "
          f"{c['silent_edges']} edges hold {c['silent_weight_share']:.1%} of sum W^2 and cannot be identified; "
          f"conn_R2 ceiling {c['ceiling_R2']:.4f}; last checkpoint's W* on the other edges: conn_R2 {seen_r2:.4f}; "
          f"all edges with the unseen W* at 0: conn_R2 {r2_filtered(gt.W, np.where(seen, W_star, 0.0))[0]:.4f}")


def print_least_squares(data, conn, gt, W_star, types: list[str], n_frames: int = 6000, per_type: int = 40) -> None:
    """Per target type: gain (least-squares slope through 0) and R^2 of the weights a least-squares fit of
    the true equation gives (diagnostics.least_squares_weights on ``n_frames`` random training frames, up
    to ``per_type`` neurons), next to the run's last W*."""
    from fvjax.evaluate.diagnostics import least_squares_weights, per_type_gains
    from fvjax.evaluate.metrics import r2_affine

    names, nt = list(conn.type_names), np.asarray(conn.node_type)
    src, dst = np.asarray(conn.edge_src), np.asarray(conn.edge_dst)
    frames = np.sort(np.random.default_rng(0).choice(len(data.train), min(n_frames, len(data.train)), replace=False))
    V = np.asarray(data.train.voltage[frames], np.float64)
    Y = np.asarray(data.train.target[frames], np.float64)
    E = np.zeros_like(V)
    E[:, data.input_index] = np.asarray(data.train.stimulus[frames], np.float64)
    W_true, W_star = np.asarray(gt.W, np.float64), np.asarray(W_star, np.float64)

    def gain_r2(w, x):   # one group: the gain through the origin, and the connectivity fit's R^2
        return per_type_gains(w, x, np.zeros(len(w), int), 1)[0], r2_affine(w, x)[0]

    print(f"least squares of the true equation's form over {len(frames)} training frames (per target type):")
    for name in types:
        neurons = np.where(nt == names.index(name))[0]
        fits = [(e, least_squares_weights(V, Y, E, i, e, src)) for i in neurons[::max(1, len(neurons) // per_type)]
                for e in [np.where(dst == i)[0]]]
        edges = np.concatenate([e for e, _ in fits])
        ls = gain_r2(W_true[edges], np.concatenate([w for _, w in fits]))
        gnn = gain_r2(W_true[edges], W_star[edges])
        print(f"  {name:8s} {len(edges):5d} edges  fit gain {ls[0]:5.2f} R2 {ls[1]:.3f}  |  "
              f"W* gain {gnn[0]:5.2f} R2 {gnn[1]:.3f}")


def _offset_inputs(opened) -> dict:
    """What the message-offset split needs from a finished run: the recovered probes (with the on-data
    W*, ``W_data``), the model's own W, g_phi's mean and <ReLU(v)> per source over 400 training frames,
    and the message gain per neuron."""
    import jax.numpy as jnp

    from fvjax import model as M
    from fvjax.dataset import spread_frames

    data, rec = opened.dataset, opened.recovered
    params, spec = opened.params()
    voltage = np.asarray(data.train.voltage[spread_frames(len(data.train), 400)], np.float32)
    g_mean = np.concatenate([np.asarray(M.edge_function(params, spec, jnp.asarray(chunk), params["a"]), np.float64)
                             for chunk in np.array_split(voltage, max(len(voltage) // 50, 1))]).mean(0)
    with np.errstate(divide="ignore", invalid="ignore"):
        gain = np.nan_to_num(rec["msg_gain"] / -rec["v_gain"])
    return {"rec": rec, "W_raw": np.asarray(M.weights(params, spec), np.float64), "g_mean": g_mean, "gain": gain,
            "rate": np.maximum(voltage.astype(np.float64), 0).mean(0)}


def print_vrest(opened, conn, gt, top: int, by_source: list[str]) -> None:
    """The end-of-run V_rest errors next to the learned message's constant offset (writes vrest.json);
    ``opened``: the run (fvjax.runs.Run); ``by_source``: target types whose weight part is split by source."""
    from fvjax.evaluate.diagnostics import message_offset_parts, vrest_table

    x = _offset_inputs(opened)
    rec, run = x["rec"], opened.path
    weight, shape = message_offset_parts(x["gain"], x["g_mean"], rec["g_slope"], x["rate"], x["W_raw"],
                                         gt.W, conn.edge_src, conn.edge_dst, conn.n_nodes)
    table = vrest_table(rec, gt.V_rest, weight, shape, conn.node_type, list(conn.type_names))
    (run / "vrest.json").write_text(json.dumps(table, indent=1))
    rows = sorted(table["per_type"].items(), key=lambda kv: -abs(kv[1]["error_probe"]))[:top]
    print("\nV_rest error per type (end of run): probe / on-data; the learned message's constant offset"
          " (voltage units): from weights + from g_phi's shape")
    for name, r in rows:
        print(f"  {name:10s} {r['error_probe']:6.2f} / {r['error_data']:6.2f}    {r['offset_weights']:6.2f} + "
              f"{r['offset_shape']:6.2f}")
    print(f"per-neuron r(on-data error, -offset) = {table['r_error_data_offset']:.2f} "
          f"(weights alone {table['r_error_data_offset_weights']:.2f}); written {run / 'vrest.json'}")
    for name in by_source:
        print_by_source(x, conn, gt, name)


def print_by_source(x: dict, conn, gt, name: str) -> None:
    """The weight part of the offset into type ``name``, per source type (diagnostics.offset_by_source)."""
    from fvjax.evaluate.diagnostics import offset_by_source

    names = list(conn.type_names)
    rows = offset_by_source(x["rec"]["W_data"], gt.W, x["rate"], conn.edge_src, conn.edge_dst, conn.node_type,
                            names.index(name))
    total = sum(r["offset"] for r in rows.values())
    print(f"\ninto {name}, per source type, per {name} neuron: edges, sum of W true / W*, <ReLU(v)> of the "
          f"sources, offset sum (W* - W) <ReLU(v)>; total {total:.3f} (the mean weight part)")
    for s, r in sorted(rows.items(), key=lambda kv: -abs(kv[1]["offset"])):
        print(f"  {names[s]:10s} {r['edges']:6d}  {r['W_true']:8.3f} / {r['W_star']:8.3f}  {r['rate']:6.3f}  "
              f"{r['offset']:7.3f}")


if __name__ == "__main__":
    sys.exit(main())
