"""Answers to the fifth list of a user's bad or unusual inputs (issue 22), and to the
leftovers the fourth list's note named: each now answered, refused by name or warned about."""

import numpy as np
import pytest

import gridflow.__main__ as gridflow_cli
import neural.__main__ as neural_cli
from gridflow import GridMap, examples, minimize
from gridflow.cli import NEGATIVE_NUMBER


@pytest.mark.parametrize("text", ["-1", "-1.", "-.5", "-1e-300", "-2.5E+3", "-1e1", "-inf", "-NaN"])
def test_negative_numbers_with_exponents_are_arguments(text):
    assert NEGATIVE_NUMBER.match(text)


@pytest.mark.parametrize("text", ["-e1", "-1e", "--box", "-", "-1e-3x", "-infinity"])
def test_options_are_not_numbers(text):
    assert not NEGATIVE_NUMBER.match(text)


def test_source_box_reads_negative_exponents():
    # argparse's own pattern has no exponent: "-1e-3" was an unknown option
    args = gridflow_cli.parser().parse_args(
        ["groundtruth", "--source", "d.npy", "--source-box", "-1e-3", "1", "-2.5E+0", "2"]
    )
    assert [float(v) for v in args.source_box] == [-1e-3, 1.0, -2.5, 2.0]


def test_negative_exponent_reaches_the_value_check(capsys):
    with pytest.raises(SystemExit) as ended:
        neural_cli.main(["flowcheck", "--tau", "-1e-3"])
    assert ended.value.code == 2
    assert "--tau must be a finite number > 0, got -0.001" in capsys.readouterr().err


@pytest.fixture(scope="module")
def solved():
    problem = examples.problem_2d(11)
    return minimize(problem)


def _grid_map(solved, **changes):
    fields = dict(
        grid=solved.grid,
        points=solved.points,
        map=solved.map,
        nodal_potential=np.reshape(solved.potential, solved.grid.shape),
        weights=solved.weights,
        metadata={},
    )
    return GridMap(**{**fields, **changes})


def test_grid_map_refuses_rows_out_of_grid_order(solved):
    # reversed rows were interpolated as if in C order: T(0.3, -0.7) came out negated
    order = np.arange(solved.points.shape[0])[::-1]
    with pytest.raises(ValueError, match="cell centers in C order"):
        _grid_map(solved, points=solved.points[order], map=solved.map[order],
                  weights=solved.weights[order])  # fmt: skip


@pytest.mark.parametrize("move", ["shift", "random"])
def test_grid_map_refuses_points_that_are_not_cell_centers(solved, move):
    points = solved.points + 0.01 if move == "shift" else (
        np.random.default_rng(0).uniform(-5, 5, solved.points.shape))  # fmt: skip
    with pytest.raises(ValueError, match="cell centers"):
        _grid_map(solved, points=points)


def test_grid_map_keeps_its_own_copies(solved):
    grid_map = GridMap.from_discrete_map(solved)
    point = np.array([[1.0, 1.0]])
    before = grid_map(point)
    changed = solved.map.copy()
    changed_map = type(solved)(solved.grid, solved.points, solved.weights, changed,
                               solved.potential, solved.energy)  # fmt: skip
    shared = GridMap.from_discrete_map(changed_map)
    changed[:] = 0.0
    np.testing.assert_array_equal(shared(point), before)
    assert not grid_map.map.flags.writeable


def test_grid_map_refuses_a_nan_potential(solved):
    potential = np.reshape(solved.potential, solved.grid.shape).copy()
    potential[0, 0] = np.nan
    with pytest.raises(ValueError, match="nodal_potential contains 1 NaN"):
        _grid_map(solved, nodal_potential=potential)


def test_grid_map_refuses_negative_weights(solved):
    with pytest.raises(ValueError, match="non-negative"):
        _grid_map(solved, weights=-solved.weights)


@pytest.mark.parametrize("metadata", [None, "meta"])
def test_grid_map_metadata_is_a_dict(solved, metadata):
    with pytest.raises(TypeError, match="metadata must be a dict"):
        _grid_map(solved, metadata=metadata)


@pytest.mark.parametrize("grid", ["x", None])
def test_discrete_map_refuses_a_grid_of_another_kind(solved, grid):
    with pytest.raises(TypeError, match=r"grid must be a gridflow\.Grid"):
        type(solved)(grid, solved.points, solved.weights, solved.map, solved.potential, 0.0)


def test_discrete_map_energy_is_a_number(solved):
    with pytest.raises(TypeError, match="energy"):
        type(solved)(solved.grid, solved.points, solved.weights, solved.map, solved.potential,
                     "low")  # fmt: skip
