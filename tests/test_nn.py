"""The Flax modules of fvjax.nn: forward passes against float64 numpy, initialisation identical (bit for
bit, same pytree) to the hand-written functions they replaced, linen's own init from the same
distributions, and the renaming between the fvjax layer list and the modules' variables."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fvjax import nn as N

NUMPY_ACTIVATIONS = {
    "relu": lambda x: np.maximum(x, 0), "tanh": np.tanh, "sigmoid": lambda x: 1 / (1 + np.exp(-x)),
    "leaky_relu": lambda x: np.where(x >= 0, x, 0.01 * x), "soft_relu": lambda x: np.log1p(np.exp(x)),
    "none": lambda x: x,
}


def _random_layers(rng, sizes):
    return [{"w": rng.normal(size=(i, o)), "b": rng.normal(size=o)} for i, o in zip(sizes[:-1], sizes[1:])]


def _numpy_mlp(layers, x, act):
    for layer in layers[:-1]:
        x = act(x @ layer["w"] + layer["b"])
    return x @ layers[-1]["w"] + layers[-1]["b"]


def _numpy_siren(layers, x, omega):
    return _numpy_mlp(layers, x, lambda z: np.sin(omega * z))


# The functions fvjax.model used before the Flax modules (commit 98ee456), kept as the reference that
# the parameters every run draws did not change.
def _old_mlp_init(key, sizes, dtype=jnp.float32):
    layers = []
    keys = jax.random.split(key, 2 * (len(sizes) - 1))
    for k, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        if k == 0:
            bound = 1.0 / np.sqrt(fan_in)
            w = jax.random.uniform(keys[2 * k], (fan_in, fan_out), dtype, -bound, bound)
            b = jax.random.uniform(keys[2 * k + 1], (fan_out,), dtype, -bound, bound)
        else:
            w = 0.1 * jax.random.normal(keys[2 * k], (fan_in, fan_out), dtype)
            b = jnp.zeros((fan_out,), dtype)
        layers.append({"w": w, "b": b})
    return layers


def _old_siren_init(key, sizes, omega, dtype=jnp.float32):
    layers = []
    keys = jax.random.split(key, 2 * (len(sizes) - 1))
    for k, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        bound = 1.0 / fan_in if k == 0 else np.sqrt(6.0 / fan_in) / omega
        w = jax.random.uniform(keys[2 * k], (fan_in, fan_out), dtype, -bound, bound)
        b_bound = 1.0 / np.sqrt(fan_in)
        b = jax.random.uniform(keys[2 * k + 1], (fan_out,), dtype, -b_bound, b_bound)
        layers.append({"w": w, "b": b})
    return layers


def _assert_bit_identical(got, expected):
    assert jax.tree.structure(got) == jax.tree.structure(expected)   # same checkpoint layout
    for g, e in zip(jax.tree.leaves(got), jax.tree.leaves(expected)):
        assert g.dtype == e.dtype and g.shape == e.shape
        np.testing.assert_array_equal(np.asarray(g), np.asarray(e))


@pytest.mark.parametrize("activation", sorted(N.ACTIVATIONS))
def test_mlp_forward_matches_numpy_float64(activation):
    rng = np.random.default_rng(0)
    sizes = (3, 7, 5, 2)
    layers = _random_layers(rng, sizes)
    x = rng.normal(size=(4, 6, 3))            # leading axes as in the per-node g_phi: (B, N, d)
    expected = _numpy_mlp(layers, x, NUMPY_ACTIVATIONS[activation])
    with jax.enable_x64(True):
        jl = jax.tree.map(jnp.asarray, layers)
        module = N.MLP(sizes, activation).apply(N.variables(jl), jnp.asarray(x))
        wrapper = N.mlp_apply(jl, jnp.asarray(x), activation)
        assert module.dtype == jnp.float64
    np.testing.assert_allclose(np.asarray(module), expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(np.asarray(wrapper), np.asarray(module))


def test_siren_forward_matches_numpy_float64():
    rng = np.random.default_rng(1)
    sizes = (3, 6, 6, 6, 1)
    layers = [{k: 0.2 * v for k, v in layer.items()} for layer in _random_layers(rng, sizes)]
    x = rng.normal(size=(2, 5, 3))
    expected = _numpy_siren(layers, x, 30.0)
    with jax.enable_x64(True):
        jl = jax.tree.map(jnp.asarray, layers)
        got = N.Siren(sizes, 30.0).apply(N.variables(jl), jnp.asarray(x))
        np.testing.assert_array_equal(np.asarray(N.siren_apply(jl, jnp.asarray(x), 30.0)), np.asarray(got))
    np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-10, atol=1e-12)


def test_gradients_match_hand_written_mlp_float64():
    rng = np.random.default_rng(2)
    with jax.enable_x64(True):
        layers = jax.tree.map(jnp.asarray, _random_layers(rng, (3, 8, 8, 1)))
        x = jnp.asarray(rng.normal(size=(5, 3)))

        def by_hand(ls):
            h = x
            for layer in ls[:-1]:
                h = jnp.tanh(h @ layer["w"] + layer["b"])
            return jnp.sum((h @ ls[-1]["w"] + ls[-1]["b"]) ** 2)
        got = jax.grad(lambda ls: jnp.sum(N.mlp_apply(ls, x, "tanh") ** 2))(layers)
        expected = jax.grad(by_hand)(layers)
    assert jax.tree.structure(got) == jax.tree.structure(layers)
    for g, e in zip(jax.tree.leaves(got), jax.tree.leaves(expected)):
        np.testing.assert_allclose(np.asarray(g), np.asarray(e), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_init_bit_identical_to_the_hand_written_functions(dtype):
    with jax.enable_x64(True):
        for seed, sizes in ((0, [3, 80, 80, 1]), (5, [6, 32, 32, 32, 1]), (7, [4, 1])):
            key = jax.random.PRNGKey(seed)
            _assert_bit_identical(N.mlp_init(key, sizes, dtype), _old_mlp_init(key, sizes, dtype))
        key = jax.random.PRNGKey(3)
        sizes = [3, 16, 16, 16, 1]
        _assert_bit_identical(N.siren_init(key, sizes, 30.0, dtype), _old_siren_init(key, sizes, 30.0, dtype))


def test_linen_init_same_layout_and_distribution():
    sizes = (5, 400, 400, 1)
    x = jnp.zeros((1, sizes[0]))
    layers = N.layers_of(N.MLP(sizes).init(jax.random.PRNGKey(0), x))
    assert jax.tree.structure(layers) == jax.tree.structure(N.mlp_init(jax.random.PRNGKey(0), sizes))
    assert [layer["w"].shape for layer in layers] == [(5, 400), (400, 400), (400, 1)]
    bound = 1 / np.sqrt(5)
    for first in (np.asarray(layers[0]["w"]), np.asarray(layers[0]["b"])):
        assert np.abs(first).max() <= bound and np.abs(first).max() > 0.9 * bound
    assert abs(np.asarray(layers[1]["w"]).std() - 0.1) < 0.005
    assert (np.asarray(layers[1]["b"]) == 0).all() and (np.asarray(layers[2]["b"]) == 0).all()

    sizes = (3, 256, 256, 1)
    siren = N.layers_of(N.Siren(sizes, 30.0).init(jax.random.PRNGKey(0), jnp.zeros((1, 3))))
    for k, bound in ((0, 1 / 3), (1, np.sqrt(6 / 256) / 30)):
        w = np.asarray(siren[k]["w"])
        assert np.abs(w).max() <= bound and np.abs(w).max() > 0.95 * bound
    b = np.asarray(siren[1]["b"])
    assert np.abs(b).max() <= 1 / 16 and np.abs(b).max() > 0.95 / 16


def test_variables_renaming_round_trip():
    layers = N.mlp_init(jax.random.PRNGKey(0), [3, 4, 1])
    v = N.variables(layers)
    assert set(v["params"]) == {"layers_0", "layers_1"} and v["params"]["layers_1"]["kernel"] is layers[1]["w"]
    back = N.layers_of(v)
    assert all(b["w"] is a["w"] and b["b"] is a["b"] for a, b in zip(layers, back))
    assert N.sizes_of(layers) == (3, 4, 1)
