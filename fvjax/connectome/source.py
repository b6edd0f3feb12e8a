"""Locate (and, if needed, fetch) the flyvis connectome JSON ``fib25-fib19_v2.2.json``.

Search order (first hit wins):

1. ``$FVJAX_CONNECTOME``: path to the JSON file.
2. An installed ``flyvis`` distribution (found through its metadata; flyvis is never imported).
3. The user cache: ``$FVJAX_CACHE`` or ``$XDG_CACHE_HOME/fvjax`` or ``~/.cache/fvjax``.
4. Download: ``pip download --no-deps flyvis==1.2.0`` into a temporary folder, extract the JSON from
   the wheel, check its sha256 and store it in the cache (atomically).

Every file found is checked against the known sha256.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from importlib import metadata
from pathlib import Path

FLYVIS_VERSION = "1.2.0"
JSON_NAME = "fib25-fib19_v2.2.json"
JSON_PATH_IN_WHEEL = f"flyvis/connectome/{JSON_NAME}"
JSON_SHA256 = "bfbb0766251ff09e22723d0ebbf7b14793e70b3ae8ad0eea64eac9d28223351a"
ENV_PATH = "FVJAX_CONNECTOME"
ENV_CACHE = "FVJAX_CACHE"


class ConnectomeNotFound(RuntimeError):
    """Raised when the connectome JSON cannot be found nor fetched."""


def cache_dir() -> Path:
    """The fvjax user cache folder (not created)."""
    if os.environ.get(ENV_CACHE):
        return Path(os.environ[ENV_CACHE]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "fvjax"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _check(path: Path, origin: str) -> Path:
    digest = sha256_file(path)
    if digest != JSON_SHA256:
        raise ConnectomeNotFound(
            f"{origin}: {path} has sha256 {digest}, expected {JSON_SHA256} "
            f"(the {JSON_NAME} of flyvis {FLYVIS_VERSION}). Point {ENV_PATH} at the right file "
            f"or delete the bad copy."
        )
    return path


def _from_env() -> Path | None:
    value = os.environ.get(ENV_PATH)
    if not value:
        return None
    path = Path(value).expanduser()
    if not path.is_file():
        raise ConnectomeNotFound(f"${ENV_PATH}={value} does not name an existing file.")
    return _check(path, f"${ENV_PATH}")


def _from_installed_flyvis() -> Path | None:
    try:
        dist = metadata.distribution("flyvis")
    except metadata.PackageNotFoundError:
        return None
    path = Path(str(dist.locate_file(JSON_PATH_IN_WHEEL)))
    if not path.is_file():
        return None
    return _check(path, "installed flyvis")


def _from_cache() -> Path | None:
    path = cache_dir() / JSON_NAME
    return _check(path, "fvjax cache") if path.is_file() else None


def extract_from_wheel(wheel: Path, dest: Path) -> Path:
    """Extract the connectome JSON from a flyvis wheel into ``dest`` (atomic), checking sha256."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel) as zf:
        data = zf.read(JSON_PATH_IN_WHEEL)
    digest = hashlib.sha256(data).hexdigest()
    if digest != JSON_SHA256:
        raise ConnectomeNotFound(f"{wheel}: {JSON_PATH_IN_WHEEL} has sha256 {digest}, expected {JSON_SHA256}.")
    tmp = dest.with_name(dest.name + f".tmp{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, dest)
    return dest


def _download() -> Path:
    dest = cache_dir() / JSON_NAME
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet",
               f"flyvis=={FLYVIS_VERSION}", "-d", tmp]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        wheels = sorted(Path(tmp).glob("flyvis-*.whl"))
        if proc.returncode != 0 or not wheels:
            raise ConnectomeNotFound(
                f"Could not find {JSON_NAME} and could not download it ({' '.join(cmd[2:])} failed: "
                f"{proc.stderr.strip()[-500:]}).\nFix: on a machine with internet run "
                f"`pip download --no-deps flyvis=={FLYVIS_VERSION}`, unzip {JSON_PATH_IN_WHEEL} from the "
                f"wheel, then either set {ENV_PATH}=/path/to/{JSON_NAME} or copy it to {dest}."
            )
        return extract_from_wheel(wheels[0], dest)


def connectome_json_path(download: bool = True) -> Path:
    """Path of a verified copy of the flyvis connectome JSON (see module docstring for the order)."""
    for finder in (_from_env, _from_installed_flyvis, _from_cache):
        path = finder()
        if path is not None:
            return path
    if not download:
        raise ConnectomeNotFound(
            f"{JSON_NAME} not found (checked ${ENV_PATH}, an installed flyvis, {cache_dir()}). "
            f"Call with download=True or set {ENV_PATH}."
        )
    return _download()
