"""Several ground-truth models trained side by side with the same recipe (seeds 001/004), with the
diagnostics that explain the differences (per-type R2, per-neuron W-sum correlation, sign match,
recovery mechanism).

    python -m experiments.understand --models prior:1,prior:3,prior:5
    python -m experiments.understand --models ../shared/data/flyvis_model_000.npz,prior:7 --preset default
    python -m experiments.understand --models prior:1,prior:3 --set training.n_iter=4000 --n-frames 4000

A model is ``prior:<seed>`` (calibrated prior), ``flyvis_initial:<seed>`` or a path to a .npz /
flyvis checkpoint. Each gets runs/understand/<name>/ (like experiments.vrest); comparison.md and
comparison.json hold the side-by-side table.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from fvjax.config import Config, ConfigError, load_config
from fvjax.generate import parse_sets

from .vrest import PRESETS

COLUMNS = ("model", "connectivity_R2", "tau_R2", "V_rest_R2", "cluster_accuracy", "test_pearson",
           "W_sum_corr_in", "W_sum_corr_out", "sign_match_raw", "W_R2_per_target_type_median",
           "effective_rank_99", "mechanism", "training_time_min")


def parse_model(text: str) -> tuple[str, dict]:
    """'prior:3' -> ('prior3', {...}); a file path -> (its stem, {...}). Raises ValueError if unknown."""
    kind, _, seed = text.partition(":")
    if kind in ("prior", "flyvis_initial"):
        if not seed.isdigit():
            raise ValueError(f"--models entry {text!r}: expected {kind}:<seed>, e.g. {kind}:3")
        return f"{kind}{seed}", {"simulation.ground_truth": kind, "simulation.seed": int(seed)}
    path = Path(text).expanduser()
    if not path.is_file():
        raise ValueError(f"--models entry {text!r}: not prior:<seed>, flyvis_initial:<seed> or an existing file")
    return path.stem, {"simulation.ground_truth": str(path.resolve())}


def table(rows: list[dict]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for r in rows:
        lines.append("| " + " | ".join(f"{r[c]:.3f}" if isinstance(r.get(c), float) else str(r.get(c, ""))
                                       for c in COLUMNS) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    from fvjax.pipeline import run

    p = argparse.ArgumentParser(prog="python -m experiments.understand", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", required=True, help="comma-separated ground truths")
    p.add_argument("--preset", choices=sorted(PRESETS), default="default")
    p.add_argument("--config", help="YAML applied on top of the preset")
    p.add_argument("--train-seed", type=int, default=0)
    p.add_argument("--n-frames", type=int)
    p.add_argument("--out", default="runs/understand")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args(argv)
    try:
        models = [parse_model(m) for m in args.models.split(",")]
        base: Config = load_config(args.config, {**PRESETS[args.preset], "training.seed": args.train_seed,
                                                 **({"simulation.n_frames": args.n_frames} if args.n_frames else {}),
                                                 **parse_sets(args.set)})
        configs = {name: base.replace(**changes) for name, changes in models}
    except (ConfigError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    out = Path(args.out)
    rows = []
    for name, cfg in configs.items():
        print(f"== {name} -> {out / name}", flush=True)
        metrics = run(cfg, out / name, progress=not args.quiet, header={"model": name})
        rows.append({**metrics, "model": name})
        out.mkdir(parents=True, exist_ok=True)
        (out / "comparison.md").write_text(table(rows))
        (out / "comparison.json").write_text(json.dumps(rows, indent=1))
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
