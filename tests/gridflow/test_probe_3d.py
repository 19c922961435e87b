"""Answers to a probe of the 3D surfaces with bad inputs (issue 22): each silent answer,
traceback or unclear message it found, now refused with a message that names the input."""

import copy
import pickle

import numpy as np
import pytest

from gridflow import (
    Grid,
    GridMap,
    cones,
    examples,
    map_distance,
    minimize,
    operators,
    proximal,
    solve,
    stencils,
)
from gridflow.__main__ import main
from gridflow.functionals import OutsideConeError, log_det_curvature
from gridflow.groundtruth import problem_of
from gridflow.measures import CallableSource
from gridflow.warm_start import coarse_to_fine_start


@pytest.fixture(scope="module")
def problem():
    return examples.problem_3d(5, box=(-3.5, 3.5), density_floor=1e-4, max_cut_mass=1e-3)


@pytest.mark.parametrize("tau", [-np.inf, -1.0, 0.0, np.nan])
def test_the_proximal_step_refuses_a_step_that_is_not_positive(problem, tau):
    with pytest.raises(ValueError, match="tau must be > 0"):
        proximal.proximal_step(problem, problem.identity(), tau)
    with pytest.raises(ValueError, match="tau must be > 0"):
        proximal.newton_matrix(problem, None, tau, problem.identity())


@pytest.mark.parametrize("tau", ["1", None, True])
def test_the_proximal_step_refuses_a_step_that_is_no_number(problem, tau):
    with pytest.raises(TypeError, match="tau must be a real number"):
        proximal.proximal_step(problem, problem.identity(), tau)


def test_solver_names_are_checked_by_every_scheme_and_minimize(problem):
    with pytest.raises(ValueError, match="step_solver must be one of"):
        minimize(problem, solver="Newton")
    for scheme in ("explicit", "flow", "implicit"):
        with pytest.raises(ValueError, match="step_solver must be one of"):
            solve(problem, scheme, tau=1e-3, steps=1, step_solver="bogus")


def test_a_start_map_is_refused_where_newton_runs_on_the_potential(problem):
    with pytest.raises(ValueError, match="proximal_potential"):
        proximal.proximal_step(problem, problem.identity(), 1.0, start=problem.identity())


def test_the_tangent_cone_is_refused_at_a_map_outside_the_cone(problem):
    outside = problem.map_of(-problem.identity_potential())
    v = np.ones(problem.points.shape)
    with pytest.raises(ValueError, match="T is not in K_h"):
        cones.project_onto_tangent_cone(problem, outside, v)
    with pytest.raises(TypeError, match="activity_tolerance"):
        cones.active_set(problem, problem.identity(), False)
    with pytest.raises(TypeError, match="activity_tolerance"):
        cones.active_set(problem, problem.identity(), "abc")


@pytest.mark.parametrize("kind", ["indefinite", "zero"])
def test_curvature_and_newton_matrix_refuse_a_map_outside_the_cone(problem, kind):
    T = (
        problem.map_of(-problem.identity_potential())
        if kind == "indefinite"
        else 0 * problem.identity()
    )
    with pytest.raises(OutsideConeError):
        log_det_curvature(problem, T)
    with pytest.raises(OutsideConeError):
        proximal.newton_matrix(problem, None, 1.0, T)


def test_a_grid_map_refuses_values_that_are_not_finite(problem):
    optimum = minimize(problem)
    with pytest.raises(ValueError, match=r"GridMap\.map contains"):
        GridMap(
            optimum.grid,
            optimum.points,
            np.full_like(optimum.map, np.nan),
            None,
            optimum.weights,
            {},
        )


def test_the_quadratic_form_kernel_refuses_arrays_it_would_overrun():
    grid = Grid([0.0] * 3, [1.0] * 3, [5, 6, 7])
    window = operators.map_window(grid.spacing)
    sites = operators.map_shape(grid)
    blocks = np.ones((int(np.prod(sites)), 3, 3))
    values = np.zeros((210, 125))
    with pytest.raises(ValueError, match="blocks must be"):
        stencils.add_quadratic_form(values, blocks[:10], window, sites, grid.shape, 2)
    with pytest.raises(ValueError, match="leave the grid"):
        stencils.add_quadratic_form(values, blocks, window, (6, 6, 7), grid.shape, 2)
    with pytest.raises(ValueError, match="values must be"):
        stencils.add_quadratic_form(values[:, :27], blocks, window, sites, grid.shape, 2)


