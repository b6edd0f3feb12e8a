"""The on-disk dataset format: write it (atomically), read it back as memory maps, verify it.

What goes into a dataset (which network, ground truth, stimulus) is the business of the network
kinds in :mod:`fvjax.networks`; this module knows only the files. Layout of a dataset folder::

    manifest.json         config, seed, versions, shapes, dtypes, sha256 of every array, statistics
    config.yaml           the full configuration used
    ground_truth.npz      the network's ground truth (written and read by its fvjax.networks kind)
    train/voltage.npy     (T, N) float32   state v(t) before the update of frame t
    train/target.npy      (T, N) float32   noise-free dv/dt at v(t)
    train/stimulus.npy    (T, n_inputs) float32   input-node values at frame t
    train/node_stats.npz  per-node voltage mean and std over the split
    test/...              same, for the held-out stimuli

Arrays are appended chunk by chunk (plain file writes, so memory stays flat) into ``<out>.partial-<pid>/``; the folder is renamed to ``<out>``
only after the manifest is written, so a killed run never leaves a folder that looks complete.
Checksums are sha256 of each array's raw C-order bytes (not of the .npy header).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Callable

import numpy as np

from . import __version__
from .config import Config, dump_config, to_dict
from .connectome.source import sha256_file

SPLITS = ("train", "test")
FIELDS = ("voltage", "target", "stimulus")


class _Writer:
    """Write one split's .npy files sequentially (header, then chunks in order) and hash them.

    Plain appends rather than write-mode memmaps: written pages stay in the OS cache instead of
    this process's resident memory, so memory stays flat at any dataset size."""

    def __init__(self, folder: Path, n_frames: int, n_nodes: int, n_inputs: int):
        folder.mkdir(parents=True)
        self.folder = folder
        shapes = {"voltage": (n_frames, n_nodes), "target": (n_frames, n_nodes), "stimulus": (n_frames, n_inputs)}
        self.shapes = shapes
        self.files = {}
        for key, shape in shapes.items():
            fh = open(folder / f"{key}.npy", "wb")
            np.lib.format.write_array_header_1_0(fh, {"descr": "<f4", "fortran_order": False, "shape": shape})
            self.files[key] = fh
        self.hashes = {k: hashlib.sha256() for k in shapes}
        self.written = 0
        self.sum = np.zeros(n_nodes)
        self.sumsq = np.zeros(n_nodes)

    def write(self, start: int, **chunks):
        if start != self.written:
            raise ValueError(f"chunks must be written in order: expected frame {self.written}, got {start}")
        for key, chunk in chunks.items():
            data = np.ascontiguousarray(chunk, "<f4").tobytes()
            self.files[key].write(data)
            self.hashes[key].update(data)
        self.written += len(chunks["voltage"])
        volts = chunks["voltage"].astype(np.float64)
        self.sum += volts.sum(0)
        self.sumsq += (volts**2).sum(0)

    def close(self) -> dict:
        for fh in self.files.values():
            fh.close()
        n = self.written
        if n != self.shapes["voltage"][0]:
            raise ValueError(f"{self.folder}: wrote {n} of {self.shapes['voltage'][0]} frames")
        mean = self.sum / n
        std = np.sqrt(np.maximum(self.sumsq / n - mean**2, 0))
        info = {k: {"shape": list(shape), "dtype": "float32", "sha256": self.hashes[k].hexdigest()}
                for k, shape in self.shapes.items()}
        finite = bool(np.isfinite(mean).all())
        total_std = float(np.sqrt(max(self.sumsq.sum() / (n * len(mean)) - mean.mean() ** 2, 0)))
        stats = {"finite": finite, "voltage_std": total_std,
                 "median_temporal_std": float(np.median(std)),
                 "voltage_mean_range": [float(mean.min()), float(mean.max())]}
        np.savez(self.folder / "node_stats.npz", mean=mean.astype(np.float32), std=std.astype(np.float32))
        return {"arrays": info, "stats": stats}


