"""Recover the fly visual system's connectivity, time constants and resting potentials from its
simulated activity: simulate trained flyvis model 000 (or another ground truth) with a seed's movies
and noise, train the GNN, evaluate.

    python -m experiments.vrest --seed 7                       # default preset (16,000 frames, 40,000 iterations)
    python -m experiments.vrest --seed 7 --preset paper        # 64,000 frames, aug 20, batch 2 (the paper's size)
    python -m experiments.vrest --seed 7 --preset fast         # 16,000 frames, 20,000 iterations, W and b solved every 5,000
    python -m experiments.vrest --seed 7 --recipe reference    # the reference's recipe (default: fvjax's)
    python -m experiments.vrest --seeds 1-8                    # several seeds, mean +- std
    python -m experiments.vrest --seeds 1-8 --jobs 4           # four seeds at a time (many-core machines)
    python -m experiments.vrest --seeds 1-8 --vmap             # eight models in one vmapped program (a GPU)
    python -m experiments.vrest --seeds 1-8 --cluster local:4  # four dask worker processes (docs/cluster.md)
    python -m experiments.vrest --seeds 1-8 --cluster lsf --cluster-config lsf.yaml   # workers as LSF jobs
    python -m experiments.vrest --seed 7 --recurrent --time-step 3 --lr-update 2e-3 --W-L2 2.5e-6

Writes runs/vrest/<preset>_seed<N>/ (<preset>_reference_seed<N>/ with --recipe reference): config.yaml, loss.csv, metrics_during.csv,
during/ (recovery snapshots), checkpoints/, refit.npz + refit.json (the recipe's end-of-training least-squares
W and b), metrics.json, analysis.log, recovered.npz, per_type.csv,
plots/*.png (per_type.png: the per-cell-type answer). Re-running the same command resumes; other
settings in the same folder are refused. The dataset is shared by every run that needs the same data:
runs/vrest/datasets/flyvis-<hash>/ (simulation.data_cache sets another folder).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from fvjax.cluster import add_arguments as cluster_arguments
from fvjax.cluster import from_arguments as cluster_from_arguments
from fvjax.config import ConfigError, Config, load_config
from fvjax.generate import parse_sets

# Sizes. The config's training defaults are the recipe behind the reference's baseline (docs/training.md).
PRESETS = {
    "paper": {"simulation.n_frames": 64000, "training.data_augmentation_loop": 20, "training.batch_size": 2},
    # 50-100 min on 2 CPU cores depending on the machine and its load, data and evaluation included (docs/results.md)
    "default": {"simulation.n_frames": 16000, "training.batch_size": 2, "training.n_iter": 40000},
    # half the default's iterations; with fvjax's recipe W and b are solved every 5,000 (RECIPE_AT_PRESET)
    "fast": {"simulation.n_frames": 16000, "training.batch_size": 2, "training.n_iter": 20000},
}


# What is trained on top of the config's defaults: fvjax's recipe, the update in the flyvis equation's
# gain form with a pin of the silent source's message, the additive g_phi_diff perturbation, W held at 0
# on the edges of sources never active in the data, W at twice Node 21's rate, and W and a per-neuron constant
# refitted by least squares after training (docs/training.md, results.md); or the reference's recipe
# unchanged. Run folders of the reference recipe are named <preset>_reference_seed<N>.
RECIPES = {"fvjax": {"graph_model.update_type": "gain", "training.coeff_g_phi_zero": 0.9,
                     "training.g_phi_diff_perturbation": "additive", "training.hold_silent_sources": True,
                     "training.lr_W": 1.2e-3, "training.refit_at_end": True},
           "reference": {}}
RECIPE_SUFFIX = {"fvjax": "", "reference": "_reference"}
# What a recipe adds at one preset only: fvjax's recipe at the fast preset solves W and b every 5,000
# iterations too (training.refit_every), which gets it in 20,000 iterations to the default's connectivity, tau,
# clustering and V_rest_R2_offset after 40,000, not to its reference-probe V_rest (results.md, seeds 7 and 10).
RECIPE_AT_PRESET = {("fvjax", "fast"): {"training.refit_every": 5000}}


def run_name(preset: str, recipe: str, seed: int) -> str:
    return f"{preset}{RECIPE_SUFFIX[recipe]}_seed{seed}"


def parse_seeds(text: str) -> list[int]:
    """"1-3,7" -> [1, 2, 3, 7]; a malformed or empty range is a ConfigError."""
    seeds = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        try:
            span = list(range(int(lo), int(hi) + 1)) if hi else [int(lo)]
        except ValueError:
            raise ConfigError(f"--seeds {text!r}: {part!r} is not a seed or a range like 1-8") from None
        if not span:
            raise ConfigError(f"--seeds {text!r}: the range {part!r} is empty (write it low-high)")
        seeds += span
    return seeds


def build_config(args) -> Config:
    overrides = {**PRESETS[args.preset], **RECIPES[args.recipe],
                 **RECIPE_AT_PRESET.get((args.recipe, args.preset), {})}
    knobs = {"recurrent": "training.recurrent_training", "time_step": "training.time_step",
             "noise_recurrent_level": "training.noise_recurrent_level",
             "lr_update": "training.learning_rate_update_start", "W_L2": "training.coeff_W_L2",
             "grad_clip_W": "training.grad_clip_W", "n_epochs": "training.n_epochs",
             "n_iter": "training.n_iter", "n_frames": "simulation.n_frames", "lr": "training.lr",
             "lr_W": "training.lr_W", "lr_embedding": "training.lr_embedding",
             "tensorboard": "training.tensorboard"}
    for arg, key in knobs.items():
        value = getattr(args, arg)
        if value is not None and value is not False:
            overrides[key] = value
    if args.two_phase:
        overrides.update({"training.recurrent_training": True, "training.n_epochs": max(args.n_epochs or 2, 2),
                          "training.recurrent_training_start_epoch": 1})
    overrides.update(parse_sets(args.set))
    return load_config(args.config, overrides)


def seed_config(cfg: Config, seed: int) -> Config:
    return cfg.replace(**{"simulation.seed": seed, "training.seed": seed})


def run_seed(cfg: Config, seed: int, run_dir: Path, progress: bool = True, verify_data: bool = False) -> dict:
    """Generate (or reuse) data, train (or resume), evaluate, plot. Returns the metrics."""
    from fvjax.pipeline import run

    return run(seed_config(cfg, seed), run_dir, progress=progress, header={"seed": seed}, verify_data=verify_data)


def _line(metrics: dict) -> str:
    return ", ".join(f"{k}={metrics[k]:.3f}" for k in KEYS if k in metrics)


KEYS = ("connectivity_R2", "tau_R2", "V_rest_R2", "V_rest_R2_offset", "cluster_accuracy", "test_R2",
        "test_pearson", "training_time_min", "total_time_min")


def summarize(results: dict[int, dict]) -> dict:
    """Mean, population std and n over the seeds that report a finite value of each metric (a NaN,
    e.g. tau_R2 of an untrained run, is left out of all three, as in `fvjax compare`; none: NaN, n 0)."""
    summary = {}
    for key in KEYS:
        vals = np.array([r[key] for r in results.values() if key in r], float)
        if len(vals):
            vals = vals[np.isfinite(vals)]
            mean, std = (float(vals.mean()), float(vals.std())) if len(vals) else (float("nan"), float("nan"))
            summary[key] = {"mean": mean, "std": std, "n": int(len(vals))}
    return summary


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m experiments.vrest", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_mutually_exclusive_group()
    g.add_argument("--seed", type=int, default=None, help="one seed (default 0)")
    g.add_argument("--seeds", type=str, help="several seeds, e.g. 1-8 or 1,3,5")
    p.add_argument("--preset", choices=sorted(PRESETS), default="default",
                   help="default: 16,000 frames, 40,000 iterations; fast: 20,000 iterations (with the fvjax recipe "
                        "W and b solved every 5,000); paper: the reference's 64,000 frames, aug 20")
    p.add_argument("--recipe", choices=sorted(RECIPES), default="fvjax",
                   help="fvjax (default): gain-form update, silent-source pin, additive g_phi_diff, silent "
                        "sources' W held at 0; reference: the reference's "
                        "recipe as it ran (run folders <preset>_reference_seed<N>)")
    p.add_argument("--out", default="runs/vrest", help="parent folder of the run folders")
    p.add_argument("--config", help="YAML applied on top of the defaults (reference key names accepted)")
    p.add_argument("--recurrent", action="store_true", help="training.recurrent_training")
    p.add_argument("--time-step", dest="time_step", type=int, help="recurrent unroll length")
    p.add_argument("--noise-recurrent-level", type=float)
    p.add_argument("--lr-update", type=float, help="f_theta learning rate (learning_rate_update_start)")
    p.add_argument("--W-L2", dest="W_L2", type=float, help="coeff_W_L2")
    p.add_argument("--grad-clip-W", dest="grad_clip_W", type=float)
    p.add_argument("--two-phase", action="store_true", help="one-step epoch, then recurrent epoch(s)")
    p.add_argument("--n-epochs", type=int)
    p.add_argument("--n-iter", type=int, help="iterations per epoch (overrides the preset)")
    p.add_argument("--n-frames", type=int, help="training frames to generate")
    p.add_argument("--lr", type=float)
    p.add_argument("--lr-W", dest="lr_W", type=float)
    p.add_argument("--lr-embedding", type=float)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--jobs", type=int, default=1,
                   help="with --seeds: worker processes, each pinned to its share of the cores; not faster "
                        "than sequential on 2 cores (benchmarks/README.md), useful on many-core machines")
    p.add_argument("--tensorboard", action="store_true",
                   help="also write TensorBoard curves to RUN/tensorboard (pip install -e \".[tensorboard]\")")
    p.add_argument("--vmap", action="store_true",
                   help="with --seeds: train all seeds as one vmapped program (for a GPU; slower than one after "
                        "another on a 2-core CPU, benchmarks/README.md)")
    cluster_arguments(p, "seed")
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--verify-data", action="store_true",
                   help="re-hash every array of a reused dataset before training (about 7 s per 7 GB)")
    p.add_argument("--debug", action="store_true", help="show the traceback of an error")
    return p


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    try:
        cfg = build_config(args)
        seeds = parse_seeds(args.seeds) if args.seeds else [0 if args.seed is None else args.seed]
        cluster = cluster_from_arguments(args)
        if args.vmap and (cluster is not None or args.jobs > 1):
            raise ConfigError("--vmap trains the seeds in this process; it does not combine with --cluster or --jobs")
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    from fvjax.dataset import DatasetError
    from fvjax.pipeline import RunLocked, RunMismatch
    from fvjax.stimulus import VideoError

    try:
        return _run_seeds(args, cfg, seeds, cluster)
    except (ConfigError, RunMismatch, RunLocked, DatasetError, VideoError, FileExistsError, FileNotFoundError) as err:
        if args.debug:
            raise
        print(f"error: {err}", file=sys.stderr)
        return 2
    except FloatingPointError as err:   # diverged: the last finite checkpoint is kept
        if args.debug:
            raise
        print(f"error: {err}", file=sys.stderr)
        return 3


def _run_seeds(args, cfg: Config, seeds: list[int], cluster=None) -> int:
    from fvjax.pipeline import run_many

    tasks = [{"cfg": seed_config(cfg, s), "run_dir": Path(args.out) / run_name(args.preset, args.recipe, s),
              "header": {"seed": s}, "verify_data": args.verify_data} for s in seeds]

    def report(task, metrics):
        print(f"   seed {task['header']['seed']}: " + _line(metrics), flush=True)
    if args.vmap and len(seeds) > 1:
        from fvjax.pipeline import run_vmapped

        print(f"== seeds {seeds}: one vmapped program -> {args.out}", flush=True)
        metrics = run_vmapped(tasks, progress=not args.quiet)
        for task, m in zip(tasks, metrics):
            report(task, m)
    elif cluster is not None:
        from fvjax.cluster import open_client

        print(f"== seeds {seeds}: dask cluster {args.cluster} -> {args.out}", flush=True)
        with open_client(cluster) as client:
            metrics = run_many(tasks, on_result=report, client=client, retries=args.retries)
    elif args.jobs > 1 and len(seeds) > 1:
        print(f"== seeds {seeds}: {args.jobs} pinned worker processes -> {args.out}", flush=True)
        metrics = run_many(tasks, args.jobs, on_result=report)
    else:
        metrics = []
        for seed, task in zip(seeds, tasks):
            print(f"== seed {seed} -> {task['run_dir']}", flush=True)
            metrics.append(run_seed(cfg, seed, task["run_dir"], progress=not args.quiet, verify_data=args.verify_data))
            print("   " + _line(metrics[-1]), flush=True)
    results = dict(zip(seeds, metrics))
    if len(seeds) > 1:
        from fvjax.evaluate.report import atomic_write_text
        from fvjax.runs import seed_summary_name

        summary = summarize(results)
        path = Path(args.out) / seed_summary_name(f"{args.preset}{RECIPE_SUFFIX[args.recipe]}", seeds)
        atomic_write_text(path, json.dumps({"seeds": seeds, "summary": summary, "runs": results}, indent=1))
        for key, s in summary.items():
            print(f"{key:20s} {s['mean']:.3f} +/- {s['std']:.3f} (n={s['n']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
