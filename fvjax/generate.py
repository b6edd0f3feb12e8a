"""Command line: generate a ground-truth dataset.

    python -m fvjax.generate --out data/flyvis_seed0                 # full size, embedded stimuli
    python -m fvjax.generate --out data/small --n-frames 2000 --seed 3
    python -m fvjax.generate --config my.yaml --set simulation.tau_clamp=true --out data/x
"""

from __future__ import annotations

import argparse
import sys

import yaml

from .config import ConfigError, load_config
from .dataset import load_dataset
from .networks import generate_dataset


def parse_sets(items: list[str]) -> dict:
    """``key=value`` pairs (value parsed as YAML) -> overrides dict."""
    out = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected section.key=value")
        key, value = item.split("=", 1)
        out[key.strip()] = yaml.safe_load(value)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m fvjax.generate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="dataset folder to create")
    p.add_argument("--config", help="YAML config (fvjax or flyvis-gnn key names)")
    p.add_argument("--seed", type=int, help="simulation.seed")
    p.add_argument("--n-frames", type=int, help="simulation.n_frames (training frames)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="any config key")
    p.add_argument("--overwrite", action="store_true", help="replace an existing dataset folder")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    args = p.parse_args(argv)
    try:
        overrides = parse_sets(args.set)
        if args.seed is not None:
            overrides["simulation.seed"] = args.seed
        if args.n_frames is not None:
            overrides["simulation.n_frames"] = args.n_frames
        cfg = load_config(args.config, overrides)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if cfg.ignored:
        print(f"note: keys accepted but unused (as in the reference): {', '.join(cfg.ignored)}", file=sys.stderr)
    try:
        path = generate_dataset(cfg, args.out, overwrite=args.overwrite, progress=not args.quiet)
    except (FileExistsError, FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    data = load_dataset(path)
    stats = data.manifest["splits"]["train"]["stats"]
    print(f"wrote {path}: train {len(data.train)} frames, test {len(data.test)} frames, "
          f"median temporal std {stats['median_temporal_std']:.3f}, {data.manifest['wall_time_s']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