def write_dataset(cfg: Config, out: str | Path, overwrite: bool, head: dict, n_frames: dict,
                  run_split: Callable, save_ground_truth: Callable) -> Path:
    """Write a dataset folder: ``run_split(split, writer)`` fills each split of ``n_frames[split]``
    frames through a :class:`_Writer`, ``save_ground_truth(folder)`` writes ground_truth.npz; ``head``
    (n_nodes, n_edges, n_inputs, input_node_index, ...) goes into the manifest; completion is atomic."""
    out = Path(out)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} already exists; pass overwrite=True (--overwrite) or choose another folder")
    if out.exists() and not is_dataset_folder(out):
        raise FileExistsError(f"{out} exists and is not an fvjax dataset (no manifest.json of this format); "
                              f"fvjax only ever replaces its own datasets: choose another folder")
    started = time.time()
    remove_stale_partials(out)
    tmp = out.with_name(f"{out.name}.partial-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    manifest = {"format": "fvjax-dataset/1", "fvjax": __version__, "jax": version("jax"),
                "numpy": np.__version__, "seed": cfg.simulation.seed, "network": cfg.simulation.network,
                "config": to_dict(cfg), **head, "splits": {}}
    for split in SPLITS:
        writer = _Writer(tmp / split, n_frames[split], head["n_nodes"], head["n_inputs"])
        run_split(split, writer)
        manifest["splits"][split] = writer.close()
    save_ground_truth(tmp)
    manifest["ground_truth_sha256"] = sha256_file(tmp / "ground_truth.npz")
    dump_config(cfg, tmp / "config.yaml")
    manifest["wall_time_s"] = round(time.time() - started, 2)
    (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1))
    if out.exists():   # swap: the old dataset moves aside first, so a crash leaves one of the two
        old = out.with_name(f"{out.name}.old-{os.getpid()}")
        os.replace(out, old)
        os.replace(tmp, out)
        shutil.rmtree(old)
    else:
        os.replace(tmp, out)
    return out


DATASET_FORMATS = ("fvjax-dataset/1",)


