"""Typed, frozen configuration loaded from YAML.

Key names follow the flyvis-gnn reference (``simulation.n_frames``, ``delta_t``, ``noise_model_level``,
...), so a reference YAML can be loaded. Rules:

* an unknown key is an error naming the section, the key and the close matches;
* a key the reference accepts but never uses (listed in ``INERT_KEYS``) is accepted and reported
  by :func:`load_config` in ``Config.ignored`` (never silently);
* out-of-range values and wrong types are errors naming the key.
"""

from __future__ import annotations

import contextvars
import dataclasses
import difflib
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml


class ConfigError(ValueError):
    """A configuration key is unknown, missing, of the wrong type or out of range."""


def _opt(default, *, lo=None, hi=None, choices=None, doc=""):
    return field(default=default, metadata={"lo": lo, "hi": hi, "choices": choices, "doc": doc})


SYNTHETIC_MODELS = ("tanh", "PDE_N2")
# synthetic-network keys only one synthetic model uses (the others refuse a non-default value)
SYNTHETIC_MODEL_KEYS = {
    "tanh": ("spectral_radius", "tau_range", "V_rest_range", "low_rank", "Dale_law", "Dale_law_factor",
             "connectivity_filling_factor"),
    "PDE_N2": ("PDE_N2_params",),
}
CONNECTIVITY_TYPES = ("Lorentz", "Gaussian")   # synthetic W entries (fvjax.networks.synthetic.ENTRY_DRAWS)
VISUAL_INPUTS = ("natural", "scenes", "DAVIS", "gratings", "bars", "flashes", "noise", "mixed")


