"""Statistics that validate a generated 3D volume against its 2D training image.

* :mod:`.metrics` — volume fraction, surface-area density, two-point correlation
  (FFT, no wrap-around), grayscale statistics.
* :mod:`.transport` — 3D-only: tortuosity factor (TauFactor) and percolating fraction.
* :mod:`.compare` — 2D vs 3D comparison, relative errors and MicroLib's 5% flag.

Reports (figures, CSV) are in :mod:`microlib_gui.core.report`.
"""

from .compare import (CAUSES, ERROR_THRESHOLD, compare, flag, headline_phase, load_intensity, load_pair,
                      rel_error, stage_names, training_cause)
from .metrics import (DEFAULT_R_MAX, StatsError, grayscale_stats, intensity_two_point, surface_area,
                      two_point_correlation, volume_fraction)
from .transport import default_device, percolating_fraction, tortuosity

__all__ = [
    "CAUSES", "DEFAULT_R_MAX", "ERROR_THRESHOLD", "StatsError", "compare", "default_device", "flag",
    "grayscale_stats", "headline_phase", "intensity_two_point", "load_intensity", "load_pair",
    "percolating_fraction", "rel_error", "stage_names", "surface_area", "tortuosity", "training_cause",
    "two_point_correlation", "volume_fraction",
]
