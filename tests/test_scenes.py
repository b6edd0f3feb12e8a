"""The ``scenes`` stimulus: procedural backgrounds, moving occluders, ego-motion, luminance statistics."""

import dataclasses
import hashlib

import numpy as np
import pytest

from fvjax.config import load_config
from fvjax.connectome import flip_permutation, rotation_permutation
from fvjax.stimulus import davis, movies, render, scenes, train_test_frames


KERNEL_DIAGONAL = 13 / np.sqrt(2)


def _fake_still(name):
    """Stand-in for the scikit-image stills: a distinct random image per name (fast, no skimage)."""
    seed = int(hashlib.sha256(name.encode()).hexdigest()[:8], 16)
    return np.random.default_rng(seed).uniform(0, 1, (300, 360)).astype(np.float32)


def _sequence(seed, n=20, split="train", **kw):
    return scenes.scene_sequence(np.random.default_rng(seed), n, split, load_still=_fake_still, **kw)


def _static_movie(objects, n_frames=12):
    """Pink background seen by an eye that does not move (no pan, roll or zoom)."""
    background = scenes.pink_noise(np.random.default_rng(0), 256, 2.0)
    path = scenes.EgoPath(np.full((n_frames, 2), 128.0), np.zeros(n_frames), np.ones(n_frames))
    return scenes.SceneMovie(scenes.Scene("pink", "train", 0), background, True, path, objects, 0.4, 0.3)


def _without_objects(movie):
    o = movie.objects
    none = scenes.Objects(o.position[:, :0], o.angle[:, :0], o.radius[:0], o.aspect[:0], o.harmonics[:0],
                          o.offset[:0], o.gain[:0], o.texture[:0])
    return dataclasses.replace(movie, objects=none)


def _disc(position, radius=20.0, offset=2.0):
    n_frames = len(position)
    return scenes.Objects(position[:, None], np.zeros((n_frames, 1)), np.array([radius]), np.ones(1),
                          np.zeros((1, 3), complex), np.array([offset]), np.zeros(1), np.zeros((1, 8, 8), np.float32))


@pytest.mark.parametrize("split", ["train", "test"])
def test_shape_range_and_seeding(split):
    a = _sequence(0, 30, split)
    assert a.shape == (30, 217) and a.dtype == np.float32
    assert np.isfinite(a).all() and 0 <= a.min() and a.max() <= 1
    assert a.std() > 0.005
    np.testing.assert_array_equal(a, _sequence(0, 30, split))
    assert not np.array_equal(a, _sequence(1, 30, split))


def test_through_config():
    cfg = load_config(None, {"simulation.visual_input_type": "scenes", "simulation.n_frames": 150,
                             "simulation.n_test_frames": 60, "simulation.scene_objects": [0, 2]})
    train, test = train_test_frames(cfg.simulation)
    assert train.shape == (150, 217) and test.shape == (60, 217)
    assert 0 <= train.min() and train.max() <= 1
    np.testing.assert_array_equal(train, train_test_frames(cfg.simulation)[0])
    assert not np.array_equal(train, train_test_frames(cfg.simulation, seed=1)[0])
    with pytest.raises(ValueError, match="scene_objects"):
        _sequence(0, 5, n_objects=(3, 1))


def test_boxeye_of_full_frames_without_roll():
    """With no roll the summed-area rendering (objects included) is exactly BoxEye of the full frame."""
    checked_objects = False
    for seed in range(3):
        movie = scenes.draw_movie(np.random.default_rng(seed), 12, "train", _fake_still)
        movie = dataclasses.replace(movie, path=dataclasses.replace(movie.path, angle=np.zeros(12)))
        frames = [0, 6, 11]
        hexals = scenes.render_hexals(movie)[frames]
        np.testing.assert_allclose(render(scenes.render_frames(movie, frames)), hexals, atol=1e-5)
        bare = scenes.render_hexals(_without_objects(movie))[frames]
        checked_objects |= bool(np.abs(bare - hexals).max() > 0.01)
    assert checked_objects  # objects were in view, so the occlusion path was compared too


def test_objects_move_and_changes_are_local():
    n = 12
    still = _static_movie(_disc(np.tile([[0.0, -40.0]], (n, 1))), n)
    assert np.abs(np.diff(scenes.render_hexals(still), axis=0)).max() == 0  # static eye, static object
    position = np.stack([np.full(n, 10.0), -40.0 + 3.0 * np.arange(n)], -1)  # 3 px/frame to the right
    frames = scenes.render_hexals(_static_movie(_disc(position), n))
    receptors = scenes._receptors(8).T
    for t in range(n - 1):
        changed = np.abs(frames[t + 1] - frames[t]) > 1e-6
        assert changed.sum() > 0
        assert changed.mean() < 0.25
        dist = np.linalg.norm(receptors[changed] - position[t], axis=1)
        assert dist.max() < 20 + 3 + KERNEL_DIAGONAL
    # and in drawn sequences, objects change position over time
    movie = scenes.draw_movie(np.random.default_rng(0), 40, "train", _fake_still, n_objects=(3, 3))
    steps = np.linalg.norm(np.diff(movie.objects.position, axis=0), axis=-1)
    assert (np.median(steps, axis=0) > 0.3).all()