@dataclass(frozen=True)
class SimulationConfig:
    """Ground-truth data generation (reference section ``simulation``)."""

    extent: int = _opt(8, lo=1, hi=30, doc="hex lattice radius of the flyvis network")
    n_frames: int = _opt(64000, lo=1, doc="training frames to generate")
    n_test_frames: int = _opt(0, lo=0, doc="test frames; 0 = one pass over DAVIS test videos, "
                                            "or n_frames // 8 for generated stimuli")
    delta_t: float = _opt(0.02, lo=1e-5, hi=1.0, doc="Euler step [s]")
    noise_model_level: float = _opt(0.05, lo=0.0, doc="process noise std added to v after each step")
    measurement_noise_level: float = _opt(0.0, lo=0.0, doc="sigma_m: training reads v + n(t) and the noisy "
                                                           "derivative (the later reference); 0 in the baseline recipe")
    tau_clamp: bool = _opt(False, doc="use max(tau, dt) like flyvis (True) or raw tau like flyvis-gnn")
    steady_state_time: float = _opt(2.0, lo=0.0, doc="grey pre-roll [s] giving the initial state")
    grey: float = _opt(0.5, lo=0.0, hi=1.0, doc="luminance of the pre-roll")
    seed: int = _opt(0, lo=0, doc="stimulus draw, augmentation and noise (and the prior's draw, for 'prior')")
    ground_truth: str = _opt("flyvis_000", doc="'flyvis_000' (trained flyvis model 000, bundled; the seed never "
                                               "changes it), 'prior' (calibrated, seed-indexed), 'flyvis_initial', "
                                               "a flyvis model folder, or a .npz / flyvis checkpoint path")
    visual_input_type: str = _opt("scenes", choices=VISUAL_INPUTS,
                                  doc="'scenes' (procedural textures, moving objects, ego-motion; the default "
                                      "since 2026-12-03), 'natural' (pans over 12 stills, 4 more for testing; "
                                      "the default before), "
                                      "'DAVIS' (datavis_roots) or a controlled kind (docs/stimulus.md)")
    datavis_roots: tuple[str, ...] = _opt((), doc="DAVIS folders (containing JPEGImages); first existing")
    skip_short_videos: bool = _opt(True)
    min_video_frames: int = _opt(50, lo=1)
    max_video_frames: int = _opt(80, lo=1)
    center_crop_fraction: float = _opt(0.6, lo=0.01, hi=1.0)
    sequence_frames: tuple[int, int] = _opt((50, 80), doc="length range of generated sequences")
    noise_hold_frames: int = _opt(1, lo=1, doc="white-noise stimulus: frames each value is held")
    blank_prefix_fraction: float = _opt(0.0, lo=0.0, hi=0.95, doc="the first floor(f len) frames of every training "
                                        "sequence are dark (input 0), so every neuron relaxes towards its rest "
                                        "(the later reference's remedy for V_rest; docs/stimulus.md); test movies unchanged")
    scene_objects: tuple[int, int] = _opt((1, 5), lo=0, doc="scenes stimulus: range of moving objects per sequence")
    scene_augment: bool = _opt(True, doc="scenes stimulus: DAVIS flip/rotation of each sequence")
    scene_luminance: tuple[float, float] = _opt((0.45, 0.5), lo=0.0, doc="scenes stimulus: (median, sigma) of "
                                                "the log-normal mean luminance of a sequence, clipped to "
                                                "[0.02, 0.75] (until 2026-12-03: (0.3, 0.7))")
    scene_contrast: tuple[float, float] = _opt((0.3, 1.0), lo=0.0, doc="scenes stimulus: range of the uniform "
                                               "RMS contrast of a sequence (until 2026-12-03: (0.1, 0.6))")
    chunk_frames: int = _opt(2000, lo=1, doc="frames simulated per jit call / written per chunk")
    data_cache: str = _opt("", doc="folder of shared datasets (fvjax.datacache); \"\" = datasets/ next to "
                           "the run folders")
    # flyvis: reference consistency checks (must match the built network when given);
    # synthetic: the network's size (None = 1000 neurons, 4 types, 0 driven neurons)
    n_neurons: int | None = _opt(None, lo=2)
    n_input_neurons: int | None = _opt(None, lo=0)
    n_neuron_types: int | None = _opt(None, lo=1)
    n_edges: int | None = _opt(None)
    network: str = _opt("flyvis", choices=("flyvis", "synthetic"),
                        doc="flyvis connectome, or a synthetic all-to-all network (seed 003; fvjax.networks.synthetic)")
    # synthetic networks only (docs/synthetic.md)
    connectivity_type: str = _opt("Lorentz", choices=CONNECTIVITY_TYPES, doc="distribution of W entries")
    connectivity_filling_factor: float = _opt(1.0, lo=0.0, hi=1.0, doc="fraction of nonzero off-diagonal W")
    low_rank: int = _opt(0, lo=0, doc="W = W_L W_R of this rank; 0 = full rank")
    Dale_law: bool = _opt(False, doc="one sign per presynaptic neuron")
    Dale_law_factor: float = _opt(0.5, lo=0.0, hi=1.0, doc="fraction of excitatory neurons under Dale's law")
    spectral_radius: float = _opt(2.0, lo=0.0, doc="W is rescaled to this largest |eigenvalue|")
    tau_range: tuple[float, float] = _opt((0.1, 0.4), lo=1e-4, doc="per-type tau, geometric spacing")
    V_rest_range: tuple[float, float] = _opt((-0.2, 0.2), doc="per-type V_rest, linear spacing")
    input_drive_std: float = _opt(1.0, lo=0.0, doc="driven neurons: std of the Ornstein-Uhlenbeck drive")
    input_drive_tau: float = _opt(0.2, lo=1e-4, doc="driven neurons: correlation time [s] of the drive")
    synthetic_model: str = _opt("tanh", choices=SYNTHETIC_MODELS,
                                doc="tanh: tau dv/dt = -v + V_rest + W tanh(v); PDE_N2: the reference's "
                                    "du/dt = -c u + s tanh(u) + g W tanh(u) (docs/synthetic.md)")
    PDE_N2_params: tuple[tuple[float, float, float], ...] = _opt(
        ((10.0, 1.0, 1.0), (10.0, 2.0, 1.0), (10.0, 1.0, 2.0), (10.0, 2.0, 2.0)),
        doc="PDE_N2: (g, s, c) of each type (the reference's simulation.params); one row per type")

    def __post_init__(self):
        if not 0.02 <= self.scene_luminance[0] <= 0.75:
            raise ConfigError(f"simulation.scene_luminance: median {self.scene_luminance[0]} must lie in "
                              f"[0.02, 0.75], where the mean luminance is clipped")
        for key in ("scene_objects", "scene_contrast"):
            lo, hi = getattr(self, key)
            if lo > hi:
                raise ConfigError(f"simulation.{key}: ({lo}, {hi}) must be (lo, hi) with lo <= hi")
        if self.network != "synthetic":
            return
        for model, keys in SYNTHETIC_MODEL_KEYS.items():
            if model == self.synthetic_model:
                continue
            for key in keys:
                if getattr(self, key) != _DEFAULTS[key]:
                    raise ConfigError(f"simulation.{key} is used by synthetic_model {model} only, not by "
                                      f"{self.synthetic_model}; remove it (or set simulation.synthetic_model: {model})")
        k = self.n_neuron_types
        if self.synthetic_model == "PDE_N2" and k is not None and k != len(self.PDE_N2_params):
            raise ConfigError(f"simulation.PDE_N2_params has {len(self.PDE_N2_params)} rows (g, s, c) but "
                              f"simulation.n_neuron_types is {k}; give one row per type")


_DEFAULTS = {f.name: f.default for f in dataclasses.fields(SimulationConfig)}


# graph_model.update_type -> (fvjax.model update rule, f_theta inputs besides the embedding); "none" is
# the reference's spelling of the additive rule
UPDATE_TYPES = {"generic": ("generic", 3), "additive": ("additive", 1), "none": ("additive", 1), "gain": ("gain", 1)}
# update rule -> does the message enter the prediction linearly (times a per-neuron factor at most), so that
# with the MLPs fixed the prediction is linear in W and a per-neuron constant (training.refit_at_end, refit_every)
MESSAGE_LINEAR = {"generic": False, "additive": True, "gain": True}
# graph_model.g_phi_input -> does g_phi see the source's embedding
G_PHI_INPUTS = {"voltage_embedding": True, "voltage": False}


