"""Named test cases shared by the tests, the validation report and the notebooks."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gridflow import cones, functionals, potentials
from gridflow.checks import as_float
from gridflow.grid import Grid
from gridflow.measures import Gaussian, GaussianMixture, LogConcaveTarget
from gridflow.problem import Problem

BOX_1D = (-6.0, 6.0)


def mixture_1d() -> GaussianMixture:
    """½ N(-1.5, 0.5²) + ½ N(1.5, 0.7²): mean 0, as the target's (docs/validation.md)."""
    return GaussianMixture([[-1.5], [1.5]], [[[0.25]], [[0.49]]], [0.5, 0.5])


def shifted_mixture_1d() -> GaussianMixture:
    """½ N(-1, 0.5²) + ½ N(2, 0.7²): mean 0.5, which excites the slowest (translation) mode."""
    return GaussianMixture([[-1.0], [2.0]], [[[0.25]], [[0.49]]], [0.5, 0.5])


def gaussian_source_1d() -> Gaussian:
    """N(0.5, 0.8²): its OT map to N(0, 1) has slope 1.25 everywhere (a non-stiff case)."""
    return Gaussian([0.5], [[0.64]])


def _interval(box) -> tuple[float, float]:
    """``box`` as (lower, upper): a pair of numbers, else TypeError/ValueError."""
    if not hasattr(box, "__len__") or isinstance(box, str):
        raise TypeError(f"box must be a pair (lower, upper) of numbers, got {box!r}")
    if len(box) != 2:
        raise ValueError(f"box must be a pair (lower, upper) of numbers, got {len(box)}: {box!r}")
    return as_float(box[0], "box[0]"), as_float(box[1], "box[1]")


def problem_1d(nodes: int = 400, source=None, target=None, box=BOX_1D) -> Problem:
    """The 1D mixture → N(0, 1) on [-6, 6] with `nodes` grid nodes."""
    lower, upper = _interval(box)
    return Problem(
        Grid(lower=[lower], upper=[upper], shape=[nodes]),
        source=mixture_1d() if source is None else source,
        target=LogConcaveTarget.gaussian([0.0], [[1.0]]) if target is None else target,
    )


# The paper's 4-mode source (§3.4.2; docs/mathematics.md, 'The paper's experiment'):
# means, covariances and weights.
PAPER_MIXTURE_MEANS = 2.0 * np.array([[-1.0, -1.0], [-0.5, 1.0], [1.0, -1.5], [1.0, 1.0]])
PAPER_MIXTURE_COVS = np.array(
    [
        [[0.10, 0.06], [0.06, 0.10]],
        [[0.10, 0.01], [0.01, 0.50]],
        [[0.10, 0.03], [0.03, 0.10]],
        [[0.10, 0.00], [0.00, 0.10]],
    ]
)
PAPER_MIXTURE_WEIGHTS = np.array([0.3, 0.2, 0.3, 0.2])
for _array in (PAPER_MIXTURE_MEANS, PAPER_MIXTURE_COVS, PAPER_MIXTURE_WEIGHTS):
    _array.setflags(write=False)
BOX_2D = (-6.0, 6.0)


def paper_mixture() -> GaussianMixture:
    """The paper's 4-mode Gaussian mixture in d = 2 (§3.4.2 (i), the source of its Fig. 2)."""
    return GaussianMixture(PAPER_MIXTURE_MEANS, PAPER_MIXTURE_COVS, PAPER_MIXTURE_WEIGHTS)


def gaussian_source_2d() -> Gaussian:
    """N(0, [[0.6, 0.25], [0.25, 0.4]]): the 2D case with a closed-form OT map to N(0, I)."""
    return Gaussian([0.0, 0.0], [[0.6, 0.25], [0.25, 0.4]])


def problem_2d(nodes: int = 33, source=None, target=None, box=(-5.0, 5.0)) -> Problem:
    """`source` (default `gaussian_source_2d`) → N(0, I) on box² with nodes × nodes nodes.
    At the default density floor `minimize` needs 11 nodes or more: on 9 × 9 its Newton
    matrix is singular to roundoff (a SolverError)."""
    lower, upper = _interval(box)
    return Problem(
        Grid(lower=[lower] * 2, upper=[upper] * 2, shape=[nodes, nodes]),
        source=gaussian_source_2d() if source is None else source,
        target=LogConcaveTarget.gaussian([0.0, 0.0], np.eye(2)) if target is None else target,
    )


def gaussian_pair_3d() -> tuple[Gaussian, Gaussian]:
    """A correlated, off-center Gaussian source and target in d = 3: the 3D case with a
    closed-form OT map (the validation's and the benchmark's)."""
    source = Gaussian([0.2, -0.1, 0.1], [[0.6, 0.2, 0.1], [0.2, 0.5, -0.1], [0.1, -0.1, 0.7]])
    target = Gaussian([0.0, 0.3, -0.2], [[1.0, 0.3, 0.0], [0.3, 0.8, 0.2], [0.0, 0.2, 1.2]])
    return source, target


