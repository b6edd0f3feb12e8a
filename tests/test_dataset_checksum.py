"""Bit-identity of generated datasets: a tiny flyvis, tanh and PDE_N2 dataset, generated through the
``fvjax generate`` entry point, must hash (per array, sha256 of the raw float32 bytes as recorded in
manifest.json) to the values pinned below. They were pinned from the code before the dataset format
and the network kinds were split apart (fvjax.dataset / fvjax.networks), so a refactor that changes
one bit of any dataset fails here.

The hashes are those of XLA on CPU with the jax/numpy of the project's environment; on another backend
the floats legitimately differ (the test skips there). After a deliberate change of the simulation, or
a jax upgrade that changes CPU floats, re-pin them from the failure message."""

import json

import jax
import pytest

from fvjax.generate import main as generate_main

# the tiny settings of tests/test_data.py (bundled flyvis_000 ground truth), test_synthetic.py, test_pde_n2.py
SETTINGS = {
    "flyvis": {"n_frames": 150, "n_test_frames": 40, "chunk_frames": 64, "sequence_frames": "[20, 30]", "seed": 3,
               "visual_input_type": "natural"},   # pinned when natural was the default
    "flyvis_scenes": {"n_frames": 150, "n_test_frames": 40, "chunk_frames": 64, "sequence_frames": "[20, 30]",
                      "seed": 3},   # the default stimulus and its default statistics since 2026-12-03
    "flyvis_scenes_2": {"n_frames": 150, "n_test_frames": 40, "chunk_frames": 64, "sequence_frames": "[20, 30]",
                        "seed": 3, "scene_luminance": "[0.3, 0.7]", "scene_contrast": "[0.1, 0.6]"},
                        # the default's luminance and contrast until 2026-12-03
    "tanh": {"network": "synthetic", "n_neurons": 30, "n_neuron_types": 3, "n_frames": 400, "n_input_neurons": 4,
             "seed": 1, "chunk_frames": 128},
    "PDE_N2": {"network": "synthetic", "synthetic_model": "PDE_N2", "n_neurons": 24, "n_frames": 300,
               "n_test_frames": 40, "seed": 2, "delta_t": 0.01, "noise_model_level": 0.0, "steady_state_time": 0.5},
}
PINNED = {
    "flyvis": {
        "train/voltage": "e333f10ef91cc3d509e0e45b0ef8bbf5c50c1ecce707ed3f74988529b41103e0",
        "train/target": "1429ca98b832f6978adf972f721e79c42cc820878aef8fb7388e3feac778c4bf",
        "train/stimulus": "88f81efc37d9ccbb44cd4a3613c30af1eaa13a0fea04ffc29d0fb0856aae049d",
        "test/voltage": "0e50462580b489e20bebe74764ad19c96790dd54f7a7a35427210781fa704697",
        "test/target": "e6ac05f3978b3807b353703a02515d54215be2e7dae33905bf87aa735b75a8f1",
        "test/stimulus": "74a7457852720088ab7095f42cdd9722f33235da538b2a24ce9b0751a10cb524",
        "ground_truth.npz": "50ecf3e41308566425f1e3a54a7acf0621390098c2082d42030ab219e554d02a",
    },
    "flyvis_scenes": {   # pinned 2026-12-03 when these statistics became the default
        "train/voltage": "d1e8447808575430e6007f81c35c8baa533f7ac47ec9c7f22667b6554df6fa35",
        "train/target": "6401e06543a72404451769e84009cd8dc08d3f35312074d9da0ff2367d710e5f",
        "train/stimulus": "ab2b261669c415e1edc8c8e2d2dc0da8d2ccc9a8da6a35b98e8b60d6a8ada175",
        "test/voltage": "620d8351c7befc854d9a35d5241e63d5f19a9c68497f94a209041b7158d2a10a",
        "test/target": "2595b09c97ba16ebe0c2da6c8892c1f9da53517e43ad2e55280ebe76bb515aa8",
        "test/stimulus": "c0da487427566960af06ed6dd79773e0ce9044f990c64d0d8404f8adda8925a1",
        "ground_truth.npz": "50ecf3e41308566425f1e3a54a7acf0621390098c2082d42030ab219e554d02a",
    },
    "flyvis_scenes_2": {   # pinned 2026-12-03 from commit b93a129's code
        "train/voltage": "a9009ad664de68c1d2fa84075a2f46aed2b6afc2d9e3e26cecd74b5ce110423b",
        "train/target": "11f10a9ab2698d165109b90ef9fc7ca49b2a67e66b3c81a1516f149fa4d2cb43",
        "train/stimulus": "4eed9178413c8b920fd113e05b00029b968b75a5ab9845822c33c21dd13f1846",
        "test/voltage": "dd0757b15620ef536517273f2f573620f3bb12e26bc5474d1c6cbb1a80fec48c",
        "test/target": "44ba92d5f8a695e38df20098c5d39fef8bd8af495456d96a33d3f71de576b6b7",
        "test/stimulus": "a82341fd9800dcb1ec4ad129fd58f686566514669828746f49c42096e1804277",
        "ground_truth.npz": "50ecf3e41308566425f1e3a54a7acf0621390098c2082d42030ab219e554d02a",
    },
    "tanh": {
        "train/voltage": "6b23f0d83a5954833c84a7bfe100dca5601ea9fd5d728e9b4045bb0770c7dac6",
        "train/target": "63d3245b42ca019055bd6afdbb1d71444fe87467254f9b35c452766c94c47206",
        "train/stimulus": "d31ff51109ab74f69c55c62ea52d2f07cfe62eaf39ade3129c45c3b7600bdfb5",
        "test/voltage": "33e729b108f2894fb113c0975f38992642a4356f9bfa764836f5515c19d5c283",
        "test/target": "21835e6314bf2f314217aad508b24f8e1a05a65130e48d5d674022d93837b284",
        "test/stimulus": "2ac8e02b0810ffa95f55cdcb905ed268d6baecd16dc95ede9db0dcea5dfa606b",
        "ground_truth.npz": "f972bfbe7c0f7c31d106de27b8256c53363b737c5178b31cdd45b70c5532747d",
    },
    "PDE_N2": {
        "train/voltage": "c95e66cf7bfff38021707b0eab50889041efe8a3278a842dc3b8739cd75f37eb",
        "train/target": "a56a04ce1780b6fc045e9710259c78495774738ff6ef3e7a49c3fef05a40a20f",
        "train/stimulus": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "test/voltage": "ffe547ba51b6f9ed5377d81013ded135be94d419b9b14f86708d479424dfa798",
        "test/target": "79352a0609332f330216493629dfeed76876c8a58b546fd35aad2ae37e634f36",
        "test/stimulus": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "ground_truth.npz": "deb57454b9c884d9488aa4cd9730225096100b2644c181127e8914e6b7057ef9",
    },
}


def _hashes(folder) -> dict:
    manifest = json.loads((folder / "manifest.json").read_text())
    out = {f"{split}/{name}": info["sha256"] for split, entry in manifest["splits"].items()
           for name, info in entry["arrays"].items()}
    out["ground_truth.npz"] = manifest["ground_truth_sha256"]
    return out


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="hashes pinned for XLA on CPU")
@pytest.mark.parametrize("kind", list(SETTINGS))
def test_generated_dataset_is_bit_identical(tmp_path, kind):
    sets = [arg for key, value in SETTINGS[kind].items() for arg in ("--set", f"simulation.{key}={value}")]
    assert generate_main(["--out", str(tmp_path / kind), "--quiet", *sets]) == 0
    got = _hashes(tmp_path / kind)
    assert got == PINNED[kind], f"{kind}: dataset bytes changed; now {json.dumps(got, indent=1)}"
