"""Seed-indexed ground-truth "models" that need no trained checkpoint.

``flyvis_initial``: flyvis's own starting values (stable but nearly silent past the first synapse).

``calibrated_prior``: the default ground truth. Per seed:

1. tau per type ~ log-uniform over the trained range [0.0194, 0.3163] s; V_rest per type ~ N(0.5, 0.15).
2. Relative synapse strengths ~ lognormal(0, 1) per edge type, normalised so every target type receives
   a total mean |input weight| of 0.7 (stable, but nearly silent).
3. Calibration: Adam on the 604 log-strengths through the differentiable simulator (BPTT over 250
   noise-free frames of natural-image movies after a grey steady state) so that each type's temporal std
   matches a seeded target ~ log-uniform[0.1, 0.4] (median ~0.2, like trained model 000), about 20% of
   voltages sit below 0 (the ReLU rectifies), and |v| stays below 4.
4. Stability guarantee: all strengths are scaled down until the spectral radius of the Euler-step Jacobian at
   the steady state is <= 0.95.

Results are cached per seed in the fvjax cache folder (``priors/``); see docs/groundtruth.md.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import scipy.sparse as sp
import scipy.sparse.linalg as sla

from ..connectome import Connectome, cache_dir
from .tables import GroundTruth, from_tables

TAU_RANGE = (0.0194, 0.3163)  # trained flyvis model 000 range [s]


@dataclass(frozen=True)
class PriorSpec:
    """Knobs of the calibrated prior (defaults are the documented ones)."""

    V_rest_mean: float = 0.5
    V_rest_std: float = 0.15
    strength_log_std: float = 1.0
    initial_gain: float = 0.7
    tstd_range: tuple[float, float] = (0.1, 0.4)
    rectified_fraction: float = 0.2
    v_bound: float = 4.0
    n_iter: int = 150
    learning_rate: float = 0.03
    window: int = 250
    burn_in: int = 50
    jacobian_max: float = 0.95
    dt: float = 0.02
    tau_clamp: bool = False

    def key(self, seed: int, conn: Connectome) -> str:
        text = repr((sorted(asdict(self).items()), seed, conn.extent, conn.n_edges, "v3"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def flyvis_initial(conn: Connectome, seed: int = 0) -> GroundTruth:
    """flyvis's initial values: tau 0.05, V_rest ~ N(0.5, 0.05) per type (numpy draw, not torch's),
    syn_strength = 0.01 / mean n_syn over each edge type's edges. Nearly silent past the first synapse."""
    rng = np.random.default_rng(seed)
    mean_count = (np.bincount(conn.edge_type, weights=conn.edge_n_syn, minlength=conn.n_edge_types)
                  / np.bincount(conn.edge_type, minlength=conn.n_edge_types))
    return from_tables(conn, np.full(conn.n_types, 0.05), rng.normal(0.5, 0.05, conn.n_types),
                       0.01 / mean_count)


def sample_tables(conn: Connectome, seed: int, spec: PriorSpec = PriorSpec()):
    """Uncalibrated draw: (tau_per_type, V_rest_per_type, syn_strength, tstd_target_per_type)."""
    rng = np.random.default_rng(seed)
    lo, hi = np.log(TAU_RANGE[0]), np.log(TAU_RANGE[1])
    tau = np.exp(rng.uniform(lo, hi, conn.n_types))
    v_rest = rng.normal(spec.V_rest_mean, spec.V_rest_std, conn.n_types)
    rel = rng.lognormal(0.0, spec.strength_log_std, conn.n_edge_types)
    n_target_nodes = np.bincount(conn.node_type, minlength=conn.n_types)[conn.edge_type_dst_type]
    count_per_target = np.bincount(conn.edge_type, weights=conn.edge_n_syn,
                                   minlength=conn.n_edge_types) / n_target_nodes
    total = np.bincount(conn.edge_type_dst_type, weights=rel * count_per_target, minlength=conn.n_types)
    strength = spec.initial_gain * rel / total[conn.edge_type_dst_type]
    t_lo, t_hi = np.log(spec.tstd_range[0]), np.log(spec.tstd_range[1])
    target = np.exp(rng.uniform(t_lo, t_hi, conn.n_types))
    return tau, v_rest, strength, target


def calibration_movie(conn: Connectome, n_frames: int, seed: int) -> np.ndarray:
    """Natural-image movies (`natural`, training images only; the calibration stimulus): (n_frames, n_hex)."""
    from ..stimulus.movies import NATURAL_IMAGES, load_natural_image, natural_sequence

    rng = np.random.default_rng([seed, 2])
    images = {}
    out, total = [], 0
    while total < n_frames:
        name = NATURAL_IMAGES[int(rng.integers(12))]
        images.setdefault(name, load_natural_image(name))
        out.append(natural_sequence(images[name], rng, int(rng.integers(50, 81)), conn.extent))
        total += len(out[-1])
    return np.concatenate(out)[:n_frames]


