"""The evaluation's clustering (fvjax.evaluate.metrics.cluster_labels: GMM, 100 full-covariance components,
one BLAS/OpenMP thread) against the same scikit-learn fit with the thread pools left at their default (one
thread per core), the baseline, alternated in this process. Features: a finished run's (``--run RUN``, as its
evaluation builds them) or, by default, synthetic ones (8 columns per neuron of the extent-8 network, a mean
per cell type plus noise). ``--busy N`` keeps N other processes spinning on the cores meanwhile, as a second
training job or a cluster node's other tasks do. Prints seconds, the ratio and whether the labels agree.

    python benchmarks/cluster.py [--run runs/vrest/default_seed7] [--busy 2] [--rounds 2]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from common import busy
from fvjax.connectome import build_connectome
from fvjax.evaluate import metrics as MT


def baseline(features, n_components: int = 100, seed: int = 42) -> np.ndarray:
    from sklearn.mixture import GaussianMixture

    return GaussianMixture(n_components, covariance_type="full", random_state=seed,
                           reg_covar=1e-6).fit_predict(np.asarray(features, np.float64))


def synthetic_features(conn, rng) -> np.ndarray:
    centres = rng.normal(0, 1, (conn.n_types, 8))
    return centres[conn.node_type] + rng.normal(0, 0.3, (conn.n_nodes, 8))


def run_features(run_dir: str, conn) -> np.ndarray:
    import fvjax

    run = fvjax.load_run(run_dir)
    params, _ = run.params()
    with np.load(f"{run_dir}/recovered.npz") as rec:
        return MT.cluster_features(params["a"], rec["tau"], rec["V_rest"], rec["W"], conn.edge_src,
                                   conn.edge_dst, conn.n_nodes)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", help="a finished run folder to take the features from (default: synthetic)")
    p.add_argument("--busy", type=int, default=0, help="other processes spinning on the cores meanwhile")
    p.add_argument("--rounds", type=int, default=2)
    args = p.parse_args()
    conn = build_connectome(8)
    features = run_features(args.run, conn) if args.run else synthetic_features(conn, np.random.default_rng(0))
    times, labels = {"baseline": [], "fvjax": []}, {}
    with busy(args.busy):
        for _ in range(args.rounds):
            for name, fn in (("baseline", baseline), ("fvjax", MT.cluster_labels)):
                t = time.perf_counter()
                labels[name] = fn(features)
                times[name].append(time.perf_counter() - t)
    base, ours = statistics.median(times["baseline"]), statistics.median(times["fvjax"])
    print(f"features {features.shape} ({args.run or 'synthetic'}), busy processes {args.busy}")
    print(f"baseline (default thread pools) {base:.2f} s, fvjax (one thread) {ours:.2f} s, ratio {base / ours:.2f}")
    print(f"labels identical: {bool(np.array_equal(labels['baseline'], labels['fvjax']))}; cluster accuracy "
          f"{MT.matched_accuracy(conn.node_type, labels['baseline']):.4f} / "
          f"{MT.matched_accuracy(conn.node_type, labels['fvjax']):.4f}")


if __name__ == "__main__":
    main()