@dataclass(frozen=True)
class GraphModelConfig:
    """GNN architecture (reference section ``graph_model``)."""

    signal_model_name: str = _opt("flyvis_A", choices=("flyvis_A", "flyvis_B", "dense"),
                                  doc="dense: all-to-all W as one matrix (synthetic networks)")
    embedding_dim: int = _opt(2, lo=1)
    hidden_dim: int = _opt(80, lo=1, doc="g_phi width")
    n_layers: int = _opt(3, lo=2, doc="g_phi Linear layers")
    hidden_dim_update: int = _opt(80, lo=1, doc="f_theta width")
    n_layers_update: int = _opt(3, lo=2, doc="f_theta Linear layers")
    g_phi_positive: bool = _opt(True, doc="square g_phi's output")
    MLP_activation: str = _opt("relu", choices=("relu", "tanh", "sigmoid", "leaky_relu", "soft_relu", "none"))
    low_rank_factorization: bool = _opt(False, doc="learn W = W_L W_R (dense model only, seed 003)")
    low_rank: int = _opt(20, lo=1, doc="rank of W_L W_R when low_rank_factorization")
    field_type: str = _opt("none", choices=("none", "visual"),
                           doc="visual: learn the photoreceptor input as a SIREN of (x, y, t) (seed 002)")
    hidden_dim_nnr_f: int = _opt(128, lo=1)
    n_layers_nnr_f: int = _opt(5, lo=0, doc="hidden sine layers after the first (so n + 1 sine layers)")
    omega_f: float = _opt(80.0, lo=0.0, doc="SIREN frequency omega_0 of every sine layer")
    nnr_f_xy_period: float = _opt(1.0, lo=1e-9)
    nnr_f_T_period: float = _opt(1.0, lo=1e-9, doc="frames per 2 pi of the time input (INR recipe: 64000)")
    input_size_nnr_f: int = _opt(3, lo=3, hi=3)
    output_size_nnr_f: int = _opt(1, lo=1, hi=1)
    outermost_linear_nnr_f: bool = _opt(True, choices=(True,), doc="only a linear last layer is implemented")
    aggr_type: str = _opt("add", choices=("add",))
    update_type: str = _opt("generic", choices=tuple(UPDATE_TYPES),
                            doc="generic: dv = f_theta([v, a, msg, e]); additive: dv = f_theta([v, a]) + msg + e "
                                "(the reference's signal GNN; its spelling: none); gain (fvjax's own): "
                                "dv = f_theta([v, a]) + (1 + f_gain(a)) (msg + e)")
    g_phi_input: str = _opt("voltage_embedding", choices=tuple(G_PHI_INPUTS),
                            doc="g_phi sees [v_j, a_j] (flyvis) or v_j alone (the reference's PDE_N2 GNN, "
                                "its input_size: 1)")
    # reference consistency checks: must equal the sizes implied by embedding_dim when given
    input_size: int | None = _opt(None)
    input_size_update: int | None = _opt(None)
    output_size: int | None = _opt(None, lo=1, hi=1)

    def __post_init__(self):
        if self.low_rank_factorization and self.signal_model_name != "dense":
            raise ConfigError("graph_model.low_rank_factorization needs signal_model_name: dense "
                              f"(got {self.signal_model_name})")
        pairwise = self.signal_model_name == "flyvis_B"
        if pairwise and not G_PHI_INPUTS[self.g_phi_input]:
            raise ConfigError("graph_model.g_phi_input: voltage needs signal_model_name flyvis_A or dense "
                              "(flyvis_B's g_phi sees both ends' embeddings)")
        edge_in = 2 + 2 * self.embedding_dim if pairwise else 1 + self.embedding_dim * G_PHI_INPUTS[self.g_phi_input]
        update_in = UPDATE_TYPES[self.update_type][1] + self.embedding_dim
        for key, want, fix in (("input_size", edge_in, "graph_model.g_phi_input"),
                               ("input_size_update", update_in, "graph_model.update_type")):
            given = getattr(self, key)
            if given is not None and given != want:
                raise ConfigError(f"graph_model.{key} = {given}, but {self.signal_model_name} with "
                                  f"embedding_dim {self.embedding_dim}, g_phi_input {self.g_phi_input} and "
                                  f"update_type {self.update_type} needs {want}; fix it or {fix}")


SCHEDULERS = ("none", "cosine_warm_restarts", "linear_warmup_cosine")
# annealing multiplier forms (implemented in fvjax.train.losses.ANNEALING) and g_phi_diff perturbations
ANNEALING_FORMS = ("exponential", "power")
PERTURBATIONS = ("multiplicative", "additive")
# how coeff_g_phi_linear takes g'(v) (implemented in fvjax.train.losses.regularizers, in this order)
LINEAR_SLOPES = ("secant", "tangent")
# training.sparsity: the reference's epoch-end steps (implemented in fvjax.train.snap.SNAPS)
SPARSITY_MODES = ("none", "replace_embedding_function")