@pytest.mark.parametrize("spacing", [(-0.5, 0.5, 0.5), (0.0, 0.5, 0.5), (), 0.5, (0.1,) * 4])
def test_windows_refuse_a_spacing_that_is_not_a_grid_s(spacing):
    with pytest.raises(ValueError, match="spacing must be"):
        operators.map_window(spacing)
    with pytest.raises(ValueError, match="spacing must be"):
        operators.hessian_window(spacing)


@pytest.mark.parametrize("anchor", [3.5, "0", True])
def test_gauge_nodes_refuse_an_anchor_that_is_no_index(anchor):
    with pytest.raises(TypeError, match="anchor must be a node index"):
        operators.gauge_nodes(Grid([0.0] * 3, [1.0] * 3, [5, 5, 5]), anchor)


@pytest.mark.parametrize("factor", [2.5, 0, True])
def test_refined_refuses_a_factor_that_is_no_positive_integer(factor):
    with pytest.raises(ValueError, match="factor must be an integer >= 1"):
        Grid([0.0] * 3, [1.0] * 3, [5, 5, 5]).refined(factor)


def test_the_coarse_start_refuses_what_is_no_discrete_map(problem):
    with pytest.raises(TypeError, match="coarser"):
        coarse_to_fine_start(problem, None)


def test_problems_and_their_targets_pickle_and_copy(problem):
    again = pickle.loads(pickle.dumps(problem))
    np.testing.assert_array_equal(again.weights, problem.weights)
    np.testing.assert_array_equal(again.target.V(problem.points), problem.target.V(problem.points))
    assert copy.deepcopy(problem).target.spec == problem.target.spec


def test_a_map_file_s_problem_is_refused_in_another_dimension():
    metadata = {
        "source": {"kind": "gaussian-mixture", "means": [[0.0, 0.0, 0.0]],
                   "covs": [np.eye(3).tolist()], "weights": [1.0]},
        "target": {"kind": "gaussian", "mean": [0.0] * 3, "cov": np.eye(3).tolist()},
    }  # fmt: skip
    source, target = problem_of(metadata, 3)
    assert source.dim == target.dim == 3
    with pytest.raises(ValueError, match="d = 3"):
        problem_of(metadata, 2)


def test_map_distance_names_samples_of_another_dimension(problem):
    grid_map = GridMap.from_discrete_map(minimize(problem))
    with pytest.raises(
        ValueError, match="source_samples are points in d = 2, trained_map maps d = 3"
    ):
        map_distance(grid_map, grid_map, np.zeros((10, 2)), np.eye(3))


def test_the_mass_check_of_a_3d_density_callable_stays_small():
    """150 cells per piece and axis made 450³ density values (8 GB); at most 40 in 3D."""
    source = CallableSource(lambda x: np.exp(-0.5 * (x**2).sum(1)), 3)
    calls = []

    def counting(points):
        calls.append(points.shape[0])
        return source.function(points)

    mass = CallableSource(counting, 3).mass_outside([-6.0] * 3, [6.0] * 3)
    assert mass < 1e-6 and max(calls) <= 120**3


def test_a_3d_density_file_is_refused_with_what_to_give_instead(tmp_path, capsys):
    np.save(tmp_path / "d3.npy", np.ones((9, 9, 9)))
    argv = ["groundtruth", "--source", str(tmp_path / "d3.npy"), "--source-box", "-4", "4",
            "--out", str(tmp_path / "out.npz")]  # fmt: skip
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert "a density in d = 3 is not supported: give a Gaussian mixture file" in (
        capsys.readouterr().err
    )


def test_a_conic_projection_onto_the_cone_is_accepted_as_a_map_of_the_cone():
    """The cvxpy projection returns eigenvalues of about -1.7e-8 on K_h's boundary (review):
    within a conic solver's accuracy they count as active, not as a map outside K_h."""
    problem = examples.problem_2d(9)
    v = problem.identity() + 0.8 * np.random.default_rng(0).standard_normal(problem.points.shape)
    projected = cones.project_onto_cone(problem, v)
    assert cones.smallest_eigenvalues(problem, projected).min() < 0  # roundoff of the solver
    assert cones.active_set(problem, projected).count > 0
    w = cones.project_onto_tangent_cone(problem, projected, np.ones(problem.points.shape))
    assert np.all(np.isfinite(w))


def test_a_changed_copy_of_a_built_in_target_is_not_pickled_as_the_built_in():
    import dataclasses

    from gridflow import LogConcaveTarget

    target = LogConcaveTarget.gaussian([0.0, 0.0], np.eye(2))
    assert pickle.loads(pickle.dumps(target)).built_in
    changed = dataclasses.replace(target, name="renamed", lam=0.1)
    assert not changed.built_in
    with pytest.raises((AttributeError, pickle.PicklingError)):
        pickle.dumps(changed)  # its closures cannot be stored: it fails, never silently
