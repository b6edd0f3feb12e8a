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


def test_overview_figure_script_writes_png_and_rejects_bad_keys(tmp_path, capsys):
    from PIL import Image

    from experiments import overview_figure

    out = tmp_path / "overview.png"
    assert overview_figure.main(["--n-frames", "20", "--out", str(out)]) == 0
    width, height = Image.open(out).size
    assert width > 400 and height > 150
    assert overview_figure.main(["--set", "simulation.visual_input_typo=natural", "--out", str(tmp_path / "x.png")]) == 2
    assert "visual_input_typo" in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()


def test_stimulus_figure_script_writes_png(tmp_path):
    from PIL import Image

    from experiments import stimulus_figure

    out = tmp_path / "scenes.png"
    assert stimulus_figure.main(["--train-seeds", "1", "--test-seeds", "", "--frames", "8", "--out", str(out)]) == 0
    assert Image.open(out).size[0] > 300
