"""Test-session settings: single-threaded BLAS (small matrices thrash on a 2-core machine);
the strategies shared by the shape property tests of both packages."""

import os

import numpy as np
import pytest
from hypothesis import strategies as st
from scipy import sparse

from gridflow import stencils

for variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(variable, "1")


def _wrong_shapes(shape):
    """Shapes other than `shape` (n, d): the classic mistakes and random ones (the vector
    (n,) among them, also in d = 1: points and maps are always (n, d))."""
    n, d = shape
    classic = [
        (n,),
        (n, n),
        (d, n),
        (n + 1, d),
        (n - 1, d),
        (0, d),
        (n, d + 1),
        (n, 0),
        (n, d, 1),
        (1, n, d),
        (),
    ]
    random = st.lists(st.integers(0, n + 2), min_size=0, max_size=3).map(tuple)
    return st.one_of(st.sampled_from(classic), random).filter(lambda s: s != shape)


@pytest.fixture(scope="session")
def wrong_shapes():
    """A strategy of shapes other than (n, d): the classic mistakes and random ones."""
    return _wrong_shapes


@pytest.fixture
def exit_status_and_error(capsys):
    """Run a command's ``main(argv)``, which must exit; (its status, its one ``error:`` line),
    asserting that it printed exactly one such line and no traceback."""

    def run(main, argv, capsys=capsys):
        with pytest.raises(SystemExit) as caught:
            main(argv)
        err = capsys.readouterr().err
        error_lines = [line for line in err.splitlines() if "error:" in line]
        assert len(error_lines) == 1, err
        assert "Traceback" not in err
        return caught.value.code, error_lines[0]

    return run


@pytest.fixture(scope="session")
def random_grid_matrix():
    """A factory of random SPD grid matrices (gridflow.cholesky and gridflow.stencils)."""
    return _random_grid_matrix


def _random_grid_matrix(shape, reach, seed=0, definite=True):
    """A random symmetric matrix coupling every pair of nodes at most `reach` apart, made
    positive definite by diagonal dominance (or indefinite by a negative diagonal entry)."""
    rng = np.random.default_rng(seed)
    size = int(np.prod(shape))
    nodes = np.stack(np.unravel_index(np.arange(size), shape), axis=1)
    rows, columns = [], []
    for offset in stencils.stencil_offsets(len(shape), reach):
        other = nodes + offset
        inside = np.all((other >= 0) & (other < np.array(shape)), axis=1)
        rows.append(np.flatnonzero(inside))
        columns.append(np.ravel_multi_index(other[inside].T, shape))
    rows, columns = np.concatenate(rows), np.concatenate(columns)
    matrix = sparse.csr_matrix((rng.standard_normal(rows.size), (rows, columns)), (size, size))
    matrix = matrix + matrix.T
    dominance = np.abs(matrix).sum(axis=1).A1 + rng.uniform(0.1, 1.0, size)
    if not definite:
        dominance[size // 2] = -dominance[size // 2]
    return (matrix + sparse.diags(dominance)).tocsr()
