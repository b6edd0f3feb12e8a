"""Projected wall time of one paper-preset epoch (model 000, 64,000 frames, aug 20, batch 2: 128,000
iterations), from a few hundred real iterations.

    python benchmarks/epoch.py [--frames 2000] [--iters 400] [--recipe fvjax|reference] [--set KEY=VALUE ...]

Runs the training loop itself (``fvjax.train.fit``: frames read from the dataset files, the scanned
step, loss logging, the finiteness check) on a small dataset generated with the paper preset's
simulation settings; the step's cost does not depend on the dataset's length. Times:

- ``--iters`` iterations after a warm-up fit that compiles the step (same process, so the compiled
  program is reused) -> the epoch's iterations;
- one in-training recovery check (``quick_metrics``) -> the checks of an epoch, amortised as the loop
  schedules them (10 grid points, at most ``training.eval_budget`` of the training time).

The last line is ``paper_epoch_minutes=<training + checks>``; the data generation and the final
evaluation are printed apart (a run reuses its dataset, and evaluates once per run, not per epoch).
``--recipe`` picks what is trained, as in ``experiments.vrest`` (default ``fvjax``, its default; before
2026-12-03 this benchmark always timed the config defaults, i.e. ``reference``). ``--set`` tries a training option (e.g. ``--set training.steps_per_call=40``) against the same
projection. Compare numbers measured in one sitting: this shared 2-core machine's speed varies by
2x between days (benchmarks/README.md).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

N_FRAMES_PAPER = 64000


def paper_config(frames: int, iters: int, sets: list[str], recipe: str = "fvjax"):
    from fvjax.config import load_config
    from fvjax.experiments.vrest import PRESETS, RECIPES
    from fvjax.generate import parse_sets

    overrides = {**PRESETS["paper"], **RECIPES[recipe], "simulation.n_frames": frames, "simulation.n_test_frames": 200,
                 "training.n_iter": iters, "training.eval_every": iters}
    overrides.update(parse_sets(sets))
    return load_config(None, overrides)


def timed_fit(cfg, data, graph, run_dir: Path) -> tuple[float, float]:
    """``fit`` (no checks) in a fresh folder: (seconds in all, seconds per iteration between the first and
    the last logged block, i.e. without the set-up and the final checkpoint that an epoch pays once)."""
    import csv

    from fvjax.train import fit

    tick = time.perf_counter()
    fit(cfg, data, graph, run_dir, resume=False, progress=False)
    total = time.perf_counter() - tick
    with open(run_dir / "loss.csv", newline="") as f:
        rows = [(int(r["iteration"]), float(r["wall_s"])) for r in csv.DictReader(f)]
    (it0, t0), (it1, t1) = rows[0], rows[-1]
    return total, (t1 - t0) / max(it1 - it0, 1)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--frames", type=int, default=2000, help="frames of the small dataset (default 2000)")
    p.add_argument("--iters", type=int, default=400, help="timed iterations (default 400)")
    p.add_argument("--recipe", choices=("fvjax", "reference"), default="fvjax",
                   help="what is trained, as in experiments.vrest (default fvjax)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a config override")
    args = p.parse_args(argv)

    import jax

    from fvjax import model as M
    from fvjax.dataset import load_dataset
    from fvjax.evaluate.report import quick_metrics
    from fvjax.networks import generate_dataset, resolve
    from fvjax.train import model_spec, n_iterations

    cfg = paper_config(args.frames, args.iters, args.set, args.recipe)
    tr = cfg.training
    paper_iters = n_iterations(cfg.replace(**{"training.n_iter": 0}), N_FRAMES_PAPER)
    with tempfile.TemporaryDirectory(prefix="fvjax-epoch-") as tmp:
        tmp = Path(tmp)
        tick = time.perf_counter()
        data = load_dataset(generate_dataset(cfg, tmp / "data", progress=False))
        gen_s = time.perf_counter() - tick
        nodes, gt, graph = resolve(cfg).load(data, cfg)
        warm = cfg.replace(**{"training.n_iter": 2 * tr.steps_per_call})
        compile_s, _ = timed_fit(warm, data, graph, tmp / "warm")
        fit_s, s_per_iter = timed_fit(cfg, data, graph, tmp / "timed")
        spec = model_spec(cfg, data.train.voltage.shape[1], int(graph.src.shape[0]))
        params = M.init(jax.random.PRNGKey(0), spec)
        quick_metrics(params, spec, graph, data, gt)                     # compile the check once
        tick = time.perf_counter()
        quick_metrics(params, spec, graph, data, gt)
        check_s = time.perf_counter() - tick

    ms_per_iter = 1e3 * s_per_iter
    train_min = paper_iters * ms_per_iter / 6e4
    checks_min = min(10 * check_s / 60, tr.eval_budget * train_min)
    print(f"jax {jax.__version__} on {jax.devices()[0].platform}; paper preset, recipe {args.recipe}, batch {tr.batch_size}, "
          f"steps_per_call {tr.steps_per_call}{'; ' + ', '.join(args.set) if args.set else ''}")
    print(f"{'':<34}{'measured':>14}{'paper epoch':>14}")
    print(f"{'training iterations':<34}{ms_per_iter:>11.1f} ms{train_min:>10.1f} min   ({paper_iters:,} iterations)")
    print(f"{'recovery checks (10, budget ' + str(tr.eval_budget) + ')':<34}{check_s:>12.1f} s{checks_min:>10.1f} min")
    print(f"{'data generation (not per epoch)':<34}{gen_s:>12.1f} s   ({args.frames + cfg.simulation.n_test_frames:,} "
          f"frames with compilation; benchmarks/simulate.py measures the simulator)")
    print(f"{'warm-up fit (compilation)':<34}{compile_s:>12.1f} s")
    print(f"{'timed fit, set-up and save incl.':<34}{fit_s:>12.1f} s   ({args.iters} iterations)")
    print(f"paper_epoch_minutes={train_min + checks_min:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
