"""A target that is not log-concave, or whose Hessian is singular or not finite, makes the
grid solver fail with a SolverError naming the cause, never a raw LinAlgError."""

import numpy as np
import pytest
from scipy import sparse

from gridflow import Grid, LogConcaveTarget, SolverError
from gridflow.failures import NotLogConcaveError
from gridflow.measures import GaussianMixture
from gridflow.potentials import GaugedFactorization
from gridflow.problem import Problem
from gridflow.schemes import minimize, solve


def _problem_1d(V, grad_V, hess_V, name):
    target = LogConcaveTarget(V, grad_V, dim=1, hess_V=hess_V, name=name)
    source = GaussianMixture(np.zeros((1, 1)), np.ones((1, 1, 1)), np.ones(1))
    return Problem(Grid((-6.0,), (6.0,), (101,)), source, target)


def _double_well():
    """V(y) = y⁴/4 − y²: integrable, but ∇²V = 3y² − 2 < 0 near 0."""
    return _problem_1d(
        lambda y: y[:, 0] ** 4 / 4 - y[:, 0] ** 2,
        lambda y: y**3 - 2 * y,
        lambda y: (3 * y[:, 0] ** 2 - 2)[:, None, None],
        "double well",
    )


def _quadratic_with_hessian(hess_V, dim=1, nodes=101):
    target = LogConcaveTarget(
        lambda y: 0.5 * np.sum(y**2, axis=1), lambda y: y, dim=dim, hess_V=hess_V, name="flat"
    )
    source = GaussianMixture(np.zeros((1, dim)), np.eye(dim)[None], np.ones(1))
    return Problem(Grid((-6.0,) * dim, (6.0,) * dim, (nodes,) * dim), source, target)


def test_a_target_that_is_not_log_concave_is_named():
    with pytest.raises(NotLogConcaveError, match=r"V is not convex.*not log-concave") as caught:
        minimize(_double_well())
    assert isinstance(caught.value, SolverError)
    assert not isinstance(caught.value, np.linalg.LinAlgError)


def test_the_implicit_step_names_the_largest_convex_step():
    with pytest.raises(NotLogConcaveError, match=r"convex only for τ < 0\.50"):
        solve(_double_well(), "implicit", 2.0, 2)


def test_a_singular_hessian_of_V_is_named():
    problem = _quadratic_with_hessian(lambda y: np.zeros((len(y), 1, 1)))
    with pytest.raises(SolverError, match="singular Hessian"):
        minimize(problem)


def test_a_singular_hessian_of_V_is_named_in_2d():
    problem = _quadratic_with_hessian(lambda y: np.zeros((len(y), 2, 2)), dim=2, nodes=17)
    with pytest.raises(SolverError, match="singular Hessian"):
        minimize(problem)


def test_a_hessian_that_is_not_finite_is_named():
    problem = _quadratic_with_hessian(lambda y: np.full((len(y), 1, 1), np.nan))
    with pytest.raises(SolverError, match="not finite"):
        minimize(problem)


def test_a_singular_gauged_matrix_is_a_linalg_error_for_the_caller_to_explain():
    problem = _quadratic_with_hessian(None, dim=2, nodes=9)
    size = problem.gradient_operator.shape[1]
    singular = sparse.csr_matrix((np.ones(size - 1), (np.arange(size - 1), np.arange(size - 1))),
                                 shape=(size, size))  # fmt: skip
    with pytest.raises(np.linalg.LinAlgError):
        GaugedFactorization(problem, singular)
