import numpy as np

from fvjax.evaluate.plots import DEFAULT_TYPES, activity_overview, hex_positions


def test_activity_overview(conn, tmp_path):
    T = 20
    lum = np.random.default_rng(0).uniform(0, 1, (T, 217))
    volts = np.tile(np.arange(conn.n_nodes, dtype=float), (T, 1))
    fig = activity_overview(conn, lum, volts)
    hex_ax, trace_ax = fig.axes[:2]
    assert len(trace_ax.lines) == len(DEFAULT_TYPES) + 1  # traces + frame marker
    # each trace is the central-column node of its type
    first = trace_ax.lines[0].get_ydata()
    r1_centre = np.flatnonzero((conn.node_type == 0) & (conn.node_u == 0) & (conn.node_v == 0))[0]
    assert first[0] == r1_centre
    fig.savefig(tmp_path / "x.png")
    assert (tmp_path / "x.png").stat().st_size > 1000


def test_hex_positions_are_regular():
    x, y = hex_positions(np.array([0, 1, 0]), np.array([0, 0, 1]))
    d1 = np.hypot(x[1] - x[0], y[1] - y[0])
    d2 = np.hypot(x[2] - x[0], y[2] - y[0])
    assert np.isclose(d1, d2)


def test_plots_leave_the_users_matplotlib_alone(conn, tmp_path):
    """No backend switch, no figure registered with pyplot, the user's open figures untouched."""
    import matplotlib
    import matplotlib.pyplot as plt

    mine = plt.figure()
    backend, open_before = matplotlib.get_backend(), plt.get_fignums()
    fig = activity_overview(conn, np.zeros((4, 217)), np.zeros((4, conn.n_nodes)))
    fig.savefig(tmp_path / "y.png")
    assert matplotlib.get_backend() == backend and plt.get_fignums() == open_before
    assert plt.fignum_exists(mine.number)
    plt.close(mine)