def test_ego_motion_speed_changes_within_sequences():
    cv = []
    for seed in range(20):
        path = scenes.draw_ego_path(np.random.default_rng(seed), 80, (512, 512))
        speed = np.linalg.norm(np.diff(path.centre, axis=0), axis=1) / path.scale[:-1]  # screen px/frame
        cv.append(speed.std() / speed.mean())
        assert np.all(path.scale >= 0.4 - 1e-9) and np.all(path.scale <= 1.6 + 1e-9)
    assert np.mean(np.asarray(cv) > 0.2) >= 0.8


def _rank(x):
    return np.argsort(np.argsort(x))


def test_luminance_statistics_vary_across_sequences():
    drawn = [scenes.draw_movie(np.random.default_rng(seed), 12, "train", _fake_still) for seed in range(30)]
    frames = [scenes.render_hexals(m) for m in drawn]
    mean = np.array([f.mean() for f in frames])
    contrast = np.array([f.std() / f.mean() for f in frames])
    assert np.percentile(mean, 90) / np.percentile(mean, 10) > 2.5
    drawn_contrast = np.array([m.contrast for m in drawn])
    assert np.ptp(drawn_contrast) > 0.3
    assert np.corrcoef(_rank(drawn_contrast), _rank(contrast))[0, 1] > 0.5  # it reaches the hexals
    m, c = zip(*[scenes.luminance_stats(np.random.default_rng(s)) for s in range(2000)])
    assert abs(np.median(m) - scenes.LUMINANCE[0]) < 0.02 and min(c) >= scenes.CONTRAST[0]
    # the statistics until 2026-12-03: dark scenes exist, but are not the rule
    m = np.array([scenes.luminance_stats(np.random.default_rng(s), (0.3, 0.7))[0] for s in range(2000)])
    assert 0.02 < np.mean(m < 0.1) < 0.2


def test_luminance_and_contrast_keys():
    m, c = zip(*[scenes.luminance_stats(np.random.default_rng(s), (0.5, 0.2), (0.3, 0.9)) for s in range(2000)])
    assert abs(np.median(m) - 0.5) < 0.02 and abs(np.std(np.log(m)) - 0.2) < 0.02
    assert 0.3 <= min(c) and max(c) <= 0.9 and abs(np.mean(c) - 0.6) < 0.02
    # (tests/test_dataset_checksum.py pins the default draw, flyvis_scenes, and the earlier one, flyvis_scenes_2)
    movie = scenes.draw_movie(np.random.default_rng(0), 12, "train", _fake_still, contrast=(0.8, 0.8))
    assert movie.contrast == 0.8


@pytest.mark.parametrize("sets, match", [({"simulation.scene_luminance": [0.8, 0.5]}, "median 0.8 must lie in"),
                                         ({"simulation.scene_contrast": [0.6, 0.2]}, "lo <= hi"),
                                         ({"simulation.scene_objects": [4, 2]}, "scene_objects")])
def test_scene_key_errors(sets, match):
    from fvjax.config import ConfigError, load_config

    with pytest.raises(ConfigError, match=match):
        load_config(None, sets)


def test_scene_keys_name_their_datasets_only_away_from_the_earlier_values():
    """At the values they had before they were keys ((0.3, 0.7), (0.1, 0.6)) the two keys are left out
    of a dataset's name, so those datasets keep their names; any other value, the defaults since
    2026-12-03 included, is part of it."""
    from fvjax.config import load_config
    from fvjax.datacache import data_settings, dataset_name

    before = load_config(None, {"simulation.scene_luminance": [0.3, 0.7], "simulation.scene_contrast": [0.1, 0.6]})
    assert not {"scene_luminance", "scene_contrast"} & set(data_settings(before)["simulation"])
    base = load_config(None, {})
    assert {"scene_luminance", "scene_contrast"} <= set(data_settings(base)["simulation"])
    assert dataset_name(base) != dataset_name(before)
    assert dataset_name(base.replace(**{"simulation.scene_contrast": (0.1, 0.6)})) != dataset_name(base)
    assert dataset_name(base.replace(**{"simulation.scene_luminance": (0.3, 0.7)})) != dataset_name(base)


def test_augmentation_is_a_davis_variant():
    variants = {(f, r): flip_permutation(8, f)[rotation_permutation(8, r)]
                for f in davis.FLIPS for r in davis.ROTATIONS}
    seen = set()
    for seed in range(8):
        plain, augmented = _sequence(seed, 6, augment=False), _sequence(seed, 6, augment=True)
        match = [k for k, p in variants.items() if np.array_equal(augmented, plain[:, p])]
        assert match
        seen.add(match[0])
    assert len(seen) > 2


