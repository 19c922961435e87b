"""Closed forms for Gaussians: OT map, W2, KL, and the exact Gaussian constrained flow.

Notation (docs/mathematics.md, 'Exact Gaussian flow'): source ``rho0 = N(m0, Sigma0)``,
target ``gamma = N(m_gamma, Gamma)``, ``V(y) = 1/2 (y - m_gamma)^T Gamma^{-1} (y - m_gamma)``,
so ``gamma`` is lam-log-concave with ``lam = 1 / lambda_max(Gamma)``. The lifted functional
is ``F(T) = KL(T#rho0 | gamma)``, ``F* = 0`` at the OT map ``T*``.

Constrained gradient flow (cons.gf) of Definition 2.6 for this F. Starting from
``T_0 = id``, the flow stays affine, ``T_t(x) = A_t x + b_t`` with ``A_t`` symmetric
positive definite, and ``T_t#rho0 = N(A m0 + b, A Sigma0 A)``:

- lifted gradient (Lemma B.6): ``grad F(T) = (grad log rho_t + grad V) o T``, i.e.
  ``-grad F(T)(x) = M (x - m0) + r`` with ``M = A^{-1} Sigma0^{-1} - Gamma^{-1} A`` and
  ``r = -Gamma^{-1} (A m0 + b - m_gamma)`` (:func:`velocity`);
- ``A`` is interior to the cone, so the tangent-cone projection is the L2(rho0)
  Helmholtz projection onto gradient fields (Remark 2.9, eq. (2.4)): the linear field
  ``M (x - m0)`` projects to ``S (x - m0)`` with ``S = M - Sigma0 Omega`` symmetric, where
  ``Omega`` is antisymmetric and solves ``Sigma0 Omega + Omega Sigma0 = M - M^T``; the
  remainder ``Sigma0 Omega (x - m0)`` is rho0-divergence free
  (:func:`helmholtz_projection`);
- ODE: ``dA/dt = S``, ``db/dt = r - S m0``, ``A(0) = I``, ``b(0) = 0``
  (:func:`constrained_flow`).

Consequence used as an independent check: the pushforward mean ``mu = A m0 + b``
obeys ``dmu/dt = r = -Gamma^{-1}(mu - m_gamma)``, decoupled from the covariance, so
``mu_t = m_gamma + expm(-t Gamma^{-1}) (m0 - m_gamma)`` (:func:`pushforward_mean`). Its
slowest mode decays like ``exp(-lam t)``, hence ``F(T_t) - F*`` like ``exp(-2 lam t)``:
the rate of Thm 2.13 (iii.a) / Cor 2.17 (ii) is attained whenever ``m0 - m_gamma`` has a
component along the top eigenvector of ``Gamma``. The covariance part decays strictly
faster (:func:`linearized_rates`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.linalg
from scipy import optimize
from scipy.integrate import solve_ivp

from gridflow import rates
from gridflow.checks import readonly_copy
from gridflow.maps import AffineMap
from gridflow.measures.gaussians import Gaussian

__all__ = [
    "FlowBounds",
    "Gaussian",
    "GaussianFlow",
    "LinearizedRates",
    "bounds",
    "constrained_flow",
    "fitted_rate",
    "helmholtz_projection",
    "implicit_scheme",
    "kl",
    "lambda_convexity",
    "linearized_rates",
    "map_error",
    "ot_map",
    "pushforward_mean",
    "velocity",
    "w2",
]


def _check_gaussian(value, name: str) -> Gaussian:
    if not isinstance(value, Gaussian):
        raise ValueError(f"{name} must be a gridflow.Gaussian, got {type(value).__name__}")
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
    ValueError
        If `source` or `target` is not a `gridflow.Gaussian`, or their dimensions differ.

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
    ValueError
        If `source` or `target` is not a `gridflow.Gaussian`, or their dimensions differ.

    Notes
    -----
    ``W2^2 = |m0 - m1|^2 + tr(Sigma0 + Sigma1 - 2 (Sigma0^{1/2} Sigma1 Sigma0^{1/2})^{1/2})``
    (Bures–Wasserstein formula).
    """
    source, target = _check_pair(source, target)
    root = _spd_power(source.cov, 0.5)
    cross = _spd_power(root @ target.cov @ root, 0.5)
    squared = float(
        np.sum((source.mean - target.mean) ** 2)
        + np.trace(source.cov)
        + np.trace(target.cov)
        - 2.0 * np.trace(cross)
    )
    return float(np.sqrt(max(squared, 0.0)))


