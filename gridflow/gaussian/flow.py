"""The exact constrained flow (cons.gf) between Gaussians and its implicit scheme (3.2):
the lifted gradient, its Helmholtz projection, the ODE of (A_t, b_t) (package docstring)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import optimize
from scipy.integrate import solve_ivp

from gridflow.checks import (
    as_shaped_array,
    positive_float,
    positive_int,
    readonly_copy,
    require_finite,
    symmetric_positive_definite,
)
from gridflow.gaussian.closed_forms import (
    _check_affine,
    _check_pair,
    _kl_moments,
    _map_error,
    _symmetric,
    kl,
    lambda_convexity,
    ot_map,
)
from gridflow.measures.gaussians import Gaussian

IVP_METHODS = ("RK23", "RK45", "DOP853", "Radau", "BDF", "LSODA")
"""The integrators of scipy's ``solve_ivp`` that ``constrained_flow`` takes by name."""

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
    source_cov = symmetric_positive_definite(source_cov, "source_cov")
    field_matrix = as_shaped_array(
        field_matrix, source_cov.shape, "field_matrix", " (the shape of source_cov)"
    )
    require_finite(field_matrix, "field_matrix")
    eigenvalues, vectors = np.linalg.eigh(source_cov)
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
        The ``solve_ivp`` method, one of ``IVP_METHODS``.

    Returns
    -------
    GaussianFlow
        ``T_t`` at ``times``.

    Raises
    ------
    TypeError
        If `source` or `target` is not a `gridflow.Gaussian`, or `rtol` or `atol` is not
        a real number.
    ValueError
        If their dimensions differ, `times` is invalid, or `rtol` or `atol` is not finite
        and > 0.
    RuntimeError
        If ``solve_ivp`` fails.

    Notes
    -----
    ODE (module docstring): ``dA/dt = S``, ``db/dt = r - S m0``, ``A(0) = I``, ``b(0) = 0``,
    where ``S (x - m0) + r`` is the tangent-cone projection of ``-grad F(T_t)`` — the
    L2(rho0) Helmholtz projection (Remark 2.9) of `velocity` via `helmholtz_projection`,
    since ``A_t`` is interior to the cone. Integrated by scipy ``solve_ivp`` (``method``,
    ``rtol``, ``atol``); the state is symmetrized at each evaluation. Once the state is
    within ``rtol`` (relative to max(1, the largest entry of T*)) of the limit T* (``ot_map``),
    further integration only adds rounding (the error plateaus at 1e-13..1e-12), while an
    explicit method still needs O(t) steps: the integration stops there
    (``solver_info["converged_at"]``) and later times hold T* exactly, so that t = 1e8
    takes as long as t = 100.

    Thm 2.13 (iii) / Cor 2.17 (ii): ``F(T_t) -> 0`` at least like ``exp(-2 lam t)``; see
    `bounds`.
    """
    source, target = _check_pair(source, target)
    times = _check_times(times)
    rtol = positive_float(rtol, "rtol", hint=" (solve_ivp's relative tolerance, e.g. 1e-11)")
    atol = positive_float(atol, "atol", hint=" (solve_ivp's absolute tolerance, e.g. 1e-13)")
    if not isinstance(method, str) or method not in IVP_METHODS:
        raise ValueError(f"method must be one of {', '.join(IVP_METHODS)}, got {method!r}")
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
    optimal_matrix, optimal_offset = ot_map(source, target)
    limit = np.concatenate([optimal_matrix.ravel(), optimal_offset])
    tolerance = rtol * max(1.0, float(np.abs(limit).max()))

    def converged(_time, state):
        return float(np.abs(state - limit).max()) - tolerance

    converged.terminal = True
    converged.direction = -1
    info: dict = {"method": method, "rtol": rtol, "atol": atol, "converged_at": None}
    if times[-1] == 0.0:
        states = initial[:, None].repeat(times.size, axis=1)
        info.update(nfev=0, success=True)
    elif converged(0.0, initial) <= 0.0:
        states = np.where(times == 0.0, initial[:, None], limit[:, None])
        info.update(nfev=0, success=True, converged_at=0.0)
    else:
        solution = solve_ivp(
            right_hand_side,
            (0.0, float(times[-1])),
            initial,
            method=method,
            t_eval=times,
            rtol=rtol,
            atol=atol,
            events=converged,
        )
        if not solution.success:
            raise RuntimeError(f"solve_ivp failed ({method}): {solution.message}")
        states = solution.y
        if solution.status == 1:  # at T* within rtol: later times hold the limit T*
            info["converged_at"] = float(solution.t_events[0][0])
            remaining = times.size - states.shape[1]
            states = np.hstack([states, limit[:, None].repeat(remaining, axis=1)])
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
    TypeError
        If `source` or `target` is not a `gridflow.Gaussian`, `tau` or `xtol` is not a real
        number, or `steps` not an integer.
    ValueError
        If their dimensions differ, or `tau`, `steps` or `xtol` is not > 0.
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
    tau = positive_float(tau, "tau", hint=" (the step)")
    steps = positive_int(steps, "steps")
    xtol = positive_float(xtol, "xtol", hint=" (scipy root's tolerance, e.g. 1e-13)")
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
