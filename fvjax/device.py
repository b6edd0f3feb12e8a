"""Accelerator settings, applied when work starts (never at import; docs/gpu.md).

- Matrix products in float32 on GPU: JAX's GPU default lets cuBLAS use TF32 (10-bit mantissa) for
  float32 matmuls, which would make GPU runs differ from the CPU runs and the float64 references the
  tests compare against. :func:`configure_jax` pins ``jax_default_matmul_precision`` to "highest"
  there; on CPU nothing is changed (XLA's CPU float32 products are already full precision).
- Several processes on one GPU (``--jobs``, dask workers): JAX preallocates 75 % of the GPU's memory
  per process unless ``XLA_PYTHON_CLIENT_PREALLOCATE=false``; :func:`worker_env` gives the worker
  environment with that default (a value the user set is kept).
"""

from __future__ import annotations

import os

# backend (jax.default_backend()) -> jax_default_matmul_precision pinned there
MATMUL_PRECISION = {"gpu": "highest"}
# environment variables for worker processes that may share an accelerator: name -> default
WORKER_ENV = {"XLA_PYTHON_CLIENT_PREALLOCATE": "false"}


def configure_jax() -> str | None:
    """Pin the matmul precision for the current backend (see module docstring); idempotent.
    Returns the precision set, or None when the backend needs none."""
    import jax

    precision = MATMUL_PRECISION.get(jax.default_backend())
    if precision is not None and jax.config.jax_default_matmul_precision != precision:
        jax.config.update("jax_default_matmul_precision", precision)
    return precision


def worker_env(environ=None) -> dict[str, str]:
    """:data:`WORKER_ENV`, with the values already set in ``environ`` (default ``os.environ``) kept."""
    environ = os.environ if environ is None else environ
    return {name: environ.get(name, default) for name, default in WORKER_ENV.items()}
