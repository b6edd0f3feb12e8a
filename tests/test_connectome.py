import json
import zipfile

import numpy as np
import pytest

from fvjax.connectome import (ConnectomeNotFound, build_from_spec, extract_from_wheel, fill_offsets,
                              flip_permutation, hex_coords, n_hexals, rotation_permutation)
from fvjax.connectome import source


def test_counts(conn):
    assert conn.n_nodes == 13741
    assert conn.n_types == 65
    assert conn.n_inputs == 1736
    assert conn.n_edges == 434112
    assert conn.n_edge_types == 604
    assert conn.n_groups == 2355
    assert int((conn.edge_sign > 0).sum()) == 282123


@pytest.mark.parametrize("key", ["node_type", "node_u", "node_v", "edge_src", "edge_dst", "edge_type",
                                 "edge_group", "input_node_index", "hex_u", "hex_v", "group_du",
                                 "group_dv", "group_edge_type", "edge_type_src_type",
                                 "edge_type_dst_type", "edge_type_sign"])
def test_arrays_equal_flyvis(conn, model000, key):
    ours, ref = getattr(conn, key), model000[key]
    assert ours.shape == ref.shape
    np.testing.assert_array_equal(ours, ref)


def test_names_roles_and_counts_match(conn, model000):
    assert list(conn.type_names) == list(model000["type_names"])
    assert list(conn.type_role) == list(model000["type_role"])
    np.testing.assert_allclose(conn.group_n_syn, model000["group_n_syn"], rtol=1e-6)


def test_lawf_stride_and_offsets(conn):
    lawf1 = conn.type_index("Lawf1")
    assert int((conn.node_type == lawf1).sum()) == 35
    assert int(np.flatnonzero(conn.node_type == lawf1)[0]) == 2821
    assert int(np.flatnonzero(conn.node_type == conn.type_index("Am"))[0]) == 2891


def test_hex_lattice():
    u, v = hex_coords(8)
    assert len(u) == n_hexals(8) == 217
    assert n_hexals(15) == 721
    assert (np.abs(u + v) <= 8).all()
    # six 60-degree rotations are the identity; a flip applied twice is the identity
    frame = np.arange(217)
    rot = rotation_permutation(8, 1)
    out = frame
    for _ in range(6):
        out = out[rot]
    np.testing.assert_array_equal(out, frame)
    assert not np.array_equal(frame[rot], frame)
    for axis in (1, 2, 3):
        f = flip_permutation(8, axis)
        np.testing.assert_array_equal(frame[f][f], frame)
    with pytest.raises(ValueError, match="flip axis"):
        flip_permutation(8, 5)


def test_fill_offsets_halfopen_rule():
    # square (0,0)-(2,2): half-open ray crossing keeps only part of the boundary
    filled = fill_offsets([(0, 0), (2, 0), (0, 2), (2, 2)])
    assert (1, 1) in filled
    assert len(filled) < 5  # not every boundary point
    assert fill_offsets([(0, 0), (1, 0)]) == []


def _mini_spec():
    node = lambda name, pattern=("stride", [1, 1]): {"name": name, "pattern": list(pattern)}  # noqa: E731
    return {
        "nodes": [node("R1"), node("A"), node("B", ("stride", [2, 2]))],
        "edges": [
            {"src": "R1", "tar": "A", "alpha": 1, "offsets": [[[0, 0], 2.0]]},
            {"src": "A", "tar": "B", "alpha": -1, "offsets": [[[0, 0], 1.5], [[1, 0], 0.5]]},
            {"src": "B", "tar": "B", "alpha": 1, "offsets": [[[1, 0], 3.0]]},  # off-stride: no edge
        ],
        "input_units": ["R1"], "output_units": ["B"],
    }


