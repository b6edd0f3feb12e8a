"""Controlled stimuli on the hex lattice (fvjax.stimulus.controlled): hand-computed values, the
lattice's 60-degree symmetry, contrast symmetry, grating periodicity and window averaging."""

import numpy as np
import pytest

from fvjax.connectome.hexlattice import hex_coords, rotation_permutation
from fvjax.stimulus import controlled as C


def _index(extent, u, v):
    hu, hv = hex_coords(extent)
    return int(np.flatnonzero((hu == u) & (hv == v))[0])


def test_hex_positions_are_a_unit_lattice():
    x, y = C.hex_xy(3)
    i0 = _index(3, 0, 0)
    assert (x[i0], y[i0]) == (0.0, 0.0)
    for du, dv in ((1, 0), (-1, 0), (0, 1), (0, -1), (1, -1), (-1, 1)):   # the six neighbours
        j = _index(3, du, dv)
        assert np.hypot(x[j], y[j]) == pytest.approx(1.0)
    j = _index(3, -1, 0)   # u - 1 is straight up
    assert (x[j], y[j]) == pytest.approx((0.0, 1.0))
    assert C.axis_distance(3, 90)[j] == pytest.approx(1.0)
    assert C.axis_distance(3, 0)[_index(3, 0, 1)] == pytest.approx(np.sqrt(3) / 2)


def test_edge_position_over_time_by_hand():
    # extent 2, 12.5 columns/s at dt 0.02: 0.25 column per frame from -2.5 to +2.5 -> 21 sweep frames
    on = C.moving_edge(1.0, 0.0, 12.5, extent=2, dt=0.02, t_pre=0.1, t_post=0.06)
    assert C.sweep_frames(C.edge_travel(2), 12.5, 0.02) == 21
    assert on.shape == (5 + 21 + 3, 19)
    assert np.all(on[:5] == 0.5) and np.all(on[-3:] == 1.0)
    sweep = on[5:26]
    assert np.all(sweep[0] == 0.5) and np.all(sweep[-1] == 1.0)   # no hexal touched, then all turned over
    c = _index(2, 0, 0)
    # the centre's window [-1/2, 1/2] is entered at p = -0.5 (k = 8), half covered at p = 0 (k = 10)
    assert sweep[[7, 8, 9, 10, 11, 12, 13], c] == pytest.approx([0.5, 0.5, 0.625, 0.75, 0.875, 1.0, 1.0])
    up = C.moving_edge(0.0, 90.0, 12.5, extent=2, dt=0.02, t_pre=0.0, t_post=0.0)   # OFF, moving up
    above = _index(2, -1, 0)   # at y = 1: half covered when p = 1, k = 14
    assert up[14, above] == pytest.approx(0.25) and up[14, c] == 0.0 and up[13, above] > 0.25


def test_edge_contrast_and_rotation_symmetry():
    on = C.moving_edge(1.0, 30.0, 9.7, extent=4)
    assert np.allclose(C.moving_edge(0.0, 30.0, 9.7, extent=4), 1.0 - on)   # OFF mirrors ON about grey
    perm = rotation_permutation(4, 1)   # gathers the value of (-v, u+v): content turned by -60 degrees
    for make in (lambda a: C.moving_edge(1.0, a, 9.7, extent=4),
                 lambda a: C.moving_bar(0.0, 2.0, a, 13.0, extent=4),
                 lambda a: C.grating(5.0, a, 3.0, extent=4, duration=0.4)):
        for angle in (0.0, 30.0, 75.0):
            assert np.allclose(make(angle - 60.0), make(angle)[:, perm], atol=1e-6)
    assert not np.allclose(C.moving_edge(1.0, 90.0, 9.7, extent=4), on)


def test_bar_by_hand():
    # width 2 from centre -3.5 at 0.25 column/frame: the centre hexal is fully inside for |p| <= 0.5
    bar = C.moving_bar(1.0, 2.0, 0.0, 12.5, extent=2, dt=0.02, t_pre=0.0, t_post=0.04)
    assert len(bar) == C.sweep_frames(7.0, 12.5, 0.02) + 2 == 31
    c = _index(2, 0, 0)
    assert bar[[7, 8, 10, 12, 14, 16, 18, 20], c] == pytest.approx([0.5, 0.5, 0.75, 1.0, 1.0, 1.0, 0.75, 0.5])
    assert np.all(bar[0] == 0.5) and np.all(bar[-3:] == 0.5)
    thin = C.moving_bar(0.0, 0.5, 0.0, 12.5, extent=2, dt=0.02, t_pre=0.0, t_post=0.0)
    assert thin[:, c].min() == pytest.approx(0.25)   # half a column of black in a one-column window


def test_flash_values():
    f = C.flash(0.0, extent=3, dt=0.02, t_pre=0.1, t_stim=0.2, t_post=0.04, background=0.5)
    assert f.shape == (5 + 10 + 2, 37) and f.dtype == np.float32
    assert np.all(f[:5] == 0.5) and np.all(f[5:15] == 0.0) and np.all(f[15:] == 0.5)


def test_grating_periodic_and_window_averaged():
    period, speed, dt = 4.0, 10.0, 0.02   # 0.2 column per frame: one temporal period = 20 frames
    g = C.grating(period, 0.0, speed, extent=4, dt=dt, duration=1.0, contrast=0.5)
    assert np.allclose(g[20:], g[:-20], atol=1e-6)
    assert g[:20].mean(0) == pytest.approx(np.full(g.shape[1], 0.5), abs=1e-6)
    d = C.axis_distance(4, 0.0)
    # the mean of cos over each hexal's window, by numerical integration
    s = np.linspace(-0.5, 0.5, 20001)
    window = np.trapezoid(np.cos(2 * np.pi * (d[:, None] + s[None]) / period), s, axis=1)
    assert g[0] == pytest.approx(0.5 + 0.5 * window, abs=1e-6)
    assert g[:, _index(4, -2, 0)] == pytest.approx(g[:, _index(4, 2, 0)], abs=1e-6)   # y = +-2: same d
    assert not np.allclose(g[:, _index(4, 0, 0)], g[:, _index(4, 0, 1)])
    with pytest.raises(ValueError, match="speed"):
        C.sweep_frames(3.0, 0.0, 0.02)
