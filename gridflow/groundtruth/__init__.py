"""Ground-truth maps: exact ones (the 1D quantile map), computed ones (the grid solver's
discrete OT map with its error estimate), and the map files that carry them."""

from gridflow.groundtruth.build import (
    CASCADE_COARSEST,
    MIN_NODES,
    SOURCES,
    build_ground_truth,
    check_nodes,
    grid_cascade,
    ground_truth_problems,
)
from gridflow.groundtruth.files import MAP_SUFFIX, MapFileError, load_map, save_map
from gridflow.groundtruth.quantile import quantile_map

__all__ = [
    "CASCADE_COARSEST",
    "MAP_SUFFIX",
    "MIN_NODES",
    "SOURCES",
    "MapFileError",
    "build_ground_truth",
    "check_nodes",
    "grid_cascade",
    "ground_truth_problems",
    "load_map",
    "quantile_map",
    "save_map",
]
