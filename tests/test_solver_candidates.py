"""`python -m validation.solver_candidates` measures the solvers on recorded Newton systems."""

from gridflow.groundtruth import grid_cascade
from gridflow.potentials import FACTORIZATIONS
from validation.solver_candidates import main


def test_the_built_in_methods_solve_the_recorded_systems(capsys):
    assert grid_cascade(33) == [17, 33]  # 33² starts from the identity (the continuation)
    rows = main(["--nodes", "33", "--repeats", "1"])
    built_in = {(r["system"], r["candidate"]): r for r in rows if r["candidate"] in FACTORIZATIONS}
    assert set(built_in) == {
        (f"33² {which}", m) for which in ("first", "last") for m in FACTORIZATIONS
    }
    for row in built_in.values():
        assert row["relres"] < 1e-8 and row["energy diff"] < 1e-8, row
        assert row["factorization"] > 0 and row["solve"] > 0 and row["analysis"] is None
    out = capsys.readouterr().out
    assert "skipped (not importable):" in out and "33²:" in out and "multifrontal" in out