def _x_minus_log1p(x: np.ndarray) -> np.ndarray:
    """``x - log(1 + x)`` without cancellation for small |x| (series below 1e-3)."""
    x = np.asarray(x, dtype=np.float64)
    small = np.abs(x) < 1e-3
    series = x**2 * (0.5 - x / 3.0 + x**2 / 4.0 - x**3 / 5.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        direct = x - np.log1p(x)
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
    covariance_part = 0.5 * float(np.sum(_x_minus_log1p(ratios - 1.0)))
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
    ValueError
        If `source` or `target` is not a `gridflow.Gaussian`, or their dimensions differ.
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
    matrix = np.asarray(matrix, dtype=np.float64)
    offset = np.asarray(offset, dtype=np.float64)
    if matrix.shape != (dim, dim):
        raise ValueError(f"matrix must have shape ({dim}, {dim}), got {matrix.shape}")
    if offset.shape != (dim,):
        raise ValueError(f"offset must have shape ({dim},), got {offset.shape}")
    if not (np.all(np.isfinite(matrix)) and np.all(np.isfinite(offset))):
        raise ValueError("matrix and offset must be finite")
    return matrix, offset


# -------------------------------------------------------- gradient and its projection


def velocity(source: Gaussian, target: Gaussian, matrix, offset) -> tuple[np.ndarray, np.ndarray]:
    """Minus the lifted gradient at ``T(x) = matrix x + offset``: ``-grad F(T)(x) = M(x - m0) + r``.

    ``grad F(T) = (grad log rho_T + grad V) o T`` (Lemma B.6) with ``rho_T = T#rho0 =
    N(A m0 + b, A Sigma0 A^T)``. Writing ``y - mu = A (x - m0)`` for ``y = T(x)``,
    ``grad log rho_T(y) = -(A Sigma0 A^T)^{-1} A (x - m0) = -A^{-T} Sigma0^{-1} (x - m0)``, so
    ``M = A^{-T} Sigma0^{-1} - Gamma^{-1} A`` (``= A^{-1} Sigma0^{-1} - Gamma^{-1} A`` for the
    symmetric A of the flow) and ``r = -Gamma^{-1} (A m0 + b - m_gamma)``. ``matrix`` need not
    be symmetric (only invertible): this is the gradient in all of L2(rho0), before any
    projection. Returns ``(M, r)``; this is ``v_t o T_t`` of Lemma 2.8.
    """
    source, target = _check_pair(source, target)
    matrix, offset = _check_affine(matrix, offset, source.dim)
    source_precision = np.linalg.inv(source.cov)
    target_precision = np.linalg.inv(target.cov)
    return _velocity(source, target, matrix, offset, source_precision, target_precision)


def _velocity(source, target, matrix, offset, source_precision, target_precision):
    field_matrix = np.linalg.solve(matrix.T, source_precision) - target_precision @ matrix
    field_offset = -target_precision @ (matrix @ source.mean + offset - target.mean)
    return field_matrix, field_offset


def helmholtz_projection(source_cov, field_matrix) -> tuple[np.ndarray, np.ndarray]:
    """L2(rho0) projection of the linear field ``M (x - m0)`` onto gradient fields (Remark 2.9).

    For ``rho0 = N(m0, Sigma0)`` returns ``(S, Omega)``: ``S = M - Sigma0 Omega`` is symmetric,
    so ``S (x - m0)`` is the gradient of ``1/2 (x - m0)^T S (x - m0)``, and ``Omega`` is the
    antisymmetric solution of the Sylvester equation ``Sigma0 Omega + Omega Sigma0 = M - M^T``.
    The remainder ``w(x) = Sigma0 Omega (x - m0)`` is rho0-divergence free, eq. (2.4):
    ``div(rho0 w) = rho0 [tr(Sigma0 Omega) - (x - m0)^T Omega (x - m0)] = 0`` (trace of
    symmetric times antisymmetric, quadratic form of an antisymmetric matrix), so
    ``int <w, grad p> d rho0 = 0`` for every p. Constants are gradients and pass unchanged.
    """
    source_cov = np.asarray(source_cov, dtype=np.float64)
    field_matrix = np.asarray(field_matrix, dtype=np.float64)
    if source_cov.ndim != 2 or source_cov.shape[0] != source_cov.shape[1]:
        raise ValueError(f"source_cov must be a square matrix, got shape {source_cov.shape}")
    if field_matrix.shape != source_cov.shape:
        raise ValueError(
            f"field_matrix must have the shape of source_cov {source_cov.shape}, "
            f"got {field_matrix.shape}"
        )
    eigenvalues, vectors = np.linalg.eigh(_symmetric(source_cov))
    if eigenvalues[0] <= 0:
        raise ValueError("source_cov must be positive definite")
    return _helmholtz(eigenvalues, vectors, source_cov, field_matrix)


def _helmholtz(eigenvalues, vectors, source_cov, field_matrix):
    """Sylvester solve in the eigenbasis of Sigma0: ``Omega_ij = R_ij / (s_i + s_j)``."""
    antisymmetric_part = field_matrix - field_matrix.T
    rotated = vectors.T @ antisymmetric_part @ vectors
    rotated /= eigenvalues[:, None] + eigenvalues[None, :]
    omega = vectors @ rotated @ vectors.T
    omega = 0.5 * (omega - omega.T)
    projected = _symmetric(field_matrix - source_cov @ omega)
    return projected, omega


# ------------------------------------------------------------------------------ flow


@dataclass(frozen=True, eq=False)
class GaussianFlow:
    """Exact constrained gradient flow (cons.gf) of ``F(T) = KL(T#rho0 | gamma)``.

    ``T_t(x) = A[k] x + b[k]`` at ``t = times[k]``; ``T_0 = id``.

    times         (n,) recorded times
    A             (n, d, d) symmetric positive definite matrices
    b             (n, d) offsets
    kl            (n,) ``F(T_t) = KL(T_t#rho0 | gamma)``
    map_error     (n,) ``||T_t - T*||^2_{L2(rho0)}`` (squared)
    mean, cov     (n, d), (n, d, d) moments of ``T_t#rho0``
    kl_min        ``F* = 0``
    initial_gap   ``F(id) - F* = KL(rho0 | gamma)``
    lam           ``1 / lambda_max(Gamma)`` (Cor 2.17)
    ot_A, ot_b    the OT map ``T*`` (:func:`ot_map`)
    source, target the Gaussians
    """

    times: np.ndarray
    A: np.ndarray
    b: np.ndarray
    kl: np.ndarray
    map_error: np.ndarray
    mean: np.ndarray
    cov: np.ndarray
    kl_min: float
    initial_gap: float
    lam: float
    ot_A: np.ndarray
    ot_b: np.ndarray
    source: Gaussian
    target: Gaussian
    solver_info: dict = field(default_factory=dict)

    @property
    def gap(self) -> np.ndarray:
        """``F(T_t) - F*``."""
        return self.kl - self.kl_min


def _check_times(times) -> np.ndarray:
    try:
        times = np.array(times, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ValueError(f"times must be a 1D array of real numbers: {error}") from error
    if times.ndim != 1 or times.size == 0:
        raise ValueError(f"times must be a nonempty 1D array, got shape {times.shape}")
    if not np.all(np.isfinite(times)):
        raise ValueError("times must be finite (no NaN or inf)")
    if times[0] < 0:
        raise ValueError(f"times must be nonnegative (the flow starts at t = 0), got {times[0]}")
    if np.any(np.diff(times) <= 0):
        raise ValueError("times must be strictly increasing")
    return times


def constrained_flow(
    source: Gaussian,
    target: Gaussian,
    times,
    *,
    rtol: float = 1e-11,
    atol: float = 1e-13,
    method: str = "DOP853",
) -> GaussianFlow:
    """Solve (cons.gf) for ``F(T) = KL(T#source | target)`` exactly, from ``T_0 = id``.

    Parameters
    ----------
    source : Gaussian
        The source rho0 = N(m0, Sigma0).
    target : Gaussian
        The target gamma, of the same dimension.
    times : array_like
        Nonempty, finite, nonnegative, strictly increasing. The flow always starts from the
        identity at ``t = 0`` whether or not ``times[0] == 0``.
    rtol, atol : float, default 1e-11, 1e-13
        Tolerances of scipy's ``solve_ivp``.
    method : str, default "DOP853"
        The ``solve_ivp`` method.

    Returns
    -------
    GaussianFlow
        ``T_t`` at ``times``.

    Raises
    ------
    ValueError
        If `source` or `target` is not a `gridflow.Gaussian`, their dimensions differ, or
        `times` is invalid.
    RuntimeError
        If ``solve_ivp`` fails.

    Notes
    -----
    ODE (module docstring): ``dA/dt = S``, ``db/dt = r - S m0``, ``A(0) = I``, ``b(0) = 0``,
    where ``S (x - m0) + r`` is the tangent-cone projection of ``-grad F(T_t)`` — the
    L2(rho0) Helmholtz projection (Remark 2.9) of `velocity` via `helmholtz_projection`,
    since ``A_t`` is interior to the cone. Integrated by scipy ``solve_ivp`` (``method``,
    ``rtol``, ``atol``); the state is symmetrized at each evaluation.

    Thm 2.13 (iii) / Cor 2.17 (ii): ``F(T_t) -> 0`` at least like ``exp(-2 lam t)``; see
    `bounds`.
    """
    source, target = _check_pair(source, target)
    times = _check_times(times)
    dim = source.dim
    source_precision = _symmetric(np.linalg.inv(source.cov))
    target_precision = _symmetric(np.linalg.inv(target.cov))
    eigenvalues, vectors = np.linalg.eigh(source.cov)
    size = dim * dim

    def right_hand_side(_time, state):
        matrix = _symmetric(state[:size].reshape(dim, dim))
        offset = state[size:]
        field_matrix, field_offset = _velocity(
            source, target, matrix, offset, source_precision, target_precision
        )
        projected, _ = _helmholtz(eigenvalues, vectors, source.cov, field_matrix)
        return np.concatenate([projected.ravel(), field_offset - projected @ source.mean])

    initial = np.concatenate([np.eye(dim).ravel(), np.zeros(dim)])
    info: dict = {"method": method, "rtol": rtol, "atol": atol}
    if times[-1] == 0.0:
        states = initial[:, None].repeat(times.size, axis=1)
        info.update(nfev=0, success=True)
    else:
        solution = solve_ivp(
            right_hand_side,
            (0.0, float(times[-1])),
            initial,
            method=method,
            t_eval=times,
            rtol=rtol,
            atol=atol,
        )
        if not solution.success:
            raise RuntimeError(f"solve_ivp failed ({method}): {solution.message}")
        states = solution.y
        info.update(nfev=int(solution.nfev), success=True)

    matrices = states[:size].T.reshape(times.size, dim, dim)
    offsets = np.ascontiguousarray(states[size:].T)
    return _affine_trajectory(source, target, times, matrices, offsets, info)


def _affine_trajectory(source, target, times, matrices, offsets, info) -> GaussianFlow:
    """The ``GaussianFlow`` record of the affine maps ``T_k(x) = matrices[k] x + offsets[k]``."""
    matrices = 0.5 * (matrices + np.swapaxes(matrices, 1, 2))
    optimal_matrix, optimal_offset = ot_map(source, target)
    means = matrices @ source.mean + offsets
    covs = matrices @ source.cov @ matrices
    covs = 0.5 * (covs + np.swapaxes(covs, 1, 2))
    target_factor = np.linalg.cholesky(target.cov)
    kl_values = np.array(
        [_kl_moments(m, c, target.mean, target_factor) for m, c in zip(means, covs, strict=True)]
    )
    errors = np.array(
        [
            _map_error(source, a, o, optimal_matrix, optimal_offset)
            for a, o in zip(matrices, offsets, strict=True)
        ]
    )
    return GaussianFlow(
        times=readonly_copy(times),
        A=readonly_copy(matrices),
        b=readonly_copy(offsets),
        kl=readonly_copy(kl_values),
        map_error=readonly_copy(errors),
        mean=readonly_copy(means),
        cov=readonly_copy(covs),
        kl_min=0.0,
        initial_gap=kl(source, target),
        lam=lambda_convexity(target),
        ot_A=readonly_copy(optimal_matrix),
        ot_b=readonly_copy(optimal_offset),
        source=source,
        target=target,
        solver_info=info,
    )


def implicit_scheme(
    source: Gaussian, target: Gaussian, tau: float, steps: int, *, xtol: float = 1e-13
) -> GaussianFlow:
    """The implicit scheme (3.2) for ``F(T) = KL(T#source | target)``, exactly, from ``T_0 = id``.

    Parameters
    ----------
    source : Gaussian
        The source rho0 = N(m0, Sigma0).
    target : Gaussian
        The target gamma, of the same dimension.
    tau : float
        The step, finite and > 0.
    steps : int
        The number of steps, a positive integer.
    xtol : float, default 1e-13
        The tolerance of scipy's ``root`` (hybrid Powell).

    Returns
    -------
    GaussianFlow
        ``T_k`` at ``times = k tau``; the residual reached is in
        ``solver_info['residual']``.

    Raises
    ------
    ValueError
        If `source` or `target` is not a `gridflow.Gaussian`, their dimensions differ, or
        `tau` or `steps` is invalid.
    RuntimeError
        If a step does not converge, or reaches a root whose matrix is not positive
        definite.

    Notes
    -----
    Each proximal step ``T_{k+1} = argmin_K F(T) + ||T - T_k||^2 / (2 tau)`` stays affine
    with a symmetric positive definite matrix, interior to the cone, so its optimality
    condition is the backward Euler step of the flow's ODE (`constrained_flow`):
    ``(A_{k+1} - A_k) / tau = S(A_{k+1}, b_{k+1})``, ``(b_{k+1} - b_k) / tau = r - S m0``
    (``S``, ``r``: the Helmholtz projection of `velocity`). Solved by scipy's ``root``
    (hybrid Powell, ``xtol``) from ``T_k``; that equation also has roots with indefinite
    matrices (outside the cone), so a root whose matrix is not positive definite raises
    RuntimeError.
    """
    source, target = _check_pair(source, target)
    tau = float(tau)
    if not (np.isfinite(tau) and tau > 0.0):
        raise ValueError(f"tau must be a finite positive step, got {tau!r}")
    if isinstance(steps, bool) or int(steps) != steps or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    steps = int(steps)
    dim = source.dim
    size = dim * dim
    source_precision = _symmetric(np.linalg.inv(source.cov))
    target_precision = _symmetric(np.linalg.inv(target.cov))
    eigenvalues, vectors = np.linalg.eigh(source.cov)

    def rate(state):
        matrix, offset = state[:size].reshape(dim, dim), state[size:]
        field_matrix, field_offset = _velocity(
            source, target, matrix, offset, source_precision, target_precision
        )
        projected, _ = _helmholtz(eigenvalues, vectors, source.cov, field_matrix)
        return np.concatenate([projected.ravel(), field_offset - projected @ source.mean])

    states = [np.concatenate([np.eye(dim).ravel(), np.zeros(dim)])]
    worst = 0.0
    for _ in range(steps):
        previous = states[-1]
        solution = optimize.root(
            lambda state, previous=previous: (state - previous) / tau - rate(state),
            previous,
            method="hybr",
            options={"xtol": xtol},
        )
        residual = float(np.abs(solution.fun).max())
        if not solution.success and residual > 1e-9:
            raise RuntimeError(f"the implicit step did not converge: {solution.message}")
        smallest = np.linalg.eigvalsh(_symmetric(solution.x[:size].reshape(dim, dim)))[0]
        if smallest <= 0.0:  # the backward Euler equation's other root, outside the cone
            raise RuntimeError(
                f"the implicit step found a matrix with eigenvalue {smallest:.3g} <= 0, not "
                f"the proximal point; try a smaller tau than {tau}"
            )
        worst = max(worst, residual)
        states.append(solution.x)
    states = np.array(states)
    times = tau * np.arange(steps + 1)
    info = {"method": "backward Euler (scipy.optimize.root, hybr)", "residual": worst}
    return _affine_trajectory(
        source, target, times, states[:, :size].reshape(-1, dim, dim), states[:, size:], info
    )


def pushforward_mean(source: Gaussian, target: Gaussian, times) -> np.ndarray:
    """Closed-form mean of ``T_t#rho0`` along (cons.gf).

    ``mu_t = m_gamma + expm(-t Gamma^{-1}) (m0 - m_gamma)``, from
    ``d(A m0 + b)/dt = S m0 + r - S m0 = r = -Gamma^{-1}(mu - m_gamma)``. Returns (n, d).
    """
    source, target = _check_pair(source, target)
    times = _check_times(times)
    eigenvalues, vectors = np.linalg.eigh(target.cov)
    coefficients = vectors.T @ (source.mean - target.mean)
    decay = np.exp(-times[:, None] / eigenvalues[None, :])
    return target.mean + (decay * coefficients) @ vectors.T


# ------------------------------------------------------------------ rates and bounds


@dataclass(frozen=True)
class FlowBounds:
    """Thm 2.13 (iii) bounds at ``times`` (Cor 2.17 (ii) for KL).

    energy_gap  (iii.a) ``exp(-2 lam t) (F(id) - F*)``
    map_error   (iii.b) ``(4 / lam) exp(-2 lam t) (F(id) - F*)`` (bounds the squared error)
    """

    times: np.ndarray
    energy_gap: np.ndarray
    map_error: np.ndarray


def bounds(flow: GaussianFlow) -> FlowBounds:
    """Thm 2.13 (iii.a) and (iii.b) evaluated at ``flow.times`` with ``lam = flow.lam``."""
    return FlowBounds(
        times=flow.times,
        energy_gap=rates.energy_gap_bound_strongly_convex(flow.times, flow.initial_gap, flow.lam),
        map_error=rates.map_error_bound_strongly_convex(flow.times, flow.initial_gap, flow.lam),
    )


def fitted_rate(flow: GaussianFlow, window=(1e-4, 1e-11)) -> float:
    """Fitted asymptotic decay rate of ``F(T_t) - F*`` (compare with ``2 lam``).

    Least-squares slope of ``log(F(T_t) - F*)`` over the samples whose gap lies within
    ``window`` relative to ``F(id) - F*`` (:func:`gridflow.rates.fitted_rate`).
    """
    return rates.fitted_rate(flow.times, flow.gap, window=window, relative=True)


@dataclass(frozen=True)
class LinearizedRates:
    """Decay rates of the flow linearized at ``T*`` (map-error modes; F gap decays at twice).

    mean        (d,) ascending eigenvalues of ``Gamma^{-1}``: the mean obeys
                ``dmu/dt = -Gamma^{-1}(mu - m_gamma)`` exactly; the smallest is ``lam``
    covariance  (d(d+1)/2,) ascending rates of ``dA/dt = S(A)`` linearized at ``A*``
    """

    mean: np.ndarray
    covariance: np.ndarray

    @property
    def slowest_energy_rate(self) -> float:
        """``2 min(mean.min(), covariance.min())`` — the asymptotic rate of ``F - F*``."""
        return 2.0 * float(min(self.mean[0], self.covariance[0]))


def linearized_rates(source: Gaussian, target: Gaussian) -> LinearizedRates:
    """Rates of the linearization of (cons.gf) at the OT map.

    Covariance part: ``H -> P(-A*^{-1} H A*^{-1} Sigma0^{-1} - Gamma^{-1} H)`` on symmetric H
    (P = :func:`helmholtz_projection`), the derivative of ``A -> S(A)`` at ``A*``. It is
    self-adjoint for ``<H, K> = tr(H Sigma0 K)`` and equals minus the Hessian of F restricted
    to linear gradient fields, ``Q(H) = tr(Gamma^{-1} H Sigma0 H) + tr(A*^{-1} H A*^{-1} H)``,
    so every rate exceeds ``lam`` strictly (the entropy term is positive).
    """
    source, target = _check_pair(source, target)
    dim = source.dim
    optimal_matrix, _ = ot_map(source, target)
    inverse_optimal = np.linalg.inv(optimal_matrix)
    source_precision = np.linalg.inv(source.cov)
    target_precision = np.linalg.inv(target.cov)
    eigenvalues, vectors = np.linalg.eigh(source.cov)
    rows, cols = np.triu_indices(dim)
    basis = []
    for i, j in zip(rows, cols, strict=True):
        element = np.zeros((dim, dim))
        element[i, j] = element[j, i] = 1.0
        basis.append(element)
    jacobian = np.empty((len(basis), len(basis)))
    for k, element in enumerate(basis):
        derivative = (
            -inverse_optimal @ element @ inverse_optimal @ source_precision
            - target_precision @ element
        )
        projected, _ = _helmholtz(eigenvalues, vectors, source.cov, derivative)
        jacobian[:, k] = projected[rows, cols]
    covariance_rates = np.sort(-np.linalg.eigvals(jacobian).real)
    mean_rates = np.sort(np.linalg.eigvalsh(target_precision))
    return LinearizedRates(mean=mean_rates, covariance=covariance_rates)