def test_train_and_test_scenes_are_disjoint():
    draws = {split: [scenes.draw_scene(np.random.default_rng(s), split) for s in range(300)] for split in scenes.SPLITS}
    stills = {split: {sc.still for sc in d if sc.kind == "still"} for split, d in draws.items()}
    assert stills["train"] and stills["train"] <= set(scenes.TRAIN_STILLS)
    assert stills["test"] and stills["test"] <= set(movies.NATURAL_TEST_IMAGES)
    assert not stills["train"] & stills["test"]
    # procedural textures: the same scene index gives different textures per split
    for kind in ("pink", "leaves"):
        a, b = (scenes.scene_background(scenes.Scene(kind, split, 7), size=128) for split in scenes.SPLITS)
        assert not np.allclose(a, b)
    a, b = (scenes.object_textures(scenes.Scene("pink", split, 7), 2) for split in scenes.SPLITS)
    assert not np.allclose(a, b)


def test_sources_pass_the_split(monkeypatch):
    seen = []
    draw = scenes.draw_scene

    def spy(rng, split):
        scene = draw(rng, split)
        seen.append(scene)
        return scene

    monkeypatch.setattr(scenes, "draw_scene", spy)
    monkeypatch.setattr(movies, "load_natural_image", _fake_still)
    cfg = load_config(None, {"simulation.visual_input_type": "scenes", "simulation.n_frames": 150,
                             "simulation.n_test_frames": 150, "simulation.sequence_frames": [5, 8],
                             "simulation.scene_objects": [0, 1]})
    train_test_frames(cfg.simulation)
    train = [s for s in seen if s.split == "train"]
    test = [s for s in seen if s.split == "test"]
    assert len(train) + len(test) == len(seen) and train and test
    assert not {(s.kind, s.index, s.still) for s in train} & {(s.kind, s.index, s.still) for s in test}
    assert {s.still for s in test if s.still} <= set(movies.NATURAL_TEST_IMAGES)


def test_dead_leaves_and_pink_noise():
    rng = np.random.default_rng(0)
    pink = scenes.pink_noise(rng, 128, 2.0)
    assert pink.shape == (128, 128) and abs(pink.mean()) < 1e-5 and abs(pink.std() - 1) < 1e-4
    spectrum = np.abs(np.fft.rfft2(pink)) ** 2
    f = np.hypot(np.fft.fftfreq(128)[:, None], np.fft.rfftfreq(128)[None])
    low, high = spectrum[(f > 0.02) & (f < 0.04)].mean(), spectrum[(f > 0.2) & (f < 0.4)].mean()
    assert 50 < low / high < 2000  # ~ (10)^2 for alpha = 2
    leaves = scenes.dead_leaves(rng, 128, 2.0)
    assert leaves.shape == (128, 128) and abs(leaves.std() - 1) < 1e-4
    assert len(np.unique(np.round(leaves[::4, ::4], 1))) > 10


def test_natural_and_mixed_unchanged():
    """`natural` and `mixed` data are bit-identical to before `scenes` existed (checksums taken then)."""
    expected = {"natural": "91743b5554ff57a1bb079bddf3c4f3fe7a49cdc35fa31d1be197944a971ed26a",
                "mixed": "ac897d32df59c835fc6386facbb7aa10f5ea9a2b52d65f95ce3c065227ec2d3b"}
    for kind, digest in expected.items():
        cfg = load_config(None, {"simulation.visual_input_type": kind, "simulation.n_frames": 300,
                                 "simulation.n_test_frames": 150})
        train, test = train_test_frames(cfg.simulation, seed=0)
        assert hashlib.sha256(train.tobytes() + test.tobytes()).hexdigest() == digest, kind


def test_scene_keys_do_not_touch_other_stimuli(tmp_path):
    """A `natural` dataset or run folder does not depend on the scenes-only keys: its name stays, and a
    folder continues whatever they are set to; a `scenes` folder is refused when they differ."""
    import yaml

    from fvjax.config import load_config, to_dict
    from fvjax.datacache import dataset_name
    from fvjax.pipeline import RunMismatch, check_run_settings

    other = {"simulation.scene_luminance": (0.6, 0.1), "simulation.scene_contrast": (0.2, 0.3),
             "simulation.scene_objects": (0, 1)}
    for kind, refused in (("natural", False), ("scenes", True)):
        cfg = load_config(None, {"simulation.visual_input_type": kind})
        changed = cfg.replace(**other)
        # (scene_objects was named in datasets before these keys existed, for every stimulus, and still is)
        lum = cfg.replace(**{k: v for k, v in other.items() if k != "simulation.scene_objects"})
        assert (dataset_name(lum) != dataset_name(cfg)) == refused
        folder = tmp_path / kind
        folder.mkdir()
        stored = {k: v for k, v in to_dict(cfg).items() if k != "ignored"}
        (folder / "config.yaml").write_text(yaml.safe_dump(stored))
        if refused:
            with pytest.raises(RunMismatch, match="scene_contrast.*scene_luminance.*scene_objects"):
                check_run_settings(changed, folder)
        else:
            check_run_settings(changed, folder)
