"""The model's networks as Flax linen modules: the MLPs g_phi and f_theta (:class:`MLP`) and the
SIREN visual field (:class:`Siren`).

The parameters stay the plain pytree the rest of fvjax uses and the checkpoints hold: a list with one
``{"w": (fan_in, fan_out), "b": (fan_out,)}`` dict per layer. :func:`variables` maps that list onto
the modules' own tree (``{"params": {"layers_0": {"kernel", "bias"}, ...}}``) by renaming keys at
trace time, so a jitted step runs the same XLA program as before and optax partitions, orbax
checkpoints and the per-source-node evaluation of g_phi see the same leaves.

:func:`mlp_init` / :func:`siren_init` draw every layer with the modules' own initializers, from
``jax.random.split(key, 2 * n_layers)`` in the order (w_0, b_0, w_1, b_1, ...): the parameters
fvjax has always drawn, bit for bit. ``MLP(...).init`` draws from the same distributions with
linen's own key derivation (so different numbers).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import flax.linen as linen
import jax
import jax.numpy as jnp
import numpy as np

ACTIVATIONS = {
    "relu": jax.nn.relu, "tanh": jnp.tanh, "sigmoid": jax.nn.sigmoid,
    "leaky_relu": jax.nn.leaky_relu, "soft_relu": jax.nn.softplus, "none": lambda x: x,
}

Initializer = Callable[..., jax.Array]


def uniform(bound: float) -> Initializer:
    """U(-bound, bound) (flax's ``initializers.uniform`` is U(0, scale))."""
    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, -bound, bound)
    return init


def normal(std: float) -> Initializer:
    def init(key, shape, dtype=jnp.float32):
        return std * jax.random.normal(key, shape, dtype)
    return init


def zeros(key, shape, dtype=jnp.float32):
    del key
    return jnp.zeros(shape, dtype)


def mlp_initializers(sizes: Sequence[int]) -> list[tuple[Initializer, Initializer]]:
    """(kernel, bias) initializers per layer, PyTorch-like as in the reference: the first layer
    U(+-1/sqrt(fan_in)) for weights and biases; later layers N(0, 0.1^2) weights and zero biases."""
    bound = 1.0 / np.sqrt(sizes[0])
    return [(uniform(bound), uniform(bound))] + [(normal(0.1), zeros)] * (len(sizes) - 2)


def siren_initializers(sizes: Sequence[int], omega: float) -> list[tuple[Initializer, Initializer]]:
    """SIREN: first layer weights U(+-1/fan_in), later layers U(+-sqrt(6/fan_in)/omega); biases
    U(+-1/sqrt(fan_in)) (PyTorch's default)."""
    return [(uniform(1.0 / fan_in if k == 0 else np.sqrt(6.0 / fan_in) / omega), uniform(1.0 / np.sqrt(fan_in)))
            for k, fan_in in enumerate(sizes[:-1])]


def _dense_layers(sizes: Sequence[int], inits, dtype) -> list[linen.Dense]:
    return [linen.Dense(fan_out, kernel_init=k_init, bias_init=b_init, param_dtype=dtype)
            for fan_out, (k_init, b_init) in zip(sizes[1:], inits)]


class MLP(linen.Module):
    """``sizes`` = (input, hidden..., output); ``activation`` after every layer but the last."""

    sizes: tuple[int, ...]
    activation: str = "relu"
    param_dtype: jnp.dtype = jnp.float32

    def setup(self):
        self.layers = _dense_layers(self.sizes, mlp_initializers(self.sizes), self.param_dtype)

    def __call__(self, x):
        act = ACTIVATIONS[self.activation]
        for layer in self.layers[:-1]:
            x = act(layer(x))
        return self.layers[-1](x)


class Siren(linen.Module):
    """sin(omega (x W + b)) for every layer but the last, which is linear."""

    sizes: tuple[int, ...]
    omega: float
    param_dtype: jnp.dtype = jnp.float32

    def setup(self):
        self.layers = _dense_layers(self.sizes, siren_initializers(self.sizes, self.omega), self.param_dtype)

    def __call__(self, x):
        for layer in self.layers[:-1]:
            x = jnp.sin(self.omega * layer(x))
        return self.layers[-1](x)


def sizes_of(layers: list[dict]) -> tuple[int, ...]:
    """(input, hidden..., output) of a list of {w, b} layers (static shapes, so free under jit)."""
    return (layers[0]["w"].shape[0],) + tuple(layer["w"].shape[1] for layer in layers)


def variables(layers: list[dict]) -> dict:
    """The fvjax layer list as the modules' variables (a renaming; the arrays are not touched)."""
    return {"params": {f"layers_{k}": {"kernel": layer["w"], "bias": layer["b"]} for k, layer in enumerate(layers)}}


def layers_of(variables_: dict) -> list[dict]:
    """Inverse of :func:`variables`: a module's variables as the fvjax layer list."""
    params = variables_["params"]
    return [{"w": params[f"layers_{k}"]["kernel"], "b": params[f"layers_{k}"]["bias"]} for k in range(len(params))]


def _draw(key, sizes: Sequence[int], inits, dtype) -> list[dict]:
    keys = jax.random.split(key, 2 * (len(sizes) - 1))
    return [{"w": k_init(keys[2 * k], (fan_in, fan_out), dtype), "b": b_init(keys[2 * k + 1], (fan_out,), dtype)}
            for k, (fan_in, fan_out, (k_init, b_init)) in enumerate(zip(sizes[:-1], sizes[1:], inits))]


def mlp_init(key, sizes: Sequence[int], dtype=jnp.float32) -> list[dict]:
    """Parameters of ``MLP(sizes)`` as the fvjax layer list (see the module docstring for the keys)."""
    return _draw(key, sizes, mlp_initializers(sizes), dtype)


def mlp_apply(layers: list[dict], x: jax.Array, activation: str = "relu") -> jax.Array:
    return MLP(sizes_of(layers), activation).apply(variables(layers), x)


def siren_init(key, sizes: Sequence[int], omega: float, dtype=jnp.float32) -> list[dict]:
    """Parameters of ``Siren(sizes, omega)`` as the fvjax layer list."""
    return _draw(key, sizes, siren_initializers(sizes, omega), dtype)


def siren_apply(layers: list[dict], x: jax.Array, omega: float) -> jax.Array:
    return Siren(sizes_of(layers), omega).apply(variables(layers), x)
