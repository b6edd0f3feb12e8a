"""Ground-truth circuit parameters: flyvis checkpoints, .npz tables, and seeded calibrated priors."""

from .bundled import BUNDLED, bundled_tables, find_checkpoint, load_bundled, load_flyvis_model
from .checkpoint import load_flyvis_checkpoint, network_state
from .tables import GroundTruth, from_tables, load_npz, save_npz
from .torchpickle import load_torch_zip

__all__ = ["BUNDLED", "bundled_tables", "find_checkpoint", "load_bundled", "load_flyvis_model", "GroundTruth", "from_tables", "load_flyvis_checkpoint", "load_npz", "load_torch_zip",
           "network_state", "save_npz"]

from .prior import (PriorSpec, calibrated_prior, calibration_movie, flyvis_initial,  # noqa: E402
                    jacobian_radius, packaged_prior, prior_cache_path, sample_tables,
                    write_packaged_priors)

__all__ += ["PriorSpec", "calibrated_prior", "calibration_movie", "flyvis_initial", "jacobian_radius",
            "packaged_prior", "prior_cache_path", "sample_tables", "write_packaged_priors"]
