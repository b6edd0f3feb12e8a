"""Is W identifiable from a PDE_N2 dataset, and does a trained model lag in W or in its functions?

    python -m experiments.identifiability runs/synthetic/PDE_N2/seed0/data
    python -m experiments.identifiability DATA --run runs/synthetic/PDE_N2/seed0/ts1 --rows 60

Three least-squares fits over the training frames, each scored by the affine R^2 against g_i W_ij
(docs/results.md, "The reference's network and GNN"):
- ``true functions``: W given the true g = tanh and f = -c u + s tanh(u) (ridge 1e-3);
- ``free update``: per row, W_i and (alpha, beta, gamma) of alpha u_i + beta tanh(u_i) + gamma jointly,
  g = tanh (``--rows`` rows, evenly spread; also the R^2 of c and s);
- ``learned functions`` (with ``--run``): W given the run's own g_phi and f_theta, times g_phi's tanh gain.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from fvjax.evaluate.metrics import r2_affine


def effective_truth(net) -> np.ndarray:
    return np.asarray(net.g, np.float64)[:, None] * np.asarray(net.matrix, np.float64)


def true_functions_r2(U, Y, net, ridge: float = 1e-3) -> float:
    from fvjax.train.refit import least_squares_W
    H = np.tanh(U)
    W = least_squares_W(H, Y - (-net.c * U + net.s * H), ridge)
    off = ~np.eye(U.shape[1], dtype=bool)
    return r2_affine(effective_truth(net)[off], W[off])[0]


def free_update_r2(U, Y, net, rows: int) -> dict:
    n = U.shape[1]
    H, truth, idx = np.tanh(U), effective_truth(net), np.linspace(0, n - 1, rows).astype(int)
    W_hat, W_true, coef = [], [], []
    for i in idx:
        cols = np.r_[0:i, i + 1:n]
        A = np.column_stack([H[:, cols], U[:, i], H[:, i], np.ones(len(U))])
        sol = np.linalg.lstsq(A, Y[:, i], rcond=None)[0]
        W_hat.append(sol[:n - 1])
        W_true.append(truth[i, cols])
        coef.append(sol[n - 1:n + 1])
    coef = np.asarray(coef)
    return {"W_R2": r2_affine(np.concatenate(W_true), np.concatenate(W_hat))[0],
            "c_R2": r2_affine(net.c[idx], -coef[:, 0])[0], "s_R2": r2_affine(net.s[idx], coef[:, 1])[0]}


def learned_functions_r2(run_dir: str, ridge: float = 1e-3) -> dict:
    from fvjax.evaluate.pde_n2 import pde_n2_scores_on_data
    from fvjax.runs import load_run
    from fvjax.train.refit import refit_W
    run = load_run(run_dir)
    params, spec = run.params()
    data, net = run.dataset, run.ground_truth
    scores, arrays = pde_n2_scores_on_data(params, spec, net, data)
    refit = refit_W(params, spec, run.graph, data, len(data.train), ridge)     # every training frame
    W_star = np.asarray(refit["W"], np.float64).reshape(spec.n_nodes, -1) * arrays["g_phi_tanh_gain"][None, :]
    off = ~np.eye(spec.n_nodes, dtype=bool)
    return {"trained_W_R2": scores["connectivity_R2"],
            "least_squares_W_R2": r2_affine(effective_truth(net)[off], W_star[off])[0]}


def main(argv=None) -> int:
    from fvjax.dataset import load_dataset
    from fvjax.networks.synthetic import PDEN2Network, load_network

    p = argparse.ArgumentParser(prog="python -m experiments.identifiability", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("data", help="a PDE_N2 dataset folder")
    p.add_argument("--run", help="a run folder trained on it: also fit W to its learned functions")
    p.add_argument("--rows", type=int, default=60, help="rows of the free-update fit")
    args = p.parse_args(argv)
    data = load_dataset(args.data)
    net = load_network(f"{args.data}/ground_truth.npz")
    if not isinstance(net, PDEN2Network):
        print(f"error: {args.data} is not a PDE_N2 dataset (simulation.synthetic_model: PDE_N2)", file=sys.stderr)
        return 2
    U = np.asarray(data.train.voltage[:], np.float64)
    Y = np.asarray(data.train.target[:], np.float64)
    print(f"true functions: W R2 = {true_functions_r2(U, Y, net):.6f}")
    print("free update: " + ", ".join(f"{k} = {v:.4f}" for k, v in free_update_r2(U, Y, net, args.rows).items()))
    if args.run:
        print("learned functions: " + ", ".join(f"{k} = {v:.4f}" for k, v in learned_functions_r2(args.run).items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
