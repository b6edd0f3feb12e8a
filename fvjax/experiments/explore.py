"""Exploration tree over training configurations (seeds 000/003), with UCB parent selection.

    python -m experiments.explore --experiment synthetic --iterations 12 --parallel 2 --jobs 2
    python -m experiments.explore --experiment vrest --parallel 8 --cluster lsf --cluster-config lsf.yaml
    python -m experiments.explore --experiment synthetic --space space.yaml --mode ordered
    python -m experiments.explore --experiment vrest --regenerate-data --robustness 3
    python -m experiments.explore --experiment synthetic --proposer file --proposals next.yaml

The search space YAML maps dotted config keys to a list of values or {lo, hi, log}. With
``--proposer file`` an external agent writes the next proposals into ``next.yaml`` (a list of
{parent, changes, strategy, note}); when it runs short the command stops and says so, and running
it again resumes. Outputs: runs/explore/<name>/ (see fvjax.explore.runner).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fvjax.cluster import add_arguments as cluster_arguments
from fvjax.cluster import from_arguments as cluster_from_arguments
from fvjax.cluster import maybe_client
from fvjax.config import ConfigError, from_dict, load_config, load_yaml
from fvjax.generate import parse_sets

DEFAULT_SPACES = {   # the ranges named in the seeds' instructions
    "synthetic": {"training.lr_W": {"lo": 1e-4, "hi": 1e-2, "log": True},
                  "training.lr": {"lo": 1e-5, "hi": 1e-3, "log": True},
                  "training.lr_embedding": {"lo": 1e-4, "hi": 1e-2, "log": True},
                  "training.coeff_W_L1": {"lo": 1e-6, "hi": 1e-4, "log": True}},
    "vrest": {"training.learning_rate_update_start": [1.2e-3, 1.5e-3, 2e-3, 3e-3],
              "training.coeff_W_L2": [0.0, 2.5e-6, 3.5e-6, 5e-6],
              "training.grad_clip_W": [0.0, 0.1, 0.5, 1.0]},
}


def _synthetic_base(args):
    from .synthetic import PRESET

    return from_dict(PRESET)


def _vrest_base(args):
    from .vrest import PRESETS

    return load_config(None, PRESETS[args.preset])


BASES = {"synthetic": _synthetic_base, "vrest": _vrest_base}   # --experiment -> its preset config


def base_config(args):
    cfg = BASES[args.experiment](args)
    if args.config:
        cfg = load_config(args.config, {})   # a full YAML replaces the preset
    return cfg.replace(**parse_sets(args.set)) if args.set else cfg


def make_proposer(args):
    from fvjax.explore import FileProposer, SweepProposer

    if args.proposer == "file":
        if not args.proposals:
            raise ValueError("--proposer file needs --proposals <file.yaml>")
        return FileProposer(Path(args.proposals))
    space = DEFAULT_SPACES[args.experiment]
    if args.space:
        space = load_yaml(args.space)   # duplicate keys and bad YAML are ConfigErrors naming the file
        if not isinstance(space, dict):
            raise ValueError(f"{args.space}: expected a mapping of dotted keys to values or ranges")
    return SweepProposer(space, args.mode)


def main(argv=None) -> int:
    from fvjax.explore import ExploreSettings, NeedProposals, explore

    p = argparse.ArgumentParser(prog="python -m experiments.explore", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--experiment", choices=sorted(DEFAULT_SPACES), default="synthetic")
    p.add_argument("--preset", default="default", help="vrest preset")
    p.add_argument("--config", help="full YAML for the base configuration")
    p.add_argument("--name", default=None, help="exploration name (default: the experiment)")
    p.add_argument("--out", default="runs/explore")
    p.add_argument("--iterations", type=int, default=12)
    p.add_argument("--parallel", type=int, default=1, help="configurations per batch")
    p.add_argument("--block", type=int, default=12, help="iterations per block (n_iter_block)")
    p.add_argument("--jobs", type=int, default=1, help="run a batch's slots in this many pinned processes")
    cluster_arguments(p, "slot")
    p.add_argument("--ucb-c", type=float, default=1.414)
    p.add_argument("--formula", choices=("puct", "ucb1"), default="puct")
    p.add_argument("--reward", default="connectivity_R2")
    p.add_argument("--proposer", choices=("sweep", "file"), default="sweep")
    p.add_argument("--mode", choices=("random", "ordered"), default="random")
    p.add_argument("--space", help="YAML search space for the sweep proposer")
    p.add_argument("--proposals", help="YAML proposals file for --proposer file")
    p.add_argument("--regenerate-data", action="store_true", help="new simulation seed per iteration")
    p.add_argument("--robustness", type=int, default=0, help="re-run the best node with N seeds")
    p.add_argument("--seed", type=int, default=0, help="seed of the proposer's random choices")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args(argv)
    name = args.name or args.experiment
    try:
        settings = ExploreSettings(name=name, n_iterations=args.iterations, n_parallel=args.parallel,
                                   n_iter_block=args.block, ucb_c=args.ucb_c, reward_key=args.reward,
                                   formula=args.formula, regenerate_data=args.regenerate_data,
                                   robustness_seeds=args.robustness, seed=args.seed, jobs=args.jobs,
                                   retries=args.retries)
        base, proposer, cluster = base_config(args), make_proposer(args), cluster_from_arguments(args)
        with maybe_client(cluster) as client:
            explore(base, Path(args.out) / name, proposer, settings, progress=not args.quiet, client=client)
    except NeedProposals as msg:
        print(f"stopped: {msg}", file=sys.stderr)
        return 3
    except (ConfigError, ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print((Path(args.out) / name / f"{name}_ucb_scores.txt").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
