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

from gridflow.gaussian.bounds import (
    FlowBounds,
    LinearizedRates,
    bounds,
    fitted_rate,
    linearized_rates,
)
from gridflow.gaussian.closed_forms import kl, lambda_convexity, map_error, ot_map, w2
from gridflow.gaussian.flow import (
    GaussianFlow,
    constrained_flow,
    helmholtz_projection,
    implicit_scheme,
    pushforward_mean,
    velocity,
)
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