def _rollout(log_strength, static, stim, spec: PriorSpec, n_grey: int = 100):
    """Noise-free voltages (n_grey + T, N) from V_rest: grey steady state, then ``stim``.

    The ground-truth ODE (:func:`fvjax.simulate.rhs`), softly bounded at +-10 so a diverging
    candidate cannot produce inf/NaN."""
    from ..simulate import Circuit, rhs

    sign_count, edge_type, src, dst, tau, v_rest, input_index = static
    circuit = Circuit(sign_count * jnp.exp(log_strength)[edge_type], tau, v_rest, src, dst, input_index)

    def step(v, x):
        v_next = v + spec.dt * rhs(circuit, v, x, spec.dt, spec.tau_clamp)
        return 10.0 * jnp.tanh(v_next / 10.0), v

    grey = jnp.full((n_grey, stim.shape[1]), 0.5, stim.dtype)
    _, volts = jax.lax.scan(step, v_rest, jnp.concatenate([grey, stim]))
    return circuit, volts


def _growth_rate(circuit, v_star, probe, spec: PriorSpec, n_power: int = 60):
    """Differentiable estimate of the Euler-Jacobian spectral radius at ``v_star``:
    (|J^k x| / |x|)^(1/k) by power iteration (an upper-ish bound for non-normal J)."""
    from ..simulate import effective_tau

    src, dst = circuit.edge_src, circuit.edge_dst
    gain = circuit.W * (v_star[src] > 0)
    a = spec.dt / effective_tau(circuit, spec.dt, spec.tau_clamp)

    def apply(x, _):
        jx = x + a * (-x + jax.ops.segment_sum(gain * x[src], dst, num_segments=x.shape[0]))
        norm = jnp.linalg.norm(jx)
        return jx / norm, jnp.log(norm)

    _, logs = jax.lax.scan(apply, probe / jnp.linalg.norm(probe), None, length=n_power)
    return jnp.exp(jnp.mean(logs[n_power // 2:]))


def _calibration_loss(log_strength, static, node_type, counts, target, stim, probe, spec: PriorSpec,
                      n_grey: int = 100):
    circuit, volts = _rollout(log_strength, static, stim, spec, n_grey)
    radius = _growth_rate(circuit, volts[n_grey - 1], probe, spec)
    volts = volts[n_grey + spec.burn_in:]
    var_type = jax.ops.segment_sum(volts.var(0), node_type, counts.shape[0]) / counts
    l_std = jnp.mean((jnp.log(jnp.sqrt(var_type + 1e-8)) - jnp.log(target)) ** 2)
    l_rect = (jnp.mean(jax.nn.sigmoid(-volts / 0.05)) - spec.rectified_fraction) ** 2
    l_bound = jnp.mean(jax.nn.relu(jnp.abs(volts) - spec.v_bound) ** 2)
    l_radius = jax.nn.relu(radius - (spec.jacobian_max - 0.02)) ** 2
    return l_std + 10.0 * l_rect + 10.0 * l_bound + 100.0 * l_radius


def calibrate_strength(conn: Connectome, tau, v_rest, strength, target, seed: int,
                       spec: PriorSpec = PriorSpec(), progress: bool = True) -> np.ndarray:
    """Adam on log syn_strength so per-type activity matches ``target`` (see module docstring)."""
    from tqdm.auto import tqdm

    static = (jnp.asarray(conn.edge_type_sign[conn.edge_type] * conn.edge_n_syn), jnp.asarray(conn.edge_type),
              jnp.asarray(conn.edge_src), jnp.asarray(conn.edge_dst),
              jnp.asarray(tau[conn.node_type], jnp.float32),
              jnp.asarray(v_rest[conn.node_type], jnp.float32), jnp.asarray(conn.input_node_index.reshape(-1)))
    counts = jnp.asarray(np.bincount(conn.node_type, minlength=conn.n_types), jnp.float32)
    frames = calibration_movie(conn, (spec.window + spec.burn_in) * 8, seed)
    movie = jnp.asarray(np.tile(frames, (1, conn.input_node_index.shape[0])))
    grad_fn = jax.jit(jax.value_and_grad(partial(_calibration_loss, spec=spec)))
    opt = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(spec.learning_rate))
    params = jnp.log(jnp.asarray(np.maximum(strength, 1e-12), jnp.float32))
    state = opt.init(params)
    probe = jax.random.normal(jax.random.PRNGKey(seed), (conn.n_nodes,))
    n_windows = movie.shape[0] // (spec.window + spec.burn_in)
    bar = tqdm(range(spec.n_iter), desc=f"calibrating prior seed {seed}", disable=not progress)
    for it in bar:
        start = (it % n_windows) * (spec.window + spec.burn_in)
        loss, grad = grad_fn(params, static, jnp.asarray(conn.node_type), counts, jnp.asarray(target),
                             movie[start:start + spec.window + spec.burn_in], probe)
        if not (np.isfinite(float(loss)) and bool(jnp.isfinite(grad).all())):
            continue  # a diverging window: skip the step, the bound term pulls back on the next ones
        updates, state = opt.update(grad, state)
        params = optax.apply_updates(params, updates)
        bar.set_postfix(loss=f"{float(loss):.3f}")
    return np.exp(np.asarray(params, np.float64)).astype(np.float32)


def jacobian_radius(conn: Connectome, gt: GroundTruth, v: np.ndarray, dt: float = 0.02,
                    tau_clamp: bool = False) -> float:
    """Spectral radius of the Euler map's Jacobian I + dt/tau (-I + W diag[v > 0]) at state ``v``."""
    active = (np.asarray(v) > 0).astype(np.float64)
    Wm = sp.csr_matrix((gt.W.astype(np.float64) * active[conn.edge_src], (conn.edge_dst, conn.edge_src)),
                       shape=(conn.n_nodes, conn.n_nodes))
    tau = np.maximum(gt.tau, dt) if tau_clamp else gt.tau
    a = dt / tau.astype(np.float64)
    J = sp.diags(1.0 - a) + sp.diags(a) @ Wm
    v0 = np.random.default_rng(0).standard_normal(conn.n_nodes)
    vals = sla.eigs(J, k=1, which="LM", return_eigenvectors=False, tol=1e-6, maxiter=20000, v0=v0)
    return float(np.abs(vals).max())


def steady_radius(conn: Connectome, gt: GroundTruth, spec: PriorSpec) -> float:
    from ..simulate import make_circuit, steady_state

    v = steady_state(make_circuit(conn, gt), n_steps=100, dt=spec.dt, tau_clamp=spec.tau_clamp)
    if not np.isfinite(np.asarray(v)).all():
        return np.inf
    return jacobian_radius(conn, gt, np.asarray(v), spec.dt, spec.tau_clamp)


def cap_jacobian(conn: Connectome, tau, v_rest, strength, spec: PriorSpec) -> np.ndarray:
    """Scale ``strength`` down (bisection on a global factor) until the steady-state radius <= max."""
    radius = lambda s: steady_radius(conn, from_tables(conn, tau, v_rest, strength * s), spec)  # noqa: E731
    if radius(1.0) <= spec.jacobian_max:
        return strength
    lo, hi = 0.0, 1.0
    for _ in range(12):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if radius(mid) <= spec.jacobian_max else (lo, mid)
    return (strength * lo).astype(np.float32)


def prior_cache_path(conn: Connectome, seed: int, spec: PriorSpec = PriorSpec()) -> Path:
    return cache_dir() / "priors" / f"prior_seed{seed}_{spec.key(seed, conn)}.npz"


PACKAGED = Path(__file__).with_name("priors.npz")


def packaged_prior(conn: Connectome, seed: int, spec: PriorSpec = PriorSpec()) -> GroundTruth | None:
    """The precomputed prior shipped with fvjax for this (seed, spec, extent), if there is one."""
    if not PACKAGED.is_file():
        return None
    with np.load(PACKAGED) as d:
        name = f"seed{seed}_{spec.key(seed, conn)}"
        if f"{name}_tau" not in d:
            return None
        return from_tables(conn, d[f"{name}_tau"], d[f"{name}_V_rest"], d[f"{name}_syn_strength"])


def write_packaged_priors(conn: Connectome, seeds, spec: PriorSpec = PriorSpec(), path: Path = PACKAGED) -> None:
    """Calibrate (or take from cache) ``seeds`` and store them in the package file (maintainers)."""
    arrays = {}
    for seed in seeds:
        gt = calibrated_prior(conn, seed, spec)
        name = f"seed{seed}_{spec.key(seed, conn)}"
        arrays.update({f"{name}_tau": gt.tau_per_type, f"{name}_V_rest": gt.V_rest_per_type,
                       f"{name}_syn_strength": gt.syn_strength})
    np.savez_compressed(path, **arrays)


def calibrated_prior(conn: Connectome, seed: int = 0, spec: PriorSpec = PriorSpec(),
                     cache: bool = True, progress: bool = True) -> GroundTruth:
    """The default ground-truth model for ``seed`` (see module docstring).

    Looked up in the package's precomputed priors, then the user cache; else calibrated and cached."""
    shipped = packaged_prior(conn, seed, spec) if cache else None
    if shipped is not None:
        return shipped
    path = prior_cache_path(conn, seed, spec)
    if cache and path.is_file():
        with np.load(path) as d:
            return from_tables(conn, d["tau_per_type"], d["V_rest_per_type"], d["syn_strength"])
    tau, v_rest, strength, target = sample_tables(conn, seed, spec)
    strength = calibrate_strength(conn, tau, v_rest, strength, target, seed, spec, progress)
    strength = cap_jacobian(conn, tau, v_rest, strength, spec)
    gt = from_tables(conn, tau, v_rest, strength)
    if cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.stem + f".tmp{os.getpid()}.npz")
        np.savez(tmp, tau_per_type=gt.tau_per_type, V_rest_per_type=gt.V_rest_per_type,
                 syn_strength=gt.syn_strength, seed=seed)
        os.replace(tmp, path)
    return gt
