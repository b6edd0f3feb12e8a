"""The flyvis training step's numbers are pinned: 20 scanned steps of the default recipe on a toy
connectome must give bit-identical parameters. Refactors (Flax modules, optional loss terms, new
options) must not move the science path; a deliberate change updates the hash and says why in the
commit (and re-measures docs/results.md). Hash computed on XLA:CPU (2026-12-01, jax as pinned)."""

import hashlib

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

PINNED = "a67f9c212ee647186685df57c312ebb76a7c1a2505d5a8bbb5656a5970806272"
TOY = {"nodes": [{"name": n, "pattern": ["stride", [1, 1]]} for n in ("R1", "A", "B")],
       "edges": [{"src": "R1", "tar": "A", "alpha": 1, "offsets": [[[0, 0], 2.0], [[1, 0], 1.0]]},
                 {"src": "A", "tar": "B", "alpha": -1, "offsets": [[[0, 0], 1.5], [[0, 1], 1.0]]},
                 {"src": "B", "tar": "A", "alpha": 1, "offsets": [[[0, 0], 3.0]]}],
       "input_units": ["R1"], "output_units": ["B"]}


def _twenty_steps():
    conn = build_from_spec(TOY, 3)
    graph = M.Graph(jnp.asarray(conn.edge_src), jnp.asarray(conn.edge_dst),
                    jnp.asarray(conn.input_node_index.reshape(-1)))
    cfg = load_config(None, {"training.w_init_mode": "randn_scaled"})
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


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="the hash is XLA:CPU's")
def test_twenty_default_steps_are_bit_identical():
    arrays = _twenty_steps()
    digest = hashlib.sha256(b"".join(np.ascontiguousarray(a).tobytes() for a in arrays)).hexdigest()
    assert np.isfinite(arrays[-1]).all() and np.abs(arrays[-1]).min() > 0
    assert digest == PINNED
