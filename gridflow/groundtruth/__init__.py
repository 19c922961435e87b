"""Ground-truth maps: exact ones (the 1D quantile map), computed ones (the grid solver's
discrete OT map with its error estimate), the map files that carry them, and the problem
each file records (its source and target, rebuilt by whoever reads the file)."""

from gridflow.groundtruth.build import (
    CASCADE_COARSEST,
    DEFAULT_BOX,
    MAX_FLOORED_MASS,
    MAX_RELATIVE_ERROR,
    MIN_NODES,
    TARGET_MAX_CUT_MASS,
    accuracy_problems,
    build_ground_truth,
    check_nodes,
    check_target_mass,
    floor_problems,
    grid_cascade,
    ground_truth_problems,
)
from gridflow.groundtruth.files import MAP_SUFFIX, MapFileError, load_map, save_map
from gridflow.groundtruth.grading import (
    RESOLUTION_FACTOR,
    GroundTruth,
    check_usable,
    read_ground_truth,
    resolved,
    truth_error,
)
from gridflow.groundtruth.problems import (
    SOURCE_NAMES,
    TARGET_NAMES,
    problem_of,
    read_source,
    read_target,
    same_law,
    source_from_spec,
    source_spec,
    target_from_spec,
    target_spec,
)
from gridflow.groundtruth.quantile import quantile_map

__all__ = [
    "CASCADE_COARSEST",
    "DEFAULT_BOX",
    "MAP_SUFFIX",
    "MAX_FLOORED_MASS",
    "MAX_RELATIVE_ERROR",
    "MIN_NODES",
    "RESOLUTION_FACTOR",
    "SOURCE_NAMES",
    "TARGET_MAX_CUT_MASS",
    "TARGET_NAMES",
    "GroundTruth",
    "MapFileError",
    "accuracy_problems",
    "build_ground_truth",
    "check_nodes",
    "check_target_mass",
    "check_usable",
    "floor_problems",
    "grid_cascade",
    "ground_truth_problems",
    "load_map",
    "problem_of",
    "quantile_map",
    "read_ground_truth",
    "read_source",
    "read_target",
    "resolved",
    "same_law",
    "save_map",
    "source_from_spec",
    "source_spec",
    "target_from_spec",
    "target_spec",
    "truth_error",
]
