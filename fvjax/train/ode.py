"""Neural-ODE training (seed 003): integrate dv/dt = GNN(v, e(t)) with diffrax over S frames.

The stimulus is piecewise constant (frame k over [k dt, (k+1) dt)), so each frame interval is solved
separately with its frame's stimulus (fixed-step solvers: one step per frame). ``ode_adjoint``
chooses backsolve (O(1) memory, gradient of the adjoint ODE) or checkpointed backpropagation through
the solver (exact gradient of the discrete solve). ``ode_state_clamp`` c > 0: the vector field sees
clip(v, -c, c) (the reference stores the key but never applies it).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .. import model as M
from .losses import Coefficients, SeqBatch, l2, regularizers, stimulus


def _tableau(c, b, a):
    import diffrax

    return diffrax.ButcherTableau(c=np.asarray(c), b_sol=np.asarray(b), b_error=np.zeros(len(b)),
                                  a_lower=tuple(np.asarray(row) for row in a))


def _fixed_solver(name: str, tableau, order: int):
    import diffrax

    return type(name, (diffrax.AbstractERK,), {
        "tableau": tableau, "__annotations__": {},
        "interpolation_cls": diffrax.ThirdOrderHermitePolynomialInterpolation.from_k,
        "order": lambda self, terms: order})


# torchdiffeq method name -> diffrax solver factory (rk4: classic 3/8-free RK4; heun3: Heun's 3rd order)
SOLVERS = {
    "dopri5": lambda dx: dx.Dopri5(),
    "euler": lambda dx: dx.Euler(),
    "midpoint": lambda dx: dx.Midpoint(),
    "rk4": lambda dx: _fixed_solver("RK4", _tableau([0.5, 0.5, 1.0], [1 / 6, 1 / 3, 1 / 3, 1 / 6],
                                                    [[0.5], [0.0, 0.5], [0.0, 0.0, 1.0]]), 4)(),
    "heun3": lambda dx: _fixed_solver("Heun3", _tableau([1 / 3, 2 / 3], [0.25, 0.0, 0.75], [[1 / 3], [0.0, 2 / 3]]), 3)(),
}
ADAPTIVE = {"dopri5"}   # solvers stepped by a PID controller at (rtol, atol); the others take one step per frame


def solver(method: str):
    """diffrax solver for a torchdiffeq method name (see :data:`SOLVERS`)."""
    import diffrax

    if method not in SOLVERS:
        raise ValueError(f"ode_method {method!r}: expected one of {', '.join(SOLVERS)}")
    return SOLVERS[method](diffrax)


class ODEConfig(NamedTuple):
    """Static solver choices (hashable)."""

    method: str = "dopri5"
    rtol: float = 1e-4
    atol: float = 1e-5
    adjoint: bool = True
    state_clamp: float = 10.0
    max_steps: int = 256    # per frame interval


def integrate(params, spec: M.ModelSpec, graph: M.Graph, v0, stim_seq, dt: float, oc: ODEConfig):
    """v(S dt) (B, N) from v0 (B, N) under the input stim_seq (B, S, n_in).

    One diffrax solve per frame interval [k dt, (k+1) dt] with that frame's stimulus held fixed (a
    ``lax.scan`` over frames): every stage of every step sees the right frame, including the stages
    at the end of an interval, and the adaptive solver never steps across a stimulus jump."""
    import diffrax

    def field(t, v, args):   # everything traced goes through args (backsolve cannot see closures)
        p, stim, g = args
        v_in = jnp.clip(v, -oc.state_clamp, oc.state_clamp) if oc.state_clamp > 0 else v
        return M.apply(p, spec, g, v_in, stim)[0]

    term, method = diffrax.ODETerm(field), solver(oc.method)
    controller = (diffrax.PIDController(rtol=oc.rtol, atol=oc.atol) if oc.method in ADAPTIVE
                  else diffrax.ConstantStepSize())
    adjoint = diffrax.BacksolveAdjoint(stepsize_controller=controller) if oc.adjoint else diffrax.RecursiveCheckpointAdjoint()

    def frame(v, stim):
        sol = diffrax.diffeqsolve(term, method, t0=0.0, t1=dt, dt0=dt, y0=v, args=(params, stim, graph),
                                  stepsize_controller=controller, saveat=diffrax.SaveAt(t1=True),
                                  adjoint=adjoint, max_steps=oc.max_steps)
        return sol.ys[-1], None

    return jax.lax.scan(frame, v0, jnp.swapaxes(stim_seq, 0, 1))[0]


def ode_loss(params, spec, graph, batch: SeqBatch, xnorm, c: Coefficients, key, dt: float, noise_std: float,
             oc: ODEConfig):
    """||(v_hat(k+S) - v(k+S)) / (dt S)||_2 + regularisers, v_hat from the ODE solve (+ noise)."""
    n_steps = batch.stimulus.shape[1]
    stim = stimulus(params, spec, graph, batch.stimulus, batch.frame)
    v_hat = integrate(params, spec, graph, batch.voltage[:, 0], stim, dt, oc)
    if noise_std > 0:
        v_hat = v_hat + noise_std * jax.random.normal(key, v_hat.shape, v_hat.dtype)
    data = l2((v_hat - batch.voltage[:, -1]) / (dt * n_steps))
    terms = regularizers(params, spec, batch.voltage[0, 0], xnorm, c)
    return data + sum(terms.values()), {"data": data, **terms}