@dataclass(frozen=True)
class TrainingConfig:
    """Training (reference section ``training``). Defaults: the recipe that produced the reference's
    model-000 baseline (docs/training.md; in the reference's exploration log it is "Node 21")."""

    n_epochs: int = _opt(1, lo=1)
    batch_size: int = _opt(2, lo=1)
    data_augmentation_loop: int = _opt(20, lo=1, doc="Niter = int(T * aug // batch_size * 0.2)")
    n_iter: int = _opt(0, lo=0, doc="iterations per epoch; 0 = the reference formula above")
    seed: int = _opt(0, lo=0)
    lr: float = _opt(1.2e-3, lo=0.0, doc="g_phi learning rate")
    lr_W: float = _opt(6e-4, lo=0.0)
    lr_W_warmup_iters: int = _opt(0, lo=0, doc="fvjax's own: W's learning rate rises linearly from 0 to lr_W over "
                                  "this many iterations, so f_theta takes up each neuron's constant input before "
                                  "the weights of almost constant sources can (docs/drift.md section 3); it multiplies "
                                  "any lr_scheduler (whose own warm-up then compounds with it); 0 = off")
    lr_embedding: float = _opt(1.55e-3, lo=0.0)
    lr_bias: float = _opt(0.0, lo=0.0, doc="fvjax's own: > 0 adds a free per-neuron constant input b_i to the "
                          "message (msg_i + b_i, initialised to 0), learned at this rate and read into tau/V_rest's "
                          "probes, so constants need not be taken up by the weights of almost constant sources "
                          "(docs/drift.md section 3); 0 = no such parameter")
    centre_W: bool = _opt(False, doc="fvjax's own, needs lr_bias > 0: Adam steps W and b in centred coordinates, "
                          "b_c = b + sum_j W_ij mu_j with mu_j source j's mean ReLU(v_j) over the training frames, so a "
                          "weight's step moves only the varying part of its input and the per-neuron constant is b's "
                          "(the same model; docs/drift.md section 3); edge-list W, not with ema_decay or --vmap")
    learning_rate_NNR_f: float = _opt(1e-4, lo=0.0, doc="SIREN visual field learning rate")
    learning_rate_update_start: float = _opt(0.0, lo=0.0, doc="f_theta learning rate; 0 = lr")
    w_init_mode: str = _opt("zeros", choices=("zeros", "randn", "randn_scaled"),
                            doc="baseline recipe: zeros (the later reference recipe: randn_scaled)")
    w_init_scale: float = _opt(1.0, lo=0.0)
    coeff_W_L1: float = _opt(3.5e-5, lo=0.0)
    coeff_W_L2: float = _opt(2.5e-6, lo=0.0, doc="c ||W||_2; applies together with W_L1 (unlike the reference)")
    coeff_g_phi_diff: float = _opt(750.0, lo=0.0, doc="monotonicity of g_phi")
    g_phi_diff_perturbation: str = _opt("multiplicative", choices=tuple(PERTURBATIONS),
                                        doc="g_phi_diff compares g(v) with g(v (1 + delta)) (baseline recipe) "
                                            "or g(v + delta xnorm) (later reference)")
    g_phi_diff_delta: float = _opt(0.05, lo=0.0, doc="relative step of the g_phi_diff perturbation")
    coeff_g_phi_norm: float = _opt(0.9, lo=0.0, doc="g_phi(2 xnorm)^2 = 2 xnorm")
    coeff_g_phi_zero: float = _opt(0.0, lo=0.0, doc="fvjax's own: c ||g_phi(0, a_j)^2||_2 over the source neurons, "
                                                    "a silent source sends nothing (ReLU(0) = 0; docs/training.md)")
    coeff_g_phi_linear: float = _opt(0.0, lo=0.0, doc="fvjax's own: c ||g(v_j) - v_j g'(v_j)||_2 over the sources with "
                                                      "v_j > 0 in the batch's first frame: above 0 the message is a line "
                                                      "through the origin, as ReLU is (docs/training.md)")
    g_phi_linear_slope: str = _opt("secant", choices=LINEAR_SLOPES,
                                   doc="g'(v_j) of coeff_g_phi_linear: the secant to g_phi_diff's comparison point "
                                       "(no extra g_phi evaluation) or the tangent by forward-mode differentiation "
                                       "(until 2026-12-03; one more g_phi pass, about 1.2x the step)")
    coeff_g_phi_weight_L1: float = _opt(0.29, lo=0.0)
    coeff_g_phi_weight_L2: float = _opt(0.0, lo=0.0)
    coeff_f_theta_additive: float = _opt(0.0, lo=0.0, doc="fvjax's own: c ||f(v,m) - f(v,0) - f(0,m) + f(0,0)||_2, "
                                                          "no voltage-message coupling in f_theta (docs/training.md)")
    coeff_f_theta_zero: float = _opt(0.0, lo=0.0, doc="c ||f_theta at v = 0, msg = 0, e = 0||_2 per frame of the "
                                                     "batch (the reference's coeff_lin_phi_zero; synthetic recipe 1.0)")
    coeff_f_theta_weight_L1: float = _opt(0.5, lo=0.0)
    coeff_f_theta_weight_L2: float = _opt(0.001, lo=0.0)
    regul_annealing_rate: float = _opt(0.0, lo=0.0, doc="c * (1 - exp(-rate * epoch)); 0 = off")
    coeff_W_L1_rate: float = _opt(0.5, lo=0.0, doc="annealing rate of W_L1 (baseline: 0.5, so off in epoch 0)")
    coeff_g_phi_weight_L1_rate: float = _opt(0.5, lo=0.0, doc="annealing rate of g_phi's L1 (baseline: 0.5)")
    g_phi_weight_L1_annealing: str = _opt("power", choices=tuple(ANNEALING_FORMS),
                                          doc="power: 1 - exp(-rate**epoch), the baseline code's form "
                                              "(0.632 in epoch 0); exponential: 1 - exp(-rate * epoch)")
    coeff_f_theta_weight_L1_rate: float = _opt(0.4, lo=0.0, doc="annealing rate of f_theta L1 (baseline: 0.4)")
    grad_clip_W: float = _opt(0.0, lo=0.0, doc="max global norm of W's gradient; 0 = off")
    hold_silent_sources: bool = _opt(False, doc="fvjax's own: hold W at 0 on the edges whose source never rises "
                                      "above 0 in the training data (ReLU(v) = 0 there, so the data say nothing "
                                      "about those weights; docs/drift.md section 5); edge-list W only")
    ema_decay: float = _opt(0.0, lo=0.0, hi=0.999999, doc="fvjax's own: evaluate an exponential moving average of "
                            "the parameters spanning about 1 / (1 - decay) steps (fvjax.train.average); 0 = off")
    W_refit_every: int = _opt(0, lo=0, doc="fvjax's own: every N iterations set W to its least-squares value "
                              "given the MLPs (additive update, dense W only); 0 = off (fvjax.train.refit)")
    W_refit_frames: int = _opt(5000, lo=1, doc="training frames (evenly spread) the W refit solves over")
    W_refit_ridge: float = _opt(1e-3, lo=0.0, doc="ridge added to the W refit's Gram matrix")
    refit_at_end: bool = _opt(False, doc="fvjax's own: after the last iteration set the edge-list W and a per-neuron "
                              "constant input b to their least-squares values given the learned MLPs and "
                              "embeddings, each neuron on its own (flyvis_A, additive or gain update; "
                              "fvjax.train.refit.refit_edges; cached in RUN/refit.npz)")
    refit_every: int = _opt(0, lo=0, doc="fvjax's own: also during training, every N iterations, set the edge-list W "
                            "and the per-neuron constant b to their least-squares values (the refit_at_end solve, "
                            "same frames and ridge) and go on training from there; adds b to the model (learned at "
                            "lr_bias, 0 = moved by the refits only); 0 = off")
    refit_frames: int = _opt(4000, lo=1, doc="training frames (evenly spread) the end-of-training refit solves over")
    refit_ridge: float = _opt(1e-4, lo=0.0, doc="the end-of-training refit's ridge, relative to the mean diagonal of each "
                              "neuron's Gram matrix, towards the trained values")
    sparsity: str = _opt("none", choices=SPARSITY_MODES,
                         doc="replace_embedding_function: at the end of some epochs, cluster the neurons' f_theta "
                             "profiles, snap each embedding to its cluster's median and refit f_theta "
                             "(fvjax.train.snap; multi-epoch runs only)")
    sparsity_freq: int = _opt(4, lo=1, doc="the snap runs after epoch e (0-based) when e % freq == freq - 1 "
                              "and e < n_epochs - freq")
    cluster_distance_threshold: float = _opt(0.1, lo=0.0, doc="single-linkage distance (> 0) on the profiles' "
                                             "2-component PCA scaled to [0, 1]")
    fix_cluster_embedding: bool = _opt(True, doc="in the epoch after a snap the embeddings and g_phi do not "
                                       "learn (learning rate 0; W and f_theta do)")
    lr_scheduler: str = _opt("none", choices=SCHEDULERS)
    lr_scheduler_T0: int = _opt(1000, lo=1)
    lr_scheduler_T_mult: int = _opt(2, lo=1)
    lr_scheduler_eta_min_ratio: float = _opt(0.01, lo=0.0, hi=1.0)
    lr_scheduler_warmup_iters: int = _opt(100, lo=0)
    recurrent_training: bool = _opt(False)
    time_step: int = _opt(1, lo=1, doc="Euler steps unrolled in recurrent training")
    noise_recurrent_level: float = _opt(0.0, lo=0.0)
    recurrent_training_start_epoch: int = _opt(0, lo=0, doc="epochs of one-step training first")
    multi_start_recurrent: bool = _opt(False)
    neural_ODE_training: bool = _opt(False, doc="integrate the GNN with diffrax over time_step frames")
    ode_method: str = _opt("dopri5", choices=("dopri5", "rk4", "euler", "midpoint", "heun3"))
    ode_rtol: float = _opt(1e-4, lo=0.0, doc="adaptive solvers (dopri5) only")
    ode_atol: float = _opt(1e-5, lo=0.0, doc="adaptive solvers (dopri5) only")
    ode_adjoint: bool = _opt(True, doc="True: backsolve adjoint (O(1) memory); False: checkpointed backprop")
    ode_state_clamp: float = _opt(10.0, lo=0.0, doc="the vector field sees clip(v, -c, c); 0 = off")
    steps_per_call: int = _opt(20, lo=1, doc="training steps fused under one lax.scan")
    eval_every: int = _opt(0, lo=0, doc="grid of the in-training recovery checks, every N iterations; "
                           "0 = 10 per epoch")
    eval_budget: float = _opt(0.1, lo=0.0, doc="checks may take at most this share of the training time "
                              "(grid points are skipped otherwise); 1 = every grid point, 0 = none")
    tensorboard: bool = _opt(False, doc="also write loss and recovery curves as TensorBoard events in "
                             "RUN/tensorboard (needs tensorboardX)")

    @property
    def neuron_bias(self) -> bool:
        """Whether the model has the per-neuron constant input b (learned at lr_bias, or set by refit_every)."""
        return self.lr_bias > 0 or self.refit_every > 0

    def __post_init__(self):
        if self.recurrent_training and self.neural_ODE_training:
            raise ConfigError("training.recurrent_training and training.neural_ODE_training are both true; "
                              "choose one (Euler unrolls or an ODE solver)")
        refits = {"W_refit_every": "a refit replaces W, so the running average would mix two solutions; set one of "
                                   "them to 0",
                  "refit_at_end": "the refit solves for the last iterate's W and b, not the average's; set "
                                  "ema_decay=0 or refit_at_end=false",
                  "refit_every": "a refit replaces W and b, so the running average would mix parameters from before "
                                 "and after it; set one to 0"}
        for key, why in refits.items():
            if self.ema_decay > 0 and getattr(self, key):
                raise ConfigError(f"training.ema_decay and training.{key} are both set: {why}")
        if self.centre_W and not self.lr_bias > 0:
            raise ConfigError("training.centre_W steps W together with the per-neuron constant b, which exists only "
                              "when training.lr_bias > 0; set training.lr_bias (e.g. 3e-3) or centre_W=false")
        if self.centre_W and self.ema_decay > 0:
            raise ConfigError("training.centre_W and training.ema_decay are both set: the running average would "
                              "miss the centring's shift of b; set one of them to 0")
        if self.cluster_distance_threshold <= 0:
            raise ConfigError(f"training.cluster_distance_threshold: {self.cluster_distance_threshold!r} must be "
                              "above 0 (a distance on profiles scaled to [0, 1]; the reference uses 0.1)")
        if self.coeff_g_phi_linear > 0 and self.g_phi_linear_slope == "secant" and self.g_phi_diff_delta == 0:
            raise ConfigError("training.coeff_g_phi_linear with g_phi_linear_slope: secant takes its slope to "
                              "g_phi_diff's comparison point, but training.g_phi_diff_delta is 0, so the term would "
                              "be 0 everywhere; set g_phi_diff_delta above 0 or g_phi_linear_slope: tangent")


