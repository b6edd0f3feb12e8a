import pytest

from fvjax.config import ConfigError, dump_config, from_dict, load_config


def test_defaults():
    cfg = load_config()
    assert cfg.simulation.n_frames == 64000
    assert cfg.simulation.delta_t == 0.02
    assert cfg.simulation.noise_model_level == 0.05
    assert cfg.simulation.tau_clamp is False


def test_reference_yaml_section(tmp_path):
    (tmp_path / "ref.yaml").write_text("""
description: "flyvis noise=0.05"
dataset: flyvis_noise_005
simulation:
  connectivity_file: to be specified
  adjacency_matrix: ""
  params: [[1.0, 1.0, 1.0, 1.0]]
  n_neurons: 13741
  n_input_neurons: 1736
  n_neuron_types: 65
  n_edges: 434112
  n_frames: 64000
  delta_t: 0.02
  baseline_value: 0
  visual_input_type: DAVIS
  noise_model_level: 0.05
  derivative_smoothing_window: 1
  seed: 42
plotting:
  colormap: tab20
""")
    cfg = load_config(tmp_path / "ref.yaml")
    assert cfg.simulation.seed == 42 and cfg.simulation.visual_input_type == "DAVIS"
    assert "simulation.connectivity_file" in cfg.ignored and "plotting" in cfg.ignored


@pytest.mark.parametrize("text, match", [
    ("simulation:\n  n_frame: 10\n", r"simulation.n_frame: unknown key; did you mean n_frames"),
    ("simulation:\n  delta_t: -1\n", r"simulation.delta_t: -1.0 is below the minimum"),
    ("simulation:\n  visual_input_type: movie\n", r"not one of"),
    ("simulation:\n  n_frames: 1.5\n", r"expected an integer"),
    ("simulation:\n  tau_clamp: 1\n", r"expected true/false"),
    ("bogus: 1\n", r"config.bogus: unknown key"),
    ("training:\n  coeff_g_phi_linear: 0.9\n  g_phi_diff_delta: 0\n", r"training.g_phi_diff_delta is 0"),
])
def test_errors_name_the_key(tmp_path, text, match):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=match):
        load_config(path)


def test_overrides_and_roundtrip(tmp_path):
    cfg = load_config(None, {"simulation.seed": 7, "simulation.sequence_frames": [10, 20]})
    assert cfg.simulation.seed == 7 and cfg.simulation.sequence_frames == (10, 20)
    with pytest.raises(ConfigError, match="unknown key"):
        cfg.replace(**{"simulation.sede": 3})
    dump_config(cfg, tmp_path / "out.yaml")
    assert load_config(tmp_path / "out.yaml") == cfg
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")


def test_yaml_exponent_strings_are_numbers(tmp_path):
    (tmp_path / "c.yaml").write_text("simulation:\n  noise_model_level: 5e-2\n")
    assert load_config(tmp_path / "c.yaml").simulation.noise_model_level == 0.05


def test_unsupported_reference_features(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("training:\n  coeff_W_sign: 0\n  coeff_f_theta_linearity: 0\n")
    assert {"training.coeff_W_sign", "training.coeff_f_theta_linearity"} <= set(load_config(path).ignored)
    path.write_text("training:\n  coeff_f_theta_linearity: 0.5\n")
    with pytest.raises(ConfigError, match="training.coeff_f_theta_linearity: 0.5 is not supported"):
        load_config(path)


def test_graph_model_size_checks(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("graph_model:\n  embedding_dim: 4\n  input_size: 5\n  input_size_update: 7\n")
    assert load_config(path).graph_model.embedding_dim == 4
    path.write_text("graph_model:\n  embedding_dim: 4\n  input_size: 3\n")
    with pytest.raises(ConfigError, match="graph_model.input_size = 3"):
        load_config(path)


def test_node21_config_reads_as_the_defaults():
    """The Node-21 run's config (its era's key spellings) gives exactly fvjax's training and model
    defaults; only the stimulus (DAVIS) differs."""
    from pathlib import Path

    from fvjax.config import load_config, to_dict

    cfg = load_config(Path(__file__).parent / "fixtures" / "node21_vrest.yaml")
    default = load_config()
    assert to_dict(cfg.training) == to_dict(default.training)
    checks = {"input_size": 3, "input_size_update": 5, "output_size": 1}   # consistency checks only
    assert to_dict(cfg.graph_model) == {**to_dict(default.graph_model), **checks}
    assert cfg.simulation.visual_input_type == "DAVIS" and cfg.simulation.n_frames == 64000
    assert "simulation.baseline_value" in cfg.ignored


def test_old_and_new_spelling_together_is_an_error():
    import pytest

    from fvjax.config import ConfigError, from_dict

    with pytest.raises(ConfigError, match="coeff_edge_diff and .*coeff_g_phi_diff"):
        from_dict({"training": {"coeff_edge_diff": 1.0, "coeff_g_phi_diff": 2.0}})


def test_learning_rate_spellings_get_the_right_hint():
    import pytest

    from fvjax.config import ConfigError, load_config

    for key, right in (("learning_rate_W", "training.lr_W"), ("learning_rate_embedding", "training.lr_embedding"),
                       ("lr_update", "training.learning_rate_update_start")):
        with pytest.raises(ConfigError, match=f"you mean is {right}$"):
            load_config(None, {f"training.{key}": 1e-3})
    cfg = load_config(None, {"training.learning_rate_W_start": 1e-3, "training.learning_rate_start": 2e-3})
    assert (cfg.training.lr_W, cfg.training.lr) == (1e-3, 2e-3)


def test_ignored_keys_are_collected_per_call_across_threads():
    """Loading is re-entrant: concurrent loads each report only their own inert reference keys."""
    import threading

    from fvjax.config import INERT_KEYS

    section, inert = "training", sorted(INERT_KEYS["training"])
    out = {}

    def load(i):
        for _ in range(1000):
            cfg = from_dict({section: {inert[i]: 1}})
            out.setdefault(i, set()).add(cfg.ignored)

    threads = [threading.Thread(target=load, args=(i,)) for i in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert out == {0: {(f"{section}.{inert[0]}",)}, 1: {(f"{section}.{inert[1]}",)}}
