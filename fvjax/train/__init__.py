"""Training: losses and regularisers, optax partitions, jitted/scanned steps, the streaming loop."""

from .average import model_params, track_average
from .checkpoint import latest_checkpoint, restore_checkpoint, save_checkpoint
from .loop import FitResult, fit, frame_indices, gather_block, model_spec, n_iterations
from .multi import fit_many
from .losses import (Batch, Coefficients, SeqBatch, coefficients, one_step_loss, recurrent_loss,
                     regularizers, rollout)
from .optim import group_lrs, make_optimizer
from .step import StepConfig, TrainState, init_state, make_steps, train_step

__all__ = [
    "Batch", "Coefficients", "FitResult", "SeqBatch", "StepConfig", "TrainState", "coefficients", "fit", "fit_many",
    "frame_indices", "gather_block", "group_lrs", "init_state", "latest_checkpoint", "make_optimizer",
    "make_steps", "model_params", "model_spec", "n_iterations", "one_step_loss", "recurrent_loss", "regularizers",
    "restore_checkpoint", "rollout", "save_checkpoint", "track_average", "train_step",
]