def test_build_small_spec_by_hand():
    c = build_from_spec(_mini_spec(), extent=1)
    assert c.n_nodes == 7 + 7 + 1  # B (stride 2) keeps only (0,0)
    assert c.n_edge_types == 2  # B->B produces nothing
    # R1->A: 7 one-to-one edges; A->B: (0,0) from A(0,0), (1,0) from A(-1,0)
    assert c.n_edges == 9
    b0 = 14
    ab = c.edge_type == 1
    assert sorted(c.edge_src[ab].tolist()) == [7 + 0, 7 + 3]  # A(-1,0) is hexal 0, A(0,0) hexal 3
    assert set(c.edge_dst[ab].tolist()) == {b0}
    np.testing.assert_array_equal(c.edge_type_sign, [1.0, -1.0])
    assert c.type_role == ("input", "intermediate", "output")


def test_bad_pattern_is_rejected():
    spec = _mini_spec()
    spec["nodes"][1]["pattern"] = ["spiral", 3]
    with pytest.raises(ValueError, match="unknown pattern"):
        build_from_spec(spec, 1)


def test_env_override_bad_path(monkeypatch, tmp_path):
    monkeypatch.setenv(source.ENV_PATH, str(tmp_path / "missing.json"))
    with pytest.raises(ConnectomeNotFound, match="FVJAX_CONNECTOME"):
        source.connectome_json_path()


def test_env_override_wrong_file(monkeypatch, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"nodes": []}))
    monkeypatch.setenv(source.ENV_PATH, str(bad))
    with pytest.raises(ConnectomeNotFound, match="sha256"):
        source.connectome_json_path()


def test_offline_without_copy_explains_fix(monkeypatch, tmp_path):
    monkeypatch.delenv(source.ENV_PATH, raising=False)
    monkeypatch.setenv(source.ENV_CACHE, str(tmp_path / "cache"))
    monkeypatch.setattr(source, "_from_installed_flyvis", lambda: None)
    with pytest.raises(ConnectomeNotFound, match="download=True"):
        source.connectome_json_path(download=False)
    # an unreachable index (nothing listens on port 9) names the env var for a manual copy
    monkeypatch.setenv(source.ENV_INDEX, "http://127.0.0.1:9/simple")
    with pytest.raises(ConnectomeNotFound, match="could not be downloaded.*FVJAX_CONNECTOME=") as err:
        source.connectome_json_path(download=True)
    assert str(tmp_path / "cache") in str(err.value)
    assert not (tmp_path / "cache" / source.JSON_NAME).exists()


def test_extract_from_wheel_checks_hash(tmp_path):
    wheel = tmp_path / "flyvis-0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr(source.JSON_PATH_IN_WHEEL, "{}")
    with pytest.raises(ConnectomeNotFound, match="sha256"):
        extract_from_wheel(wheel, tmp_path / "out.json")
    assert not (tmp_path / "out.json").exists()


def test_cached_copy_is_found(conn, monkeypatch, tmp_path):
    real = source.connectome_json_path()
    monkeypatch.delenv(source.ENV_PATH, raising=False)
    monkeypatch.setattr(source, "_from_installed_flyvis", lambda: None)
    monkeypatch.setenv(source.ENV_CACHE, str(tmp_path))
    (tmp_path / source.JSON_NAME).write_bytes(real.read_bytes())
    assert source.connectome_json_path(download=False) == tmp_path / source.JSON_NAME


def test_to_jraph(conn):
    jraph = pytest.importorskip("jraph")
    from fvjax.connectome import to_jraph

    g = to_jraph(conn)
    assert isinstance(g, jraph.GraphsTuple)
    assert int(g.n_edge[0]) == 434112 and g.senders.shape == (434112,)
    np.testing.assert_array_equal(np.asarray(g.receivers), conn.edge_dst)


def test_the_shared_connectome_is_read_only(conn):
    """build_connectome memoises one Connectome per extent for every caller: writing into it fails."""
    import pytest

    from fvjax.connectome import build_connectome

    assert build_connectome(8) is build_connectome(8)
    with pytest.raises(ValueError, match="read-only"):
        build_connectome(8).edge_src[0] = 5
