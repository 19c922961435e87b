"""The bounds of Theorem 2.13 (iii) along an exact Gaussian flow, its fitted rate, and the
rates of the linearized flow at T*."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gridflow import rates
from gridflow.checks import require_instance
from gridflow.gaussian.closed_forms import _check_pair, ot_map
from gridflow.gaussian.flow import GaussianFlow, _helmholtz
from gridflow.measures.gaussians import Gaussian

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


FLOW_HINT = "; compute one with gridflow.gaussian.constrained_flow or implicit_scheme"


def bounds(flow: GaussianFlow) -> FlowBounds:
    """Thm 2.13 (iii.a) and (iii.b) evaluated at ``flow.times`` with ``lam = flow.lam``."""
    flow = require_instance(flow, GaussianFlow, "flow", FLOW_HINT)
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
    flow = require_instance(flow, GaussianFlow, "flow", FLOW_HINT)
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
