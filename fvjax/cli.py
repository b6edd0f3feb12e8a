"""The ``fvjax`` console command (installed with the package; works from any directory).

    fvjax vrest --seed 7                 # the V_rest experiment (python -m experiments.vrest)
    fvjax generate --out data/x          # a dataset only
    fvjax synthetic | understand | explore | drift | identifiability ...
    fvjax show RUN                       # metrics and the per-cell-type table of a run
    fvjax show RUN --last-iterate        # evaluate the last iterate of a run that averaged its parameters
    fvjax compare RUN [RUN ...]          # one table across runs, mean +- std per metric
    fvjax tuning RUN                     # direction selectivity of the true and the recovered circuit
    fvjax refit RUN                      # what the end-of-training W and b refit gives on a finished run
"""

from __future__ import annotations

import sys
from importlib import import_module

PROGRAMS = {"vrest": "fvjax.experiments.vrest", "synthetic": "fvjax.experiments.synthetic",
            "understand": "fvjax.experiments.understand", "explore": "fvjax.experiments.explore",
            "drift": "fvjax.experiments.drift", "stimulus_stats": "fvjax.experiments.stimulus_stats",
            "identifiability": "fvjax.experiments.identifiability", "generate": "fvjax.generate",
            "tuning": "fvjax.evaluate.tuning", "refit": "fvjax.experiments.refit"}


def show(argv: list[str]) -> int:
    """Print a run's headline metrics and its per-cell-type table."""
    import argparse

    from .runs import SUMMARY_METRICS, load_run

    p = argparse.ArgumentParser(prog="fvjax show", description="metrics and per-cell-type table of a run")
    p.add_argument("run")
    p.add_argument("--csv", help="also write the per-type table to this CSV file")
    p.add_argument("--last-iterate", action="store_true",
                   help="evaluate the latest checkpoint's last iterate instead of reading metrics.json (a run "
                        "with training.ema_decay reports its parameter average there); a few minutes")
    args = p.parse_args(argv)
    from .config import ConfigError

    try:
        run = load_run(args.run)
        if args.last_iterate:
            return _show_last_iterate(run)
        for key in SUMMARY_METRICS:
            if key in run.metrics:
                print(f"{key:22s} {run.metrics[key]:.4f}")
        _print_before_refit(run.metrics)
        table = run.per_type
    except (FileNotFoundError, ConfigError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    with _wide_pandas():
        print(table.to_string(index=False, float_format=lambda x: f"{x:.3f}"))
    if args.csv:
        table.to_csv(args.csv, index=False)
    return 0


def _print_before_refit(metrics: dict) -> None:
    """The trained parameters' scores of a run that refit W and b at the end (training.refit_at_end)."""
    before = {k.removeprefix("before_refit_"): v for k, v in metrics.items() if k.startswith("before_refit_")}
    if before:
        print("before the end-of-training refit of W and b: "
              + ", ".join(f"{k} {v:.4f}" for k, v in before.items() if isinstance(v, float)))


def _show_last_iterate(run) -> int:
    from .runs import SUMMARY_METRICS

    metrics = run.evaluate(last=True)
    print(f"{run.path}: the last iterate of its latest checkpoint")
    for key in (*SUMMARY_METRICS, "connectivity_R2_identifiable"):
        if isinstance(metrics.get(key), float):
            print(f"{key:28s} {metrics[key]:.4f}")
    return 0


def compare(argv: list[str]) -> int:
    import argparse

    from .runs import compare_runs, is_seed_summary

    p = argparse.ArgumentParser(prog="fvjax compare", description="one table across runs, mean +- std")
    p.add_argument("runs", nargs="+")
    p.add_argument("--csv", help="also write the table to this CSV file")
    args = p.parse_args(argv)
    from .config import ConfigError

    # runs/vrest/default_seed* also matches the seed summaries a multi-seed command writes beside its folders
    runs = [p for p in args.runs if not is_seed_summary(p)]
    for path in (p for p in args.runs if is_seed_summary(p)):
        print(f"note: skipped {path}: a seed summary written by experiments.vrest --seeds, not a run folder")
    if not runs:
        print("error: no run folders given (pass folders such as runs/vrest/default_seed7)", file=sys.stderr)
        return 2
    try:
        table, summary = compare_runs(runs)
    except (FileNotFoundError, ConfigError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    table = table.sort_values("seed", kind="stable")   # a shell glob puts default_seed10 before default_seed7
    with _wide_pandas():
        print(table.to_string(index=False, float_format=lambda x: f"{x:.3f}"))
        print()
        print(summary.to_string(float_format=lambda x: f"{x:.3f}"))
    for key, lacking in summary.attrs["absent"].items():
        print(f"note: {key} is not in the metrics.json of {', '.join(lacking)} (not defined for that network, or "
              f"evaluated before fvjax reported it: re-running a run's own command re-evaluates it with today's "
              f"code); n counts the runs that have it")
    if args.csv:
        table.to_csv(args.csv, index=False)
    return 0


def _wide_pandas():
    import pandas as pd

    return pd.option_context("display.width", 200, "display.max_columns", 50)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    commands = sorted([*PROGRAMS, "show", "compare"])
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name == "show":
        return show(rest)
    if name == "compare":
        return compare(rest)
    if name not in PROGRAMS:
        print(f"error: unknown command {name!r}; commands: {', '.join(commands)}", file=sys.stderr)
        return 2
    return import_module(PROGRAMS[name]).main(rest)


if __name__ == "__main__":
    sys.exit(main())
