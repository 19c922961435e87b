"""Closed forms between Gaussians: the OT map, W2, KL, λ, and the squared distance of an
affine map to the OT map in L²(ϱ0) (notation of the package's docstring)."""

from __future__ import annotations

import numpy as np
import scipy.linalg

from gridflow.checks import as_float_array
from gridflow.maps import AffineMap
from gridflow.measures.gaussians import Gaussian


def _check_gaussian(value, name: str) -> Gaussian:
    """``value`` if it is a Gaussian, else a TypeError (a wrong kind of object) saying how
    to make one of a Gaussian target."""
    if not isinstance(value, Gaussian):
        if getattr(value, "is_gaussian", False) is True:  # a Gaussian LogConcaveTarget
            hint = f"; pass Gaussian({name}.mean, {name}.cov)"
        else:
            hint = " (the closed forms hold between Gaussians only)"
        kind = "None" if value is None else type(value).__name__
        raise TypeError(f"{name} must be a gridflow.Gaussian, got {kind}{hint}")
    return value


def _check_pair(source, target, source_name="source", target_name="target"):
    source = _check_gaussian(source, source_name)
    target = _check_gaussian(target, target_name)
    if source.dim != target.dim:
        raise ValueError(
            f"{source_name} and {target_name} must have the same dimension, "
            f"got {source.dim} and {target.dim}"
        )
    return source, target


# ------------------------------------------------------------------- matrix functions


def _symmetric(matrix: np.ndarray) -> np.ndarray:
    return 0.5 * (matrix + matrix.T)


def _spd_power(matrix: np.ndarray, power: float) -> np.ndarray:
    """``matrix ** power`` for a symmetric positive (semi)definite matrix, via eigh."""
    eigenvalues, vectors = np.linalg.eigh(_symmetric(matrix))
    eigenvalues = np.clip(eigenvalues, 0.0, None)
    return _symmetric((vectors * eigenvalues**power) @ vectors.T)


# -------------------------------------------------------------------- OT, W2 and KL


def ot_map(source: Gaussian, target: Gaussian) -> AffineMap:
    """Brenier map between Gaussians: ``T*(x) = A x + b``.

    Parameters
    ----------
    source : Gaussian
        The source N(m0, Sigma0).
    target : Gaussian
        The target N(m_gamma, Gamma), of the same dimension.

    Returns
    -------
    AffineMap
        ``T*``; it unpacks as ``A, b``.

    Raises
    ------
    TypeError
        If `source` or `target` is not a `gridflow.Gaussian`.
    ValueError
        If their dimensions differ.

    Notes
    -----
    ``A = Sigma0^{-1/2} (Sigma0^{1/2} Gamma Sigma0^{1/2})^{1/2} Sigma0^{-1/2}`` is symmetric
    positive definite with ``A Sigma0 A = Gamma``, and ``b = m_gamma - A m0``. ``T*`` is the
    minimizer of F on the cone (the limit of the flow, Thm 2.13).
    """
    source, target = _check_pair(source, target)
    root = _spd_power(source.cov, 0.5)
    inverse_root = _spd_power(source.cov, -0.5)
    middle = _spd_power(root @ target.cov @ root, 0.5)
    matrix = _symmetric(inverse_root @ middle @ inverse_root)
    offset = target.mean - matrix @ source.mean
    return AffineMap(matrix, offset)


def w2(source: Gaussian, target: Gaussian) -> float:
    """Wasserstein-2 distance W2(source, target) — the distance, *not* its square.

    Parameters
    ----------
    source : Gaussian
        The source N(m0, Sigma0).
    target : Gaussian
        The target N(m1, Sigma1), of the same dimension.

    Returns
    -------
    float
        W2(source, target).

    Raises
    ------
    TypeError
        If `source` or `target` is not a `gridflow.Gaussian`.
    ValueError
        If their dimensions differ.

    Notes
    -----
    ``W2^2 = |m0 - m1|^2 + tr(Sigma0 + Sigma1 - 2 (Sigma0^{1/2} Sigma1 Sigma0^{1/2})^{1/2})``
    (Bures–Wasserstein formula), computed without its cancellation as a sum of squares:
    the trace term is ``min ||Sigma0^{1/2} - U Sigma1^{1/2}||_F^2`` over orthogonal U,
    reached at the polar factor U = Q P^T of ``Sigma1^{1/2} Sigma0^{1/2} = P S Q^T`` (its
    trace is then 2 tr S, the nuclear norm). The difference of traces would lose W2's
    leading digits when Sigma1 is near Sigma0 (roundoff about 1e-16 of the traces: W2 near
    1e-8 for two equal laws).
    """
    source, target = _check_pair(source, target)
    source_root, target_root = _spd_power(source.cov, 0.5), _spd_power(target.cov, 0.5)
    left, _, right = np.linalg.svd(target_root @ source_root)
    residual = source_root - (right.T @ left.T) @ target_root
    squared = np.sum((source.mean - target.mean) ** 2) + np.sum(residual**2)
    return float(np.sqrt(squared))


