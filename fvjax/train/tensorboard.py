"""TensorBoard event files for the training curves, through tensorboardX (an optional extra)."""

from __future__ import annotations

from pathlib import Path

from ..config import ConfigError


def open_tensorboard(folder: Path):
    """A ``tensorboardX.SummaryWriter`` writing into ``folder`` (``tensorboard --logdir RUN``)."""
    try:
        from tensorboardX import SummaryWriter
    except ImportError:
        raise ConfigError('training.tensorboard (--tensorboard) needs tensorboardX: pip install -e ".[tensorboard]"'
                          " (or pip install tensorboardX)") from None
    folder.mkdir(parents=True, exist_ok=True)
    return SummaryWriter(logdir=str(folder), flush_secs=30)
