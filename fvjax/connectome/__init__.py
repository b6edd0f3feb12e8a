"""The flyvis connectome: locate the JSON, build nodes/edges/tables at any extent."""

from .build import Connectome, build_connectome, build_from_spec, fill_offsets, load_spec, to_jraph
from .hexlattice import flip_permutation, hex_coords, n_hexals, rotation_permutation
from .source import ConnectomeNotFound, cache_dir, connectome_json_path, extract_from_wheel

__all__ = [
    "Connectome", "ConnectomeNotFound", "build_connectome", "build_from_spec", "cache_dir",
    "connectome_json_path", "extract_from_wheel", "fill_offsets", "flip_permutation", "hex_coords",
    "load_spec", "n_hexals", "rotation_permutation", "to_jraph",
]
