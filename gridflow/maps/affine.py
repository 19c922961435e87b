"""Affine maps T(x) = A x + b, the OT maps and flows between Gaussians (Lemma B.6)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gridflow.checks import as_finite_array, as_points, positive_int, readonly_copy

__all__ = ["AffineMap"]


@dataclass(frozen=True, eq=False)
class AffineMap:
    """The affine map T(x) = A x + b on R^d.

    Parameters
    ----------
    matrix : array_like, shape (d, d)
        A, finite.
    offset : array_like, shape (d,)
        b, finite.

    Notes
    -----
    The map is the gradient of the convex potential ½ xᵀ A x + bᵀ x when A is symmetric
    positive semidefinite (``potential``). ``A, b = affine_map`` unpacks it. Stored arrays
    are read-only copies.

    Examples
    --------
    >>> T = AffineMap([[2.0, 0.0], [0.0, 1.0]], [0.0, 1.0])
    >>> T(np.array([[1.0, 1.0]]))
    array([[2., 2.]])
    """

    matrix: np.ndarray
    offset: np.ndarray

    def __post_init__(self):
        matrix = as_finite_array(self.matrix, "matrix")
        if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or matrix.shape[0] < 1:
            raise ValueError(f"matrix must be a square (d, d) array, got shape {matrix.shape}")
        offset = as_finite_array(self.offset, "offset")
        if offset.shape != (matrix.shape[0],):
            raise ValueError(
                f"offset must have shape ({matrix.shape[0]},) to match matrix, got {offset.shape}"
            )
        object.__setattr__(self, "matrix", readonly_copy(matrix))
        object.__setattr__(self, "offset", readonly_copy(offset))

    @classmethod
    def identity(cls, dim: int) -> AffineMap:
        """T = id on R^dim."""
        dim = positive_int(dim, "dim")
        return cls(np.eye(dim), np.zeros(dim))

    @property
    def dim(self) -> int:
        """Dimension d."""
        return self.offset.size

    def __iter__(self):
        yield self.matrix
        yield self.offset

    def __call__(self, x) -> np.ndarray:
        """T(x) = x Aᵀ + b at points x (n, d) -> (n, d)."""
        return as_points(x, "x", self.dim) @ self.matrix.T + self.offset

    def potential(self, x) -> np.ndarray:
        """φ(x) = ½ xᵀ A x + bᵀ x at points x (n, d) -> (n,), for symmetric A (∇φ = T)."""
        if not np.allclose(self.matrix, self.matrix.T, rtol=1e-12, atol=0.0):
            raise ValueError("the map has a potential only when its matrix is symmetric")
        x = as_points(x, "x", self.dim)
        return 0.5 * np.einsum("ni,ij,nj->n", x, self.matrix, x) + x @ self.offset
