"""Figure of the ``scenes`` stimulus: sample frames of a few sequences, full frame before BoxEye next
to the hexal rendering, and each sequence's ego-motion speed and hexal mean luminance over time.

    python -m experiments.stimulus_figure                      # writes docs/figures/scenes.png
    python -m experiments.stimulus_figure --out /tmp/s.png --train-seeds 3,5 --test-seeds 6
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def _sequence(seed: int, split: str, n_frames: int):
    from fvjax.stimulus import scenes

    movie = scenes.draw_movie(np.random.default_rng(seed), n_frames, split)
    return movie, scenes.render_hexals(movie)


def _ego_speed(path) -> np.ndarray:
    """Screen px per frame of the background at the frame centre."""
    return np.linalg.norm(np.diff(path.centre, axis=0), axis=1) / path.scale[:-1]


def make_figure(seeds: list[tuple[int, str]], n_frames: int = 80, times: tuple[int, ...] | None = None):
    from matplotlib.figure import Figure

    from fvjax.connectome import hex_coords
    from fvjax.evaluate.plots import hex_positions
    from fvjax.stimulus import scenes

    if times is None:   # three frames over the first three quarters of the sequence
        times = tuple(int(round(t)) for t in np.linspace(0, 0.75 * (n_frames - 1), 3))
    x, y = hex_positions(*hex_coords(8))
    fig = Figure(figsize=(2.0 * (2 * len(times) + 1.6), 2.1 * len(seeds)))
    width = [1] * (2 * len(times)) + [1.6]
    axes = fig.subplots(len(seeds), len(width), gridspec_kw={"width_ratios": width}, squeeze=False)
    for row, (seed, split) in zip(axes, seeds):
        movie, hexals = _sequence(seed, split, n_frames)
        frames = scenes.render_frames(movie, times)
        for k, t in enumerate(times):
            ax_frame, ax_hex = row[2 * k], row[2 * k + 1]
            ax_frame.imshow(frames[k], cmap="gray", vmin=0, vmax=1)
            ax_hex.scatter(x, y, c=hexals[t], cmap="gray", vmin=0, vmax=1, s=40, marker="h", linewidths=0)
            ax_hex.set_aspect("equal")
            for ax in (ax_frame, ax_hex):
                ax.set_xticks([]), ax.set_yticks([])
            ax_frame.set_title(f"frame {t}", fontsize=8)
            ax_hex.set_title(f"hexals {t}", fontsize=8)
        sc = movie.scene
        label = sc.still if sc.kind == "still" else sc.kind
        row[0].set_ylabel(f"{split}: {label}\nm={movie.mean:.2f} c={movie.contrast:.2f}\n"
                          f"{len(movie.objects.radius)} objects", fontsize=8)
        ax = row[-1]
        ax.plot(_ego_speed(movie.path), lw=1, label="ego speed [px/frame]")
        ax.set_ylabel("ego speed [px/frame]", fontsize=7)
        ax.tick_params(labelsize=7)
        twin = ax.twinx()
        twin.plot(hexals.mean(1), lw=1, color="C1")
        twin.set_ylabel("mean luminance", fontsize=7, color="C1")
        twin.tick_params(labelsize=7)
        twin.set_ylim(0, 1)
    axes[-1, -1].set_xlabel("frame", fontsize=7)
    fig.tight_layout()
    return fig


def save_small_png(fig, path, dpi: int = 80, colors: int = 128) -> None:
    """PNG with an adaptive palette (the figure is mostly grey: a few hundred kB instead of a MB)."""
    import io

    from PIL import Image

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    buffer.seek(0)
    image = Image.open(buffer).convert("RGB").quantize(colors=colors, method=Image.Quantize.MEDIANCUT)
    image.save(path, optimize=True)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m experiments.stimulus_figure", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="docs/figures/scenes.png")
    p.add_argument("--train-seeds", default="15,11,14", help="generator seeds of training sequences, one row each")
    p.add_argument("--test-seeds", default="10,6", help="generator seeds of test sequences, one row each")
    p.add_argument("--frames", type=int, default=80)
    args = p.parse_args(argv)
    if args.frames < 2:
        p.error(f"--frames must be at least 2, got {args.frames}")
    rows = [(int(s), split) for split, seeds in (("train", args.train_seeds), ("test", args.test_seeds))
            for s in seeds.split(",") if s]
    fig = make_figure(rows, args.frames)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    save_small_png(fig, args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
