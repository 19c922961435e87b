"""The map family shared by both solvers: callables from points (n, d) to points (n, d).

``AffineMap`` (T(x) = A x + b: Gaussian OT maps and flows), ``GridMap`` (the interpolant of
a discrete map of the grid solver, with its potential), and the network maps of
``neural`` all evaluate T at points; ``map_distance`` measures any two of them against
each other in L²(ϱ0), with the L²-UVP.
"""

from gridflow.maps.affine import AffineMap
from gridflow.maps.distance import MapDistance, map_distance
from gridflow.maps.grid import GridMap

__all__ = ["AffineMap", "GridMap", "MapDistance", "map_distance"]