@dataclass(frozen=True)
class Config:
    description: str = ""
    dataset: str = ""
    simulation: SimulationConfig = field(default_factory=SimulationConfig)
    graph_model: GraphModelConfig = field(default_factory=GraphModelConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    ignored: tuple[str, ...] = ()   # reference keys accepted but unused (filled by the loader)

    def __post_init__(self):
        gm = self.graph_model
        if self.training.W_refit_every and (UPDATE_TYPES[gm.update_type][0] != "additive"
                                            or gm.signal_model_name != "dense" or gm.low_rank_factorization):
            raise ConfigError("training.W_refit_every needs graph_model.update_type: additive and "
                              "signal_model_name: dense without low_rank_factorization (the prediction must be "
                              "linear in a full W); set it to 0 or change the model")
        refits = [k for k in ("refit_at_end", "refit_every") if getattr(self.training, k)]
        if refits and (gm.signal_model_name != "flyvis_A" or not MESSAGE_LINEAR[UPDATE_TYPES[gm.update_type][0]]):
            raise ConfigError(f"training.{refits[0]} needs graph_model.signal_model_name: flyvis_A and update_type "
                              "additive or gain (the prediction must be linear in W and b); set it off or "
                              "change the model")

    def replace(self, **changes) -> "Config":
        """Copy with dotted-key changes, e.g. ``cfg.replace(**{"simulation.seed": 7})`` (validated)."""
        data = to_dict(self)
        for dotted, value in changes.items():
            node = data
            *parents, leaf = dotted.split(".")
            for p in parents:
                node = node.get(p) if isinstance(node, dict) else None
            if not isinstance(node, dict):
                raise ConfigError(f"{dotted}: {'.'.join(parents)!r} is not a config section")
            leaf = RENAMED.get(parents[-1] if parents else "", {}).get(leaf, leaf)   # old spelling -> its key
            node[leaf] = value  # unknown leaves are reported (with suggestions) by from_dict
        data.pop("ignored", None)
        return from_dict(data, ignored=self.ignored)


# keys the reference YAMLs carry that have no effect there either (accepted, reported as ignored)
INERT_KEYS = {
    "": {"config_file", "data_folder_name", "connectome_folder_name", "plotting", "claude", "zarr"},
    "simulation": {"connectivity_file", "adjacency_matrix", "params", "baseline_value", "start_frame",
                   "model_id", "ensemble_id",
                   "n_extra_null_edges", "null_edges_mode", "edge_removal_ratio", "edge_removal_mode",
                   "edge_removal_seed", "ablation_ratio", "ablation_seed", "max_train_sequences",
                   "blank_freq", "simulation_initial_state", "noise_visual_input",
                   "only_noise_visual_input", "calcium_type", "save_calcium", "dimension"},
    "graph_model": {"prediction"},
    "training": {"n_runs", "device", "batch_ratio", "small_init_batch_size",
                 "coeff_V_rest", "V_rest_warmup_fraction", "V_rest_rampup_iters", "V_rest_eval_every",
                 "use_gt_edges", "f_theta_linearity_warmup_fraction", "f_theta_linearity_rampup_iters",
                 "f_theta_centering_warmup_fraction", "f_theta_centering_rampup_iters",
                 "recurrent_loop", "save_all_checkpoints"},
}

# older reference spellings (the Node-21-era flyvis-gnn code of early 2026) -> fvjax names
RENAMED = {
    "graph_model": {"lin_edge_positive": "g_phi_positive"},
    "training": {"learning_rate_start": "lr", "learning_rate_W_start": "lr_W",
                 "learning_rate_embedding_start": "lr_embedding",
                 "coeff_edge_diff": "coeff_g_phi_diff", "coeff_edge_norm": "coeff_g_phi_norm",
                 "coeff_edge_weight_L1": "coeff_g_phi_weight_L1", "coeff_edge_weight_L2": "coeff_g_phi_weight_L2",
                 "coeff_edge_weight_L1_rate": "coeff_g_phi_weight_L1_rate",
                 "coeff_phi_weight_L1": "coeff_f_theta_weight_L1", "coeff_phi_weight_L2": "coeff_f_theta_weight_L2",
                 "coeff_phi_weight_L1_rate": "coeff_f_theta_weight_L1_rate",
                 "coeff_lin_phi_zero": "coeff_f_theta_zero"},
}

# spellings that look like a key but are not one in any reference version: refused with the right name
HINTS = {"training": {"learning_rate_W": "lr_W", "learning_rate_embedding": "lr_embedding", "learning_rate": "lr",
                      "lr_update": "learning_rate_update_start", "learning_rate_update": "learning_rate_update_start"}}

# reference features fvjax does not implement: accepted only at their "off" value
UNSUPPORTED_UNLESS = {
    "simulation": {"derivative_smoothing_window": (1,)},
    "graph_model": {"omega_f_learning": (False,)},
    "training": {"coeff_f_theta_msg_diff": (0,),
                 "coeff_update_u_diff": (0,), "coeff_update_msg_diff": (0,), "coeff_f_theta_linearity": (0,),
                 "coeff_f_theta_centering": (0,), "time_window": (0,),
                 "coeff_f_theta_diff": (0,), "coeff_f_theta_msg_sign": (0,), "coeff_W_sign": (0,),
                 "alternate_training": (False,), "ode_stab_lambda": (0,),
                 "umap_cluster_method": ("none",), "loss_noise_level": (0,), "consecutive_batch": (False,)},
}


def _field_type(cls, f):
    return typing.get_type_hints(cls)[f.name]


def _coerce(value, tp, where: str):
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return None if value is None else _coerce(value, args[0], where)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {type(value).__name__}")
        return _build(tp, value, where)
    if origin is tuple:
        if isinstance(value, str) or not isinstance(value, (list, tuple)):
            value = [value]
        args = typing.get_args(tp)
        elem = args[0]
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, elem, where) for v in value)
        if len(value) != len(args):
            raise ConfigError(f"{where}: expected {len(args)} values, got {list(value)}")
        return tuple(_coerce(v, a, where) for v, a in zip(value, args))
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true/false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, float) and value.is_integer())):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return int(value)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        try:
            return float(value)  # YAML reads 1e-3 without a dot as a string
        except ValueError:
            raise ConfigError(f"{where}: expected a number, got {value!r}") from None
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    raise ConfigError(f"{where}: unsupported type {tp}")


