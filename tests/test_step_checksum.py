"""The flyvis training step's numbers are pinned: 20 scanned steps of the default recipe on a toy
connectome must reproduce the parameters stored in ``tests/fixtures/step_twenty_default.npz``.
Refactors (Flax modules, optional loss terms, new options) must not move the science path; a deliberate
change rewrites the fixture (``python tests/test_step_checksum.py --update``), says why in the commit and
re-measures docs/results.md.

Why a tolerance and not a hash: XLA:CPU compiles for the CPU it runs on, so the last bits depend on
the machine (a sha256 of the arrays pinned on 2026-12-01 did not match on the 2026-12-03 machine, with
the same code). Per parameter array, ``||x - x_pinned|| / ||x_pinned||`` must stay below ``TOL``:
measured 2026-12-03, a different vectorisation (``XLA_FLAGS=--xla_cpu_prefer_vector_width=128``) moves
the worst array by 2.3e-5, while a 0.1 % change of the learning rate moves it by 9.8e-2 and a 1 %
change of coeff_g_phi_diff or coeff_g_phi_norm by 1.1e-1 and 8.0e-2 (``test_the_pin_catches_...``
checks the learning-rate case on every run)."""

import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fvjax import model as M
from fvjax.config import load_config
from fvjax.connectome import build_from_spec
from fvjax.train import coefficients, init_state, make_optimizer, make_steps
from fvjax.train.losses import Batch
from fvjax.train.step import StepConfig

PINNED = Path(__file__).parent / "fixtures" / "step_twenty_default.npz"
TOL = 1e-3


TOY = {"nodes": [{"name": n, "pattern": ["stride", [1, 1]]} for n in ("R1", "A", "B")],
       "edges": [{"src": "R1", "tar": "A", "alpha": 1, "offsets": [[[0, 0], 2.0], [[1, 0], 1.0]]},
                 {"src": "A", "tar": "B", "alpha": -1, "offsets": [[[0, 0], 1.5], [[0, 1], 1.0]]},
                 {"src": "B", "tar": "A", "alpha": 1, "offsets": [[[0, 0], 3.0]]}],
       "input_units": ["R1"], "output_units": ["B"]}


def _twenty_steps(overrides: dict | None = None):
    conn = build_from_spec(TOY, 3)
    graph = M.Graph(jnp.asarray(conn.edge_src), jnp.asarray(conn.edge_dst),
                    jnp.asarray(conn.input_node_index.reshape(-1)))
    cfg = load_config(None, {"training.w_init_mode": "randn_scaled", **(overrides or {})})
    spec = M.ModelSpec(n_nodes=conn.n_nodes, n_edges=conn.n_edges)
    opt = make_optimizer(cfg.training)
    state = init_state(M.init(jax.random.PRNGKey(0), spec), opt)
    _, scanned = make_steps(spec, opt, StepConfig())
    K, B = 20, 2
    batch = Batch(jax.random.normal(jax.random.PRNGKey(1), (K, B, conn.n_nodes)),
                  jax.random.normal(jax.random.PRNGKey(2), (K, B, conn.n_nodes)),
                  jax.random.normal(jax.random.PRNGKey(3), (K, B, graph.input_index.shape[0])),
                  jnp.zeros((K, B), jnp.int32))
    state, terms = scanned(state, batch, jax.random.split(jax.random.PRNGKey(4), K), graph, jnp.asarray(1.3),
                           coefficients(cfg.training, 0))
    return [np.asarray(x) for x in jax.tree.leaves(state.params)] + [np.asarray(terms["data"])]


def worst_difference(arrays: list[np.ndarray]) -> float:
    """The largest relative difference, over the parameter arrays (and the loss curve), from the pinned ones."""
    pinned = np.load(PINNED)
    assert len(pinned.files) == len(arrays), "the parameter pytree changed shape: update the fixture deliberately"
    return max(float(np.linalg.norm(a - pinned[f"arr_{i}"]) / max(np.linalg.norm(pinned[f"arr_{i}"]), 1e-30))
               for i, a in enumerate(arrays))


CPU_ONLY = pytest.mark.skipif(jax.default_backend() != "cpu", reason="the stored parameters are XLA:CPU's")


@CPU_ONLY
def test_twenty_default_steps_match_the_pinned_numbers():
    arrays = _twenty_steps()
    assert np.isfinite(arrays[-1]).all() and np.abs(arrays[-1]).min() > 0
    assert worst_difference(arrays) < TOL


@CPU_ONLY
def test_the_pin_catches_a_small_change_of_the_science():
    """The same steps with the learning rate 0.1 % higher must fall outside the tolerance."""
    lr = load_config(None).training.lr
    assert worst_difference(_twenty_steps({"training.lr": lr * 1.001})) > TOL


if __name__ == "__main__" and sys.argv[1:] == ["--update"]:
    np.savez_compressed(PINNED, *_twenty_steps())
    print(f"wrote {PINNED}")
