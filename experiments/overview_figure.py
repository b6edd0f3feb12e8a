"""README figure: the default ground truth (trained flyvis model 000) driven by the default stimulus,
one photoreceptor frame next to the central-column voltage of six cell types.

    python -m experiments.overview_figure                        # writes docs/figures/overview.png
    python -m experiments.overview_figure --set simulation.visual_input_type=natural --out /tmp/o.png
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m experiments.overview_figure", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="docs/figures/overview.png")
    p.add_argument("--n-frames", type=int, default=400, help="frames simulated and plotted (0.02 s each)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = p.parse_args(argv)
    import numpy as np

    from fvjax.config import ConfigError, load_config
    from fvjax.connectome import build_connectome
    from fvjax.evaluate.plots import activity_overview
    from fvjax.experiments.stimulus_stats import response
    from fvjax.generate import parse_sets
    from fvjax.networks.flyvis import resolve_ground_truth
    from fvjax.simulate import make_circuit
    from fvjax.stimulus import VideoError, train_test_frames

    from .stimulus_figure import save_small_png

    try:
        cfg = load_config(None, {**parse_sets(args.set), "simulation.n_frames": args.n_frames,
                                 "simulation.seed": args.seed})
        train, _ = train_test_frames(cfg.simulation)
    except (ConfigError, FileNotFoundError, VideoError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    conn = build_connectome(cfg.simulation.extent)
    gt = resolve_ground_truth(cfg, conn, progress=False)
    voltage = response(make_circuit(conn, gt), conn, train, args.seed, cfg.simulation.noise_model_level)
    fig = activity_overview(conn, np.asarray(train), voltage, dt=cfg.simulation.delta_t)
    fig.suptitle(f"{cfg.simulation.ground_truth}, {cfg.simulation.visual_input_type} stimulus, seed {args.seed}",
                 fontsize=9)
    fig.tight_layout()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    save_small_png(fig, args.out, dpi=100, colors=192)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