def _ratio_minus_one_minus_log(ratios: np.ndarray) -> np.ndarray:
    """``nu - 1 - log(nu)`` for ratios nu > 0: without cancellation near nu = 1 (series in
    x = nu - 1 below 1e-3), and with log(nu) itself below it (log1p(nu - 1) is -inf for
    nu < 1.1e-16, where nu - 1 rounds to -1)."""
    ratios = np.asarray(ratios, dtype=np.float64)
    x = ratios - 1.0
    small = np.abs(x) < 1e-3
    with np.errstate(all="ignore"):  # each is used where it is finite
        series = x**2 * (0.5 - x / 3.0 + x**2 / 4.0 - x**3 / 5.0)
        direct = x - np.log(ratios)
    return np.where(small, series, direct)


def _kl_moments(mean, cov, target_mean, target_factor) -> float:
    """KL(N(mean, cov) | N(target_mean, L L^T)) for validated moments, ``L = target_factor``.

    ``1/2 [tr(G^{-1} S) + (m_g - m)^T G^{-1} (m_g - m) - d + log det G - log det S]``,
    evaluated as ``1/2 sum_i (nu_i - 1 - log nu_i) + 1/2 |L^{-1}(m - m_g)|^2`` with ``nu_i``
    the eigenvalues of ``L^{-1} S L^{-T}`` (those of ``G^{-1} S``), which keeps full relative
    accuracy near the minimum where the closed form cancels to roundoff.
    """
    half = scipy.linalg.solve_triangular(target_factor, cov, lower=True)
    whitened_cov = scipy.linalg.solve_triangular(target_factor, half.T, lower=True)
    ratios = np.linalg.eigvalsh(_symmetric(whitened_cov))
    covariance_part = 0.5 * float(np.sum(_ratio_minus_one_minus_log(ratios)))
    whitened = scipy.linalg.solve_triangular(target_factor, mean - target_mean, lower=True)
    return covariance_part + 0.5 * float(whitened @ whitened)


def kl(source: Gaussian, target: Gaussian) -> float:
    """Relative entropy KL(source | target) = H(source | target) of eq. (1.8).

    Parameters
    ----------
    source : Gaussian
        The source N(mu, Sigma).
    target : Gaussian
        The target N(m_gamma, Gamma), of the same dimension.

    Returns
    -------
    float
        ``1/2 [tr(Gamma^{-1} Sigma) + (m_gamma - mu)^T Gamma^{-1} (m_gamma - mu) - d
        + log det Gamma - log det Sigma]``.

    Raises
    ------
    TypeError
        If `source` or `target` is not a `gridflow.Gaussian`.
    ValueError
        If their dimensions differ.
    """
    source, target = _check_pair(source, target)
    return _kl_moments(source.mean, source.cov, target.mean, np.linalg.cholesky(target.cov))


def lambda_convexity(target: Gaussian) -> float:
    """``lam = 1 / lambda_max(Gamma)``: the target potential V is lam-convex (Cor 2.17)."""
    target = _check_gaussian(target, "target")
    return float(1.0 / np.linalg.eigvalsh(target.cov)[-1])


def map_error(source: Gaussian, target: Gaussian, matrix, offset) -> float:
    """``||T - T*||^2_{L2(rho0)}`` — *squared* — for the affine map ``T(x) = matrix x + offset``.

    ``tr((A - A*) Sigma0 (A - A*)^T) + |(A - A*) m0 + b - b*|^2``.
    """
    source, target = _check_pair(source, target)
    matrix, offset = _check_affine(matrix, offset, source.dim)
    optimal_matrix, optimal_offset = ot_map(source, target)
    return _map_error(source, matrix, offset, optimal_matrix, optimal_offset)


def _map_error(source, matrix, offset, optimal_matrix, optimal_offset) -> float:
    difference = matrix - optimal_matrix
    mean_difference = difference @ source.mean + offset - optimal_offset
    return float(np.sum((difference @ source.cov) * difference) + mean_difference @ mean_difference)


def _check_affine(matrix, offset, dim):
    matrix = as_float_array(matrix, "matrix")
    offset = as_float_array(offset, "offset")
    if matrix.shape != (dim, dim):
        raise ValueError(f"matrix must have shape ({dim}, {dim}), got {matrix.shape}")
    if offset.shape != (dim,):
        raise ValueError(f"offset must have shape ({dim},), got {offset.shape}")
    if not (np.all(np.isfinite(matrix)) and np.all(np.isfinite(offset))):
        raise ValueError("matrix and offset must be finite")
    return matrix, offset
