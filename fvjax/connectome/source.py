"""Locate (and, if needed, fetch) the flyvis connectome JSON ``fib25-fib19_v2.2.json``.

Search order (first hit wins):

1. ``$FVJAX_CONNECTOME``: path to the JSON file.
2. An installed ``flyvis`` distribution (found through its metadata; flyvis is never imported).
3. The user cache: ``$FVJAX_CACHE`` or ``$XDG_CACHE_HOME/fvjax`` or ``~/.cache/fvjax``.
4. The flyvis 1.2.0 wheel: from the cache if there, else fetched with pooch (its sha256 pinned) from
   the URL the package index lists (``$PIP_INDEX_URL`` or pip's default index) into the cache; the
   JSON is extracted from it, checked, and stored in the cache (atomically).

Every file found is checked against the known sha256.
"""

from __future__ import annotations

import hashlib
import json
import os
import urllib.parse
import urllib.request
import zipfile
from importlib import metadata
from pathlib import Path

FLYVIS_VERSION = "1.2.0"
JSON_NAME = "fib25-fib19_v2.2.json"
JSON_PATH_IN_WHEEL = f"flyvis/connectome/{JSON_NAME}"
JSON_SHA256 = "bfbb0766251ff09e22723d0ebbf7b14793e70b3ae8ad0eea64eac9d28223351a"
WHEEL_NAME = f"flyvis-{FLYVIS_VERSION}-py3-none-any.whl"
WHEEL_SHA256 = "af365b16e870111fcb06782a063f6551b05cce9a105c6eaab9c0bda3b017031f"   # as the index lists it
ENV_PATH = "FVJAX_CONNECTOME"
ENV_CACHE = "FVJAX_CACHE"
ENV_INDEX = "PIP_INDEX_URL"


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
    try:
        with zipfile.ZipFile(wheel) as zf:
            data = zf.read(JSON_PATH_IN_WHEEL)
    except (zipfile.BadZipFile, KeyError) as err:
        raise ConnectomeNotFound(f"{wheel}: not a flyvis wheel holding {JSON_PATH_IN_WHEEL} ({err}); "
                                 f"delete it and {_fix(wheel.parent)}") from None
    digest = hashlib.sha256(data).hexdigest()
    if digest != JSON_SHA256:
        raise ConnectomeNotFound(f"{wheel}: {JSON_PATH_IN_WHEEL} has sha256 {digest}, expected {JSON_SHA256}; "
                                 f"delete the wheel and {_fix(wheel.parent)}")
    tmp = dest.with_name(dest.name + f".tmp{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, dest)
    return dest


def _default_index() -> str:
    """The index pip uses when none is configured (read from pip, so that no host is hard-coded here)."""
    try:
        from pip._internal.models.index import PyPI
    except ImportError:
        raise ConnectomeNotFound(f"cannot tell which package index to use (pip is not installed); set "
                                 f"{ENV_INDEX}=<simple index URL> or {ENV_PATH}=/path/to/{JSON_NAME}") from None
    return PyPI.simple_url


def wheel_url() -> str:
    """URL of the pinned flyvis wheel, read from the package index's JSON page (PEP 691):
    ``$PIP_INDEX_URL`` (a mirror) or pip's default index. The file it names must carry the pinned sha256."""
    index = (os.environ.get(ENV_INDEX) or _default_index()).rstrip("/")
    page = f"{index}/flyvis/"
    request = urllib.request.Request(page, headers={"Accept": "application/vnd.pypi.simple.v1+json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        body = response.read()
    try:
        files = json.loads(body).get("files", [])
    except (ValueError, AttributeError):
        raise ConnectomeNotFound(f"{page} did not answer with the JSON simple API (PEP 691); "
                                 f"{_fix(cache_dir())}") from None
    for entry in files:
        if entry.get("filename") == WHEEL_NAME:
            listed = entry.get("hashes", {}).get("sha256", WHEEL_SHA256)
            if listed != WHEEL_SHA256:
                raise ConnectomeNotFound(f"{page} lists {WHEEL_NAME} with sha256 {listed}, expected {WHEEL_SHA256}: "
                                         f"this index does not serve the pinned wheel; {_fix(cache_dir())}")
            return urllib.parse.urljoin(page, entry["url"])
    raise ConnectomeNotFound(f"{page} does not list {WHEEL_NAME}; {_fix(cache_dir())}")


def _downloader():
    """pooch's HTTP downloader with a tqdm progress bar (tests replace this to stay offline)."""
    import pooch

    return pooch.HTTPDownloader(progressbar=True)


def _fix(folder: Path) -> str:
    return (f"fix: on a machine with internet run `pip download --no-deps flyvis=={FLYVIS_VERSION}` and copy "
            f"{WHEEL_NAME} into {folder}, or unzip {JSON_PATH_IN_WHEEL} from it and set "
            f"{ENV_PATH}=/path/to/{JSON_NAME}")


def fetch_wheel() -> Path:
    """The pinned flyvis wheel in the cache: reused when present with the pinned sha256, else fetched
    with pooch, which checks the sha256 before the file takes its name (a bad download leaves nothing)."""
    import pooch
    import requests

    folder = cache_dir()
    cached = folder / WHEEL_NAME
    if cached.is_file() and pooch.file_hash(str(cached)) == WHEEL_SHA256:
        return cached
    try:
        path = _retrieve(pooch, wheel_url(), folder)
    except (OSError, requests.RequestException) as err:   # offline, index unreachable
        raise ConnectomeNotFound(
            f"{JSON_NAME} not found (checked ${ENV_PATH}, an installed flyvis, {folder}) and {WHEEL_NAME} "
            f"could not be downloaded ({type(err).__name__}: {err}); {_fix(folder)}") from None
    return Path(path)


def _retrieve(pooch, url: str, folder: Path) -> str:
    try:
        return pooch.retrieve(url, known_hash=f"sha256:{WHEEL_SHA256}", fname=WHEEL_NAME, path=folder,
                              downloader=_downloader())
    except ValueError as err:       # pooch's hash mismatch
        raise ConnectomeNotFound(f"{url}: the downloaded {WHEEL_NAME} does not have the pinned sha256 "
                                 f"{WHEEL_SHA256} ({err}); {_fix(folder)}") from None


def _download() -> Path:
    return extract_from_wheel(fetch_wheel(), cache_dir() / JSON_NAME)


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
