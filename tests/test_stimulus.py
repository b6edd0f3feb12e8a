import numpy as np
import pytest
from PIL import Image

from fvjax.config import load_config
from fvjax.connectome import flip_permutation, hex_coords, rotation_permutation
from fvjax.stimulus import (augment, frame_size, load_natural_image, load_videos, natural_sequence,
                            noise_sequence, receptor_pixels, render, split_sequences, train_test_frames,
                            window_pixels)
from fvjax.stimulus import movies


def _direct_boxeye(frame, extent=8, k=13):
    """Independent reference: explicit zero-padded window mean per receptor (flyvis recipe)."""
    H, W = frame.shape
    u, v = hex_coords(extent)
    out = []
    for uu, vv in zip(u, v):
        r = H // 2 + int(13 * (uu + vv / 2))  # int() truncates toward zero like a float->long cast
        c = W // 2 + 13 * vv
        acc = 0.0
        for dr in range(-(k // 2), k // 2 + 1):
            for dc in range(-(k // 2), k // 2 + 1):
                if 0 <= r + dr < H and 0 <= c + dc < W:
                    acc += float(frame[r + dr, c + dc])
        out.append(acc / k**2)
    return np.array(out)


@pytest.mark.parametrize("shape", [(209, 209), (240, 288), (221, 230)])
def test_render_matches_direct_window_mean(shape):
    frame = np.random.default_rng(0).uniform(0, 1, shape).astype(np.float32)
    np.testing.assert_allclose(render(frame), _direct_boxeye(frame), atol=2e-6)


def test_receptor_layout():
    rows, cols = receptor_pixels(8, 209, 209)
    u, v = hex_coords(8)
    centre = np.flatnonzero((u == 0) & (v == 0))[0]
    assert (rows[centre], cols[centre]) == (104, 104)
    # +u points down by 13 px; odd v truncates toward zero: (u=0, v=-1) -> row 104 + trunc(-6.5) = 98
    i = np.flatnonzero((u == 1) & (v == 0))[0]
    j = np.flatnonzero((u == 0) & (v == -1))[0]
    assert (rows[i], cols[i]) == (117, 104)
    assert (rows[j], cols[j]) == (98, 91)


def test_render_hand_values_and_errors():
    ones = np.ones((209, 209), np.float32)
    out = render(ones)
    u, v = hex_coords(8)
    assert out[(u == 0) & (v == 0)][0] == pytest.approx(1.0)
    # the corner receptor (u=-8, v=0) at row 0: 7 of 13 rows inside the frame
    assert out[(u == -8) & (v == 0)][0] == pytest.approx(7 / 13)
    with pytest.raises(ValueError, match="too small"):
        render(np.ones((100, 100)))


def test_window_sampling_equals_render():
    size = frame_size(8)
    frame = np.random.default_rng(1).uniform(0, 1, (size, size)).astype(np.float32)
    pix = window_pixels(8, size) + (size - 1) / 2
    vals = frame[pix[0].astype(int), pix[1].astype(int)].mean(-1)
    np.testing.assert_allclose(vals, render(frame), atol=1e-6)


def test_natural_sequence_properties():
    img = load_natural_image("camera")
    seq = natural_sequence(img, np.random.default_rng(0), 30)
    assert seq.shape == (30, 217) and seq.dtype == np.float32
    assert 0 <= seq.min() and seq.max() <= 1
    assert seq.std(0).mean() > 0.01  # it moves
    frame_diff = np.abs(np.diff(seq, axis=0)).mean()
    assert frame_diff < 0.2  # smoothly
    with pytest.raises(KeyError, match="unknown natural image"):
        load_natural_image("nope")


def test_noise_hold():
    seq = noise_sequence(np.random.default_rng(0), 7, hold=3)
    assert seq.shape == (7, 217)
    np.testing.assert_array_equal(seq[0], seq[2])
    assert not np.array_equal(seq[2], seq[3])


def _write_davis(root, videos):
    rng = np.random.default_rng(0)
    for name, n in videos.items():
        folder = root / "JPEGImages" / "480p" / name
        folder.mkdir(parents=True)
        for k in range(n):
            img = (rng.uniform(0, 255, (48, 80, 3))).astype(np.uint8)
            img = np.kron(img, np.ones((10, 10, 1), np.uint8))  # 480x800, blocky so JPEG keeps it
            Image.fromarray(img).save(folder / f"{k:05d}.jpg", quality=95)


def test_davis_pipeline(tmp_path):
    _write_davis(tmp_path, {"a": 6, "b": 5, "c": 2, "d": 5, "e": 5, "f": 5})
    videos = load_videos(tmp_path, min_frames=5, max_frames=5)
    assert [v.name for v in videos] == ["a", "b", "d", "e", "f"]  # c is too short
    assert all(v.frames.shape == (5, 217) for v in videos)
    # the first frame of "a" equals our own recipe: luminance, rot90 clockwise, centre crop 0.6, BoxEye
    img = np.asarray(Image.open(tmp_path / "JPEGImages/480p/a/00000.jpg").convert("RGB"), np.float32) / 255
    lum = img @ np.array([0.299, 0.587, 0.114], np.float32)
    rot = np.rot90(lum, -1)  # (800, 480)
    crop = rot[:, 96:384]
    np.testing.assert_allclose(videos[0].frames[0], _direct_boxeye(crop), atol=1e-5)
    variants = augment(videos[0].frames, 8)
    assert len(variants) == 8
    np.testing.assert_array_equal(variants[0], videos[0].frames)
    np.testing.assert_array_equal(variants[1], videos[0].frames[:, rotation_permutation(8, 1)])
    np.testing.assert_array_equal(variants[4], videos[0].frames[:, flip_permutation(8, 1)])
    train, test = split_sequences(videos, seed=0)
    assert len(train) == 32 and len(test) == 8
    test_set = {v.tobytes() for v in augment(videos[4].frames, 8)}
    assert all(s.tobytes() in test_set for s in test)


def test_davis_config_errors(tmp_path):
    cfg = load_config(None, {"simulation.visual_input_type": "DAVIS", "simulation.datavis_roots": [str(tmp_path)]})
    with pytest.raises(FileNotFoundError, match="datavis_roots"):
        train_test_frames(cfg.simulation)


def test_davis_through_config(tmp_path):
    _write_davis(tmp_path, {n: 5 for n in "abcde"})
    cfg = load_config(None, {"simulation.visual_input_type": "DAVIS", "simulation.datavis_roots": [str(tmp_path)],
                             "simulation.min_video_frames": 5, "simulation.n_frames": 100})
    train, test = train_test_frames(cfg.simulation)
    assert train.shape == (100, 217)
    assert test.shape == (8 * 5, 217)  # one pass over the test video's 8 variants


@pytest.mark.parametrize("kind", ["natural", "scenes", "gratings", "bars", "flashes", "noise", "mixed"])
def test_generated_sources(kind):
    cfg = load_config(None, {"simulation.visual_input_type": kind, "simulation.n_frames": 120,
                             "simulation.n_test_frames": 60})
    train, test = train_test_frames(cfg.simulation)
    assert train.shape == (120, 217) and test.shape == (60, 217)
    assert np.isfinite(train).all() and 0 <= train.min() and train.max() <= 1
    again, _ = train_test_frames(cfg.simulation)
    np.testing.assert_array_equal(train, again)  # seeded
    other, _ = train_test_frames(cfg.simulation, seed=1)
    assert not np.array_equal(train, other)


@pytest.mark.parametrize("kind", ["natural", "DAVIS"])
def test_blank_prefix_darkens_the_start_of_each_training_sequence(kind, tmp_path):
    sets = {"simulation.n_frames": 200, "simulation.n_test_frames": 40, "simulation.sequence_frames": [30, 30]}
    if kind == "DAVIS":
        _write_davis(tmp_path, {n: 30 for n in "abcde"})
        sets = {"simulation.visual_input_type": "DAVIS", "simulation.datavis_roots": [str(tmp_path)],
                "simulation.min_video_frames": 5, "simulation.max_video_frames": 30, "simulation.n_frames": 200}
    plain_train, plain_test = train_test_frames(load_config(None, sets).simulation)
    train, test = train_test_frames(load_config(None, {**sets, "simulation.blank_prefix_fraction": 0.25}).simulation)
    dark = np.zeros(200, bool)
    for start in range(0, 200, 30):                  # 30-frame sequences: frames 0-6 of each are dark (floor(7.5))
        dark[start:start + 7] = True
    assert (train[dark] == 0).all()
    np.testing.assert_array_equal(train[~dark], plain_train[~dark])   # the rest is the same movie
    assert (plain_train[dark].max(axis=1) > 0).all()
    np.testing.assert_array_equal(test, plain_test)                   # test movies unchanged
    again, _ = train_test_frames(load_config(None, sets).simulation)
    np.testing.assert_array_equal(again, plain_train)                 # the source arrays were not modified


def test_blank_prefix_range_is_checked():
    from fvjax.config import ConfigError
    with pytest.raises(ConfigError, match="blank_prefix_fraction"):
        load_config(None, {"simulation.blank_prefix_fraction": 1.0})


def test_natural_split_is_disjoint():
    assert not set(movies.NATURAL_TEST_IMAGES) & set(movies.NATURAL_IMAGES[:12])


def test_davis_small_frames_are_refused_by_name(tmp_path, capsys):
    from PIL import Image

    from fvjax.experiments.vrest import main
    from fvjax.stimulus import VideoError

    for name, size in {"big": (470, 800), "small": (180, 320)}.items():
        folder = tmp_path / "JPEGImages" / "480p" / name
        folder.mkdir(parents=True)
        for k in range(5):
            Image.fromarray(np.full((*size, 3), 40 * k, np.uint8)).save(folder / f"{k:05d}.jpg")
    with pytest.raises(VideoError, match=r"small: frames of 320x180 px \(width x height\) are smaller than BoxEye's 209x209"):
        load_videos(tmp_path, min_frames=5)
    # 470 px high, cropped to 0.3 -> 141 px: the crop fraction is named with a value that does (0.45 keeps
    # 212 px; 0.44, rounded down, would keep 207)
    with pytest.raises(VideoError, match=r"center_crop_fraction 0.3 keeps 141 of the frames' 470 px.*at least 0.45"):
        load_videos(tmp_path, min_frames=5, crop_fraction=0.3)
    rc = main(["--seed", "1", "--n-frames", "50", "--n-iter", "2", "--quiet", "--out", str(tmp_path / "runs"),
               "--set", "simulation.visual_input_type=DAVIS", "--set", f"simulation.datavis_roots=[{tmp_path}]",
               "--set", "simulation.min_video_frames=5"])
    err = capsys.readouterr().err
    assert rc == 2 and "small: frames of 320x180 px" in err and "Traceback" not in err


def test_davis_needs_a_video_on_each_side_of_the_split(tmp_path):
    from fvjax.stimulus import VideoError

    _write_davis(tmp_path, {"only": 5})
    with pytest.raises(VideoError, match=r"both sides .* found 1 usable \(only\); add videos"):
        split_sequences(load_videos(tmp_path, min_frames=5), seed=0)