def is_dataset_folder(path: Path) -> bool:
    """True when ``path`` holds a manifest.json written by fvjax (the only folders fvjax deletes)."""
    try:
        return json.loads((Path(path) / "manifest.json").read_text()).get("format") in DATASET_FORMATS
    except (OSError, ValueError, AttributeError):
        return False


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_partials(out: Path) -> list[Path]:
    """Delete ``<out>.partial-<pid>`` / ``<out>.old-<pid>`` folders left by killed processes (only
    when that process is gone); returns what was removed."""
    removed = []
    olds = [f for f in sorted(out.parent.glob(f"{out.name}.old-*")) if is_dataset_folder(f)]
    if not out.exists() and olds:   # a crash between the two renames of a swap: put the old one back
        os.replace(olds[-1], out)
    for folder in sorted(out.parent.glob(f"{out.name}.partial-*")) + sorted(out.parent.glob(f"{out.name}.old-*")):
        pid = folder.name.rsplit("-", 1)[-1]
        if pid.isdigit() and int(pid) != os.getpid() and not _pid_alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def read_rows(arr: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``arr[rows]`` for a memory-mapped .npy array, read with ``os.pread`` instead of through the
    mapping: the pages go to the OS cache, not into this process's resident memory, so a long run
    touching every frame of a 7 GB dataset keeps a small RSS. In-memory arrays are indexed."""
    rows = np.asarray(rows).reshape(-1)
    if not isinstance(arr, np.memmap) or not getattr(arr, "filename", None) or not arr.flags.c_contiguous:
        return np.asarray(arr[rows])
    out = np.empty((len(rows),) + arr.shape[1:], arr.dtype)
    row_bytes = arr.dtype.itemsize * int(np.prod(arr.shape[1:]))
    if row_bytes == 0:                      # e.g. the (T, 0) stimulus of an undriven network
        return out
    flat = out.reshape(len(rows), -1).view(np.uint8)
    fd = os.open(arr.filename, os.O_RDONLY)
    try:
        for i, r in enumerate(rows):
            if not 0 <= r < arr.shape[0]:
                raise IndexError(f"row {r} out of range for {arr.filename} with {arr.shape[0]} rows")
            got = os.preadv(fd, [flat[i]], arr.offset + int(r) * row_bytes)
            if got != row_bytes:
                raise OSError(f"{arr.filename}: short read at row {r} (file truncated?)")
    finally:
        os.close(fd)
    return out


@dataclass(frozen=True)
class Split:
    voltage: np.ndarray   # (T, N) memmap
    target: np.ndarray    # (T, N) memmap
    stimulus: np.ndarray  # (T, n_inputs) memmap
    node_mean: np.ndarray  # (N,) voltage mean over the split
    node_std: np.ndarray   # (N,) voltage std over the split

    def __len__(self) -> int:
        return len(self.voltage)


@dataclass(frozen=True)
class Dataset:
    path: Path
    manifest: dict
    train: Split
    test: Split

    @property
    def input_index(self) -> np.ndarray:
        return np.asarray(self.manifest["input_node_index"], np.int32)

    @property
    def xnorm(self) -> float:
        """1.5 x the std of all training voltages (the reference's normalisation scale)."""
        return 1.5 * float(self.manifest["splits"]["train"]["stats"]["voltage_std"])

    @property
    def network(self) -> str:
        """The name of the network kind that generated the data (:mod:`fvjax.networks`)."""
        return self.manifest.get("network", "flyvis")


def ever_active(voltage, chunk: int = 4096) -> np.ndarray:
    """(N,) whether each neuron's voltage rises above 0 on some frame of ``voltage`` (T, N), read in
    chunks of frames (a memory-mapped split is never loaded whole)."""
    active = np.zeros(voltage.shape[1], bool)
    for start in range(0, len(voltage), chunk):
        active |= np.asarray(voltage[start:start + chunk]).max(axis=0) > 0
    return active


def mean_rectified(voltage, chunk: int = 4096) -> np.ndarray:
    """(N,) float64 mean of ReLU(v) over the frames of ``voltage`` (T, N), read in chunks of frames."""
    total = np.zeros(voltage.shape[1])
    for start in range(0, len(voltage), chunk):
        total += np.maximum(np.asarray(voltage[start:start + chunk], np.float64), 0.0).sum(axis=0)
    return total / max(len(voltage), 1)


class DatasetError(ValueError):
    """A dataset folder is damaged, incomplete or not what its manifest says."""


def load_dataset(path: str | Path) -> Dataset:
    """Open a finished dataset folder (memory-mapped, read-only)."""
    path = Path(path)
    manifest_file = path / "manifest.json"
    if not manifest_file.is_file():
        partial = sorted(path.parent.glob(f"{path.name}.partial-*"))
        hint = f" (an unfinished run left {partial[0]}; delete it and generate again)" if partial else ""
        raise FileNotFoundError(f"{path}: no manifest.json, not a finished fvjax dataset{hint}")
    manifest = json.loads(manifest_file.read_text())
    splits = {}
    for split in SPLITS:
        arrays = {}
        for name in FIELDS:
            try:
                arr = np.load(path / split / f"{name}.npy", mmap_mode="r")
            except (OSError, ValueError) as err:
                raise DatasetError(f"{path}/{split}/{name}.npy cannot be read ({err}); the dataset is damaged: "
                                 f"delete {path} and generate it again") from None
            expected = manifest["splits"][split]["arrays"][name]["shape"]
            if list(arr.shape) != expected:
                raise DatasetError(f"{path}/{split}/{name}.npy has shape {arr.shape}, manifest says {expected}; "
                                   f"delete {path} and generate it again")
            arrays[name] = arr
        with np.load(path / split / "node_stats.npz") as stats:
            arrays["node_mean"], arrays["node_std"] = stats["mean"], stats["std"]
        splits[split] = Split(**arrays)
    want = manifest.get("ground_truth_sha256")   # datasets written before 2026-12-01 carry none
    if want is not None and sha256_file(path / "ground_truth.npz") != want:
        raise DatasetError(f"{path}/ground_truth.npz differs from the one this dataset was simulated with "
                         f"(checksum in manifest.json); delete {path} and generate it again")
    return Dataset(path, manifest, splits["train"], splits["test"])


def verify_dataset(path: str | Path, chunk_frames: int = 4096) -> None:
    """Recompute every checksum; raises ValueError naming the first array that differs."""
    data = load_dataset(path)
    for split in SPLITS:
        for name in FIELDS:
            arr = getattr(getattr(data, split), name)
            h = hashlib.sha256()
            for start in range(0, len(arr), chunk_frames):
                h.update(np.ascontiguousarray(arr[start:start + chunk_frames]).tobytes())
            if h.hexdigest() != data.manifest["splits"][split]["arrays"][name]["sha256"]:
                raise DatasetError(f"{path}/{split}/{name}.npy: checksum mismatch (file changed or truncated); "
                                   f"delete {path} and generate it again")


def spread_frames(n_frames: int, count: int) -> np.ndarray:
    """``count`` frame indices evenly spread over ``n_frames`` (all of them if fewer), sorted, unique."""
    return np.unique(np.linspace(0, n_frames - 1, min(count, n_frames)).astype(np.int64))


def voltage_sample(split: Split, count: int) -> np.ndarray:
    """(F, N) float64: the voltages of ``count`` frames spread over ``split`` (all of them if fewer)."""
    return np.asarray(split.voltage[spread_frames(len(split), count)], np.float64)