def _check_range(f, value, where):
    meta = f.metadata
    if value is None:
        return
    values = value if isinstance(value, tuple) else (value,)
    for v in values:
        if isinstance(v, float) and not math.isfinite(v):
            raise ConfigError(f"{where}: {v!r} is not a finite number")
        if meta.get("choices") and v not in meta["choices"]:
            raise ConfigError(f"{where}: {v!r} is not one of {list(meta['choices'])}")
        if meta.get("lo") is not None and isinstance(v, (int, float)) and v < meta["lo"]:
            raise ConfigError(f"{where}: {v!r} is below the minimum {meta['lo']}")
        if meta.get("hi") is not None and isinstance(v, (int, float)) and v > meta["hi"]:
            raise ConfigError(f"{where}: {v!r} is above the maximum {meta['hi']}")


# reference keys accepted but inert, collected per from_dict call (a ContextVar: re-entrant, per thread)
_IGNORED: contextvars.ContextVar[list[str]] = contextvars.ContextVar("fvjax_config_ignored")


def _build(cls, data: dict, where: str):
    fields = {f.name: f for f in dataclasses.fields(cls) if f.name != "ignored"}
    section = where.rsplit(".", 1)[-1] if where != "config" else ""
    kwargs = {}
    renamed = RENAMED.get(section, {})
    for old in set(data) & set(renamed):
        if renamed[old] in data:
            raise ConfigError(f"{where}.{old} and {where}.{renamed[old]} are the same key (old and new "
                              f"spelling); keep one")
    for key, value in data.items():
        key = renamed.get(key, key)
        here = f"{where}.{key}"
        if key in fields:
            value = _coerce(value, _field_type(cls, fields[key]), here)
            _check_range(fields[key], value, here)
            kwargs[key] = value
        elif key in INERT_KEYS.get(section, ()):
            _IGNORED.get().append(here.removeprefix("config."))
        elif key in UNSUPPORTED_UNLESS.get(section, {}):
            allowed = UNSUPPORTED_UNLESS[section][key]
            if value not in allowed:
                raise ConfigError(f"{here}: {value!r} is not supported by fvjax (only {allowed[0]!r}); "
                                  f"remove the key or set it to {allowed[0]!r}")
            _IGNORED.get().append(here.removeprefix("config."))
        elif key in HINTS.get(section, {}):
            raise ConfigError(f"{here}: unknown key (the reference ignored it too); the learning rate you mean is "
                              f"{where.removeprefix('config.')}.{HINTS[section][key]}")
        else:
            close = difflib.get_close_matches(key, list(fields), n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else f"; known keys: {', '.join(fields)}"
            raise ConfigError(f"{here}: unknown key{hint}")
    return cls(**kwargs)


def from_dict(data: dict | None, ignored: tuple[str, ...] = ()) -> Config:
    """Validate a nested mapping into a :class:`Config`."""
    token = _IGNORED.set([])
    try:
        cfg = _build(Config, data or {}, "config")
        return dataclasses.replace(cfg, ignored=tuple(ignored) + tuple(_IGNORED.get()))
    finally:
        _IGNORED.reset(token)


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses a mapping with the same key twice (YAML silently keeps the last)."""


def _unique_mapping(loader, node, deep=False):
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise ConfigError(f"line {key_node.start_mark.line + 1}: key {key!r} appears twice in the same mapping")
        seen.add(key)
    return loader.construct_mapping(node, deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _unique_mapping)


def load_yaml(path: str | Path):
    """A YAML file's content ({} if empty); duplicate keys and syntax errors are ConfigErrors naming
    the file and line."""
    path = Path(path)
    try:
        return yaml.load(path.read_text(), Loader=_UniqueKeyLoader) or {}
    except ConfigError as err:
        raise ConfigError(f"{path}, {err}") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path} is not valid YAML: {err}") from None


def load_mapping(path: str | Path, what: str, expected: str) -> dict:
    """A YAML file whose top level must be a mapping (ConfigErrors name the file; ``what`` names it
    in the missing-file message, ``expected`` says what the mapping should hold)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{what} {path} does not exist")
    data = load_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be {expected}")
    return data


def load_config(path: str | Path | None = None, overrides: dict | None = None) -> Config:
    """Load a YAML file (None = all defaults), then apply dotted-key ``overrides``."""
    data = load_mapping(path, "config file", "a mapping") if path is not None else {}
    try:
        cfg = from_dict(data)
        return cfg.replace(**overrides) if overrides else cfg
    except ConfigError as err:
        raise ConfigError(f"{path or 'defaults'}: {err}") from None


# keys added after run folders and datasets existed, with the value that reproduces what was made before
# them: a folder's config.yaml that lacks one was made with this value, whatever today's default is
BEFORE_KEY = {"simulation": {"blank_prefix_fraction": 0.0, "scene_luminance": [0.3, 0.7], "scene_contrast": [0.1, 0.6]},
              "training": {"g_phi_linear_slope": "tangent"}}


def from_stored(data: dict | None) -> Config:
    """The :class:`Config` of a ``config.yaml`` that fvjax wrote (run folder): keys the file predates
    take their :data:`BEFORE_KEY` value, the others today's defaults."""
    data = {k: v for k, v in (data or {}).items() if k != "ignored"}
    for section, keys in BEFORE_KEY.items():
        data[section] = {**keys, **(data.get(section) or {})}
    return from_dict(data)


# simulation keys that only the `scenes` stimulus reads
SCENE_KEYS = ("scene_objects", "scene_augment", "scene_luminance", "scene_contrast")


def unused_simulation_keys(sim: SimulationConfig) -> tuple[str, ...]:
    """Simulation keys that the configured stimulus does not read (they change nothing computed)."""
    return () if sim.visual_input_type == "scenes" else SCENE_KEYS


def unused_training_keys(tr: TrainingConfig) -> tuple[str, ...]:
    """Training keys that qualify a term switched off (they change nothing computed)."""
    return () if tr.coeff_g_phi_linear > 0 else ("g_phi_linear_slope",)


def settings_diff(stored: dict, wanted: dict, sections=("simulation", "graph_model", "training"),
                  skip: dict | None = None) -> list[str]:
    """Dotted keys of ``sections`` that differ between two config mappings, ``skip``'s keys
    ({section: keys}) and keys that neither side reads (unused_simulation_keys, unused_training_keys) aside. ``stored`` is a
    folder's config.yaml (read by :func:`from_stored`, so a folder written before a key existed still
    compares, with the value it was made with)."""
    old, new = from_stored(stored), from_dict(wanted)
    a, b, skip = to_dict(old), to_dict(new), {k: set(v) for k, v in (skip or {}).items()}
    for sec, unused in (("simulation", unused_simulation_keys), ("training", unused_training_keys)):
        skip[sec] = skip.get(sec, set()) | (set(unused(getattr(old, sec))) & set(unused(getattr(new, sec))))
    return sorted(f"{sec}.{k}" for sec in sections for k in set(a[sec]) | set(b[sec])
                  if a[sec].get(k) != b[sec].get(k) and k not in skip.get(sec, ()))


def to_dict(cfg) -> dict:
    """Plain nested dict (tuples as lists), suitable for YAML/JSON."""
    def conv(v):
        if dataclasses.is_dataclass(v):
            return {f.name: conv(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, tuple):
            return [conv(x) for x in v]
        return v
    return conv(cfg)


def dump_config(cfg: Config, path: str | Path) -> None:
    data = to_dict(cfg)
    data.pop("ignored", None)
    with open(path, "w") as f:
        yaml.safe_dump(data, f, sort_keys=False)
