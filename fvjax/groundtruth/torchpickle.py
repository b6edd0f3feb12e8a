"""Read PyTorch ``torch.save`` zip checkpoints into numpy arrays, without torch.

Only the classes a plain state dict needs are accepted (tensors, parameters, storages,
OrderedDict); anything else raises, so loading never runs arbitrary code.
"""

from __future__ import annotations

import collections
import pickle
import zipfile
from pathlib import Path

import numpy as np

_STORAGE_DTYPES = {
    "DoubleStorage": np.float64, "FloatStorage": np.float32, "HalfStorage": np.float16,
    "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16,
    "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_,
}


class _StorageType:
    def __init__(self, name: str):
        self.dtype = np.dtype(_STORAGE_DTYPES[name])


def _rebuild_tensor(storage, offset, size, stride, *_unused):
    itemsize = storage.dtype.itemsize
    if not size:
        return storage[offset].copy()
    return np.lib.stride_tricks.as_strided(
        storage[offset:], shape=tuple(size), strides=tuple(s * itemsize for s in stride)
    ).copy()


def _rebuild_parameter(data, *_unused):
    return data


class _Unpickler(pickle.Unpickler):
    def __init__(self, fh, zf: zipfile.ZipFile, prefix: str, source: str):
        super().__init__(fh)
        self._zf, self._prefix, self._source = zf, prefix, source
        self._storages: dict[str, np.ndarray] = {}

    def find_class(self, module, name):
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _rebuild_tensor
        if module == "torch._utils" and name == "_rebuild_parameter":
            return _rebuild_parameter
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        raise pickle.UnpicklingError(
            f"{self._source}: refusing to load {module}.{name}; only plain tensors/state dicts are "
            f"supported. Re-save the checkpoint's state dict, or convert it to .npz."
        )

    def persistent_load(self, pid):
        kind, storage_type, key, _location, _numel = pid
        if kind != "storage":
            raise pickle.UnpicklingError(f"{self._source}: unsupported persistent id {kind!r}")
        if key not in self._storages:
            raw = self._zf.read(f"{self._prefix}/data/{key}")
            self._storages[key] = np.frombuffer(raw, dtype=storage_type.dtype.newbyteorder("<"))
        return self._storages[key]


def load_torch_zip(path: str | Path) -> dict:
    """Load a ``torch.save`` (zip format) file into nested dicts of numpy arrays."""
    path = Path(path)
    if not zipfile.is_zipfile(path):
        raise ValueError(
            f"{path} is not a torch zip checkpoint (legacy non-zip torch files are not supported; "
            f"re-save it with torch>=1.6 or convert it to .npz)"
        )
    with zipfile.ZipFile(path) as zf:
        pkl = [n for n in zf.namelist() if n.endswith("/data.pkl") or n == "data.pkl"]
        if not pkl:
            raise ValueError(f"{path}: no data.pkl inside; not a torch checkpoint")
        prefix = pkl[0].rsplit("/", 1)[0] if "/" in pkl[0] else ""
        byteorder = f"{prefix}/byteorder"
        if byteorder in zf.namelist() and zf.read(byteorder).strip() != b"little":
            raise ValueError(f"{path}: big-endian checkpoints are not supported")
        with zf.open(pkl[0]) as fh:
            return _Unpickler(fh, zf, prefix, str(path)).load()
