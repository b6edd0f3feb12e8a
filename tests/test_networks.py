"""The network-kind protocol (fvjax.networks): the lookup, each kind's fields, and the choices that
used to be name comparisons (default type count, the model name in ground_truth.npz, tuning's refusal)."""

import dataclasses

import numpy as np
import pytest

from fvjax import networks
from fvjax.config import SYNTHETIC_MODELS, SimulationConfig, from_dict


def test_every_config_choice_resolves_to_its_kind():
    choices = next(f for f in dataclasses.fields(SimulationConfig) if f.name == "network").metadata["choices"]
    assert tuple(choices) == tuple(networks.KINDS)
    for name in choices:
        kind = networks.resolve(from_dict({"simulation": {"network": name}}))
        assert isinstance(kind, networks.Network) and kind.name == name and networks.by_name(name) is kind
        cfg = from_dict({"simulation": {"network": name}}).replace(**kind.gnn_defaults)   # valid config keys
        assert cfg.graph_model.signal_model_name == kind.gnn_defaults["graph_model.signal_model_name"]
    from fvjax.networks.synthetic import MODELS

    assert tuple(MODELS) == SYNTHETIC_MODELS
    with pytest.raises(ValueError, match="unknown network kind; fvjax knows flyvis, synthetic"):
        networks.by_name("worm")


def test_kind_specific_answers():
    flyvis, synthetic = networks.by_name("flyvis"), networks.by_name("synthetic")
    assert flyvis.cell_types and not synthetic.cell_types
    cfg = from_dict({"simulation": {"network": "synthetic", "n_neurons": 12, "n_neuron_types": 3}})
    nodes, gt = synthetic.build(cfg)
    assert nodes is gt and nodes.n_types == 3 and synthetic.cluster_components(nodes) == 3
    assert flyvis.cluster_components(nodes) == 100
    assert synthetic.label(cfg) == "synthetic" and flyvis.label(cfg) == cfg.simulation.ground_truth == "flyvis_000"
    assert synthetic.gnn_defaults["graph_model.signal_model_name"] == "dense"


def test_default_type_count_and_ground_truth_file_per_model(tmp_path):
    from fvjax.networks.synthetic import PDEN2Network, SyntheticNetwork, load_network, make_network, save_network

    tanh = from_dict({"simulation": {"network": "synthetic", "n_neurons": 12}}).simulation
    params = [[1.0, 1.0, 1.0], [2.0, 1.0, 1.0], [3.0, 1.0, 1.0]]
    pde = from_dict({"simulation": {"network": "synthetic", "synthetic_model": "PDE_N2", "n_neurons": 12,
                                    "PDE_N2_params": params}}).simulation
    assert make_network(tanh).n_types == 4 and make_network(pde).n_types == 3   # unset n_neuron_types
    for sim, cls, tagged in ((tanh, SyntheticNetwork, False), (pde, PDEN2Network, True)):
        net = make_network(sim)
        save_network(tmp_path / "gt.npz", net)
        with np.load(tmp_path / "gt.npz") as f:
            assert ("synthetic_model" in f.files) == tagged      # tanh files keep their original layout
        back = load_network(tmp_path / "gt.npz")
        assert isinstance(back, cls)
        np.testing.assert_array_equal(back.W, net.W)


def test_tuning_refuses_a_kind_without_cell_types(tmp_path):
    from fvjax.evaluate.tuning import TuningError, load_tunable

    (tmp_path / "config.yaml").write_text("simulation:\n  network: synthetic\n")
    with pytest.raises(TuningError, match="synthetic network; tuning needs the flyvis connectome"):
        load_tunable(tmp_path)
