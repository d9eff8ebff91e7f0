"""The lensing simulator: batched torch (CPU/CUDA), deterministic per (seed, index), DeepLense recipes.

Modules, one job each: :mod:`.rng` (counter-based random numbers), :mod:`.cosmology` (Einstein
radii), :mod:`.profiles` (lens deflections), :mod:`.light` (Sersic source), :mod:`.instrument`
(grid, PSF, noise), :mod:`.configs` (recipes), :mod:`.sampling` (priors), :mod:`.simulator`
(the pipeline), :mod:`.deeplense_writer` (the DeepLense folder layout).
"""

from .configs import SUBSTRUCTURE, SimulationConfig, SimulationConfigError, config_names, get_config, registered_name
from .deeplense_writer import write_deeplense_folder
from .sampling import LensParameters, sample_parameters
from .simulator import LensBatch, LensSimulator, LensTruth

__all__ = [
    "SUBSTRUCTURE",
    "LensBatch",
    "LensParameters",
    "LensSimulator",
    "LensTruth",
    "SimulationConfig",
    "SimulationConfigError",
    "config_names",
    "get_config",
    "registered_name",
    "sample_parameters",
    "write_deeplense_folder",
]
