"""The unweighted normal equations D_hᵀ D_h p = r of the grid's gradient, solved by fast
diagonalization.

D_h's components are Kronecker products of one-dimensional operators, D_k = μ ⊗ .. ⊗ δ ⊗ ..
⊗ μ (δ the difference on axis k, μ the average on the others, `operators`), so

    D_hᵀ D_h = Σ_k ⊗_axes (A if axis = k else B),   A = δᵀδ, B = μᵀμ (per axis).

On each axis the pencil (A, A + B) is diagonalized once: Vᵀ (A + B) V = I, Vᵀ A V = Λ, hence
Vᵀ B V = I − Λ, with 0 ≤ Λ ≤ 1. In the basis ⊗V the matrix is diagonal, with the entry
Σ_k Λ_k Π_{j≠k} (1 − Λ_j) at each multi-index, and a solve costs d dense products along each
axis and back (Lynch, Rice and Thomas's method): O(N n) flops instead of a sparse
factorization. Λ = 0 belongs to the constant vector (A's kernel) and Λ = 1 to the
alternating one (B's kernel) alone; set to exactly 0 and 1, they make the entries of
ker D_h (the constants, the checkerboards, in 3D also the alternations of the planes)
exactly zero, where the solve returns 0: the solution is the one without a component in
ker D_h in this basis, and D_h p is the same as for any other solution.
"""

from __future__ import annotations

import functools

import numpy as np
from scipy import linalg

from gridflow import operators
from gridflow.checks import require_instance
from gridflow.grid import Grid

__all__ = ["solve_gradient_normal_equations"]


@functools.lru_cache(maxsize=8)
def _axis_bases(shape: tuple[int, ...], spacing: tuple[float, ...]):
    """Per axis, (Λ, V) of the pencil (δᵀδ, δᵀδ + μᵀμ), and the diagonal of D_hᵀ D_h in the
    basis ⊗V, shaped like the grid."""
    bases = []
    for size, h in zip(shape, spacing, strict=True):
        delta = operators.difference(size, h).toarray()
        mu = operators.average(size).toarray()
        stiffness = delta.T @ delta
        lam, vectors = linalg.eigh(stiffness, stiffness + mu.T @ mu)
        lam[0], lam[-1] = 0.0, 1.0  # the constant and the alternating vector, exactly
        bases.append((lam, vectors))
    diagonal = np.zeros(shape)
    for k in range(len(shape)):
        term = np.ones(shape)
        for axis, (lam, _) in enumerate(bases):
            factor = lam if axis == k else 1.0 - lam
            term = term * factor.reshape([-1 if a == axis else 1 for a in range(len(shape))])
        diagonal += term
    return tuple(vectors for _, vectors in bases), diagonal


def _along_axes(array: np.ndarray, matrices, transpose: bool) -> np.ndarray:
    """(⊗ M)ᵀ array or (⊗ M) array: each axis multiplied by its matrix."""
    for axis, matrix in enumerate(matrices):
        array = np.moveaxis(
            np.tensordot(matrix.T if transpose else matrix, array, (1, axis)), 0, axis
        )
    return array


def solve_gradient_normal_equations(grid, rhs: np.ndarray) -> np.ndarray:
    """p (N,) with D_hᵀ D_h p = rhs for rhs (N,) in the range of D_hᵀ (orthogonal to
    ker D_h), on `grid` (`gridflow.Grid`): the solution without a component in ker D_h in the
    basis of the module's docstring."""
    require_instance(grid, Grid, "grid", "; build one with gridflow.Grid")
    shape = tuple(grid.shape)
    rhs = np.asarray(rhs, dtype=float)
    if rhs.shape != (int(np.prod(shape)),):
        raise ValueError(f"rhs must have shape ({int(np.prod(shape))},), got {rhs.shape}")
    if not np.all(np.isfinite(rhs)):
        raise ValueError("rhs must be finite (it has NaN or inf entries)")
    vectors, diagonal = _axis_bases(shape, tuple(float(h) for h in grid.spacing))
    transformed = _along_axes(rhs.reshape(shape), vectors, transpose=True)
    solved = np.divide(transformed, diagonal, out=np.zeros(shape), where=diagonal > 0)
    return _along_axes(solved, vectors, transpose=False).ravel()