def mixture_3d() -> GaussianMixture:
    """A three-component Gaussian mixture in d = 3 (modes about 2 apart, one correlated):
    the 3D ground truth of the benchmark."""
    return GaussianMixture(
        [[-1.0, 0.0, 0.5], [1.0, 0.5, -0.5], [0.0, -1.0, 0.0]],
        [
            [[0.3, 0.05, 0.0], [0.05, 0.4, 0.0], [0.0, 0.0, 0.3]],
            [[0.4, 0.0, 0.1], [0.0, 0.3, 0.0], [0.1, 0.0, 0.35]],
            [[0.3, 0.0, 0.0], [0.0, 0.3, 0.05], [0.0, 0.05, 0.4]],
        ],
        [0.4, 0.35, 0.25],
    )


def problem_3d(
    nodes: int = 17, source=None, target=None, box=(-5.0, 5.0), **problem_options
) -> Problem:
    """A 3D problem on box³ with nodes³ nodes, by default `gaussian_pair_3d`'s source and
    target; `problem_options` go to `Problem`. At the default density floor `minimize` needs
    more than 9 nodes per axis: on 9³ its continuation in the floor fails after about 30 s
    (a SolverError)."""
    lower, upper = _interval(box)
    pair_source, pair_target = gaussian_pair_3d()
    return Problem(
        Grid(lower=[lower] * 3, upper=[upper] * 3, shape=[nodes] * 3),
        source=pair_source if source is None else source,
        target=(
            LogConcaveTarget.gaussian(pair_target.mean, pair_target.cov)
            if target is None
            else target
        ),
        **problem_options,
    )


COUNTING_TOLERANCE = 1e-6


@dataclass(frozen=True)
class ConstrainedDescent:
    """The explicit scheme (3.1) for a potential energy, with what the projection prevents.

    energy (K + 1,); rank_one, rank_zero (K + 1,): active points of T_k (activity
    tolerance COUNTING_TOLERANCE, above the cvxpy projection's accuracy of about 1e-8);
    smallest_eigenvalue (K + 1,): min over nodes of λmin(H_h φ_k) (≥ 0 in
    K_h, up to the projection solver's tolerance); unprojected_violations (K,): nodes where
    the symmetric part of the discrete Jacobian of T_k - τ∇F(T_k) has a negative
    eigenvalue; helmholtz_violations (K,): the same after projecting that update onto
    discrete gradient fields only (Remark 2.7).
    """

    maps: np.ndarray
    energy: np.ndarray
    rank_one: np.ndarray
    rank_zero: np.ndarray
    smallest_eigenvalue: np.ndarray
    unprojected_violations: np.ndarray
    helmholtz_violations: np.ndarray


def degenerate_potential(problem: Problem) -> np.ndarray:
    """φ0(x) = ½ max(x1, 0)² + ½ x2²: convex, its Hessian has rank 1 wherever x1 < 0."""
    x = problem.grid.nodes
    return 0.5 * np.maximum(x[:, 0], 0.0) ** 2 + 0.5 * x[:, 1] ** 2


def quadratic_energy_descent(problem: Problem, matrix, tau: float, steps: int, initial=None):
    """(3.1) for F(T) = Σ_i w_i ½ T_iᵀ A T_i (W(y) = ½ yᵀAy convex, minimized by T ≡ 0).

    Its minimizers collapse the map to a point, the rank-zero vertex of K_h. Started at
    `degenerate_potential` (default), the update T - τAT is not a gradient field where
    A does not commute with the Hessian, and leaves K_h; the projected scheme stays in it.
    """
    matrix = np.asarray(matrix, dtype=np.float64)
    T = problem.map_of(degenerate_potential(problem) if initial is None else initial)
    maps, unprojected, helmholtz = [T], [], []

    def violations(field):
        return int((cones.smallest_eigenvalues(problem, field) < -1e-9).sum())

    def negative_symmetric_part(field):
        jacobian = functionals.discrete_hessian(problem, field)  # the symmetric part
        return int((np.linalg.eigvalsh(jacobian)[:, 0] < -1e-9).sum())

    for _ in range(steps):
        update = maps[-1] - tau * maps[-1] @ matrix.T
        unprojected.append(negative_symmetric_part(update))
        helmholtz.append(violations(potentials.helmholtz_projection(problem, update)[1]))
        maps.append(cones.project_onto_cone(problem, update))
    maps = np.stack(maps)
    active = [cones.active_set(problem, T, COUNTING_TOLERANCE) for T in maps]
    return ConstrainedDescent(
        maps=maps,
        energy=np.array([0.5 * problem.inner(T, T @ matrix.T) for T in maps]),
        rank_one=np.array([a.rank_one.sum() for a in active]),
        rank_zero=np.array([a.rank_zero.sum() for a in active]),
        smallest_eigenvalue=np.array([cones.smallest_eigenvalues(problem, T).min() for T in maps]),
        unprojected_violations=np.array(unprojected),
        helmholtz_violations=np.array(helmholtz),
    )
