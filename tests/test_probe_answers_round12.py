"""Answers to a fresh list of a user's bad or unusual inputs (issue 22): each silent answer,
traceback, unclear message or hang it found, now answered, refused by name or warned about;
the commands' refusals are one `error:` line with exit status 2."""

import subprocess
import sys
import warnings

import numpy as np
import pytest

import gridflow.__main__ as gridflow_cli
import neural.__main__ as neural_cli
from gridflow import (
    EmpiricalSource,
    Gaussian,
    GaussianMixture,
    Grid,
    LogConcaveTarget,
    Problem,
    SolverError,
    examples,
    gaussian,
    minimize,
    quantile_map,
    rates,
    save_map,
    solve,
)
from gridflow.cones import active_set
from gridflow.functionals import OutsideConeError
from gridflow.groundtruth import build_ground_truth
from gridflow.memory import InsufficientMemoryError
from gridflow.problem import FlooredSourceWarning
from gridflow.proximal import check_tau
from neural import ICNN, load, make_method, run_method
from neural.mmd import energy_distance, energy_distance_to
from neural.model.fitting import FewRowsWarning, FitSettings, fit
from neural.studies.evaluation import evaluate_map, format_evaluation
from neural.studies.flowcheck import flow_check


@pytest.mark.parametrize("value", [np.float64(0.5), np.float32(0.5), np.array(0.5), np.array(1)])
def test_a_step_and_a_tolerance_take_any_real_scalar(value):
    assert check_tau(value) == float(value)
    problem = examples.problem_1d(17)
    tolerance = value / 1e9
    assert active_set(problem, problem.identity(), tolerance).count == 0
    trajectory = solve(problem, tau=value, steps=2, activity_tolerance=tolerance)
    np.testing.assert_allclose(trajectory.times, [0.0, float(value), 2 * float(value)])


@pytest.mark.parametrize("value", [np.array(True), np.array([0.5]), np.array("0.5")])
def test_a_step_that_is_no_real_scalar_is_still_refused(value):
    with pytest.raises(TypeError, match="tau must be a real number"):
        check_tau(value)


@pytest.mark.parametrize(("rows", "dim"), [(4, 3), (3, 2), (5, 4)])
def test_fit_refuses_rows_that_leave_none_to_hold_out_before_training(
    rows, dim, tmp_path, exit_status_and_error
):
    """4 rows in d = 3 passed the data checks and failed in the training, with exit status 1."""
    data = np.random.default_rng(5).standard_normal((rows, dim))
    np.savetxt(tmp_path / "data.csv", data, delimiter=",")
    argv = ["fit", "--data", str(tmp_path / "data.csv"), "--steps", "2", "--no-progress",
            "--out", str(tmp_path / "map.npz")]  # fmt: skip
    status, line = exit_status_and_error(neural_cli.main, argv)
    assert status == 2, line
    assert f"{rows} rows in d = {dim} leave none to hold out" in line
    assert f"give at least {dim + 2} rows" in line
    assert not (tmp_path / "map.npz").exists()


@pytest.mark.parametrize(
    "target",
    [LogConcaveTarget.standard_gaussian(2), Gaussian([0.0, 0.0], np.diag([4.0, 1.0])),
     LogConcaveTarget.logcosh(2)],
)  # fmt: skip
def test_the_quantile_map_refuses_a_target_of_another_dimension(target):
    """A 2D target gave the monotone map onto its first marginal, without a word."""
    with pytest.raises(ValueError, match=r"quantile_map needs a one-dimensional target, got .* 2"):
        quantile_map(examples.mixture_1d(), target, np.zeros((3, 1)))


@pytest.mark.parametrize(
    "nodes",
    [lambda: Grid([0.0] * 3, [1.0] * 3, [100_000] * 3).nodes,
     lambda: Grid([0.0] * 2, [1.0] * 2, [9, 9]).refined(10**6).nodes],
)  # fmt: skip
def test_grid_nodes_that_cannot_fit_in_memory_are_refused_with_the_estimate(nodes):
    """numpy's MemoryError came out of np.meshgrid, after the grid was accepted."""
    with pytest.raises(InsufficientMemoryError, match=r"the nodes of a grid of .* choose fewer"):
        nodes()


@pytest.mark.parametrize("hidden", [(10**9,), (100_000, 100_000)])
def test_an_icnn_that_cannot_fit_in_memory_is_refused_with_the_estimate(hidden):
    with pytest.raises(InsufficientMemoryError, match=r"an ICNN of hidden widths .* smaller"):
        ICNN(2, hidden, np.random.default_rng(0))


def test_weights_that_do_not_sum_to_one_are_reported_as_a_number():
    """The message read "got np.float64(4.0)"."""
    with pytest.raises(ValueError, match=r"weights must sum to 1, got 4; pass weights / weights"):
        GaussianMixture([[0.0], [2.0]], [[[1.0]], [[1.0]]], [1.0, 3.0])


def test_minimize_refuses_a_coarser_map_of_a_finer_grid():
    """The map of a 17² grid as the start of a 9² grid failed later, as a SolverError that
    advised a larger density floor."""
    finer = minimize(examples.problem_2d(17))
    with pytest.raises(ValueError, match=r"at most the problem's nodes per axis \(9, 9\), got"):
        minimize(examples.problem_2d(9), coarser=finer)
    same = minimize(examples.problem_2d(17), coarser=finer)
    assert same.energy == pytest.approx(finer.energy, abs=1e-12)


def test_a_command_s_warning_is_one_line(tmp_path):
    """The warning of fit on few rows came with the file and source line that warned."""
    np.save(tmp_path / "rows.npy", np.random.default_rng(0).standard_normal((60, 2)))
    argv = [sys.executable, "-m", "neural", "fit", "--data", str(tmp_path / "rows.npy"),
            "--steps", "2", "--hidden", "4", "--no-progress",
            "--out", str(tmp_path / "m.npz")]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=True)
    lines = [line for line in done.stderr.splitlines() if "compiling numba" not in line]
    assert lines == [
        "python -m neural: warning: the map is chosen on 9 held-out rows (fewer than 10 per "
        "dimension): its held-out NLL cannot tell the steps apart; give more rows (or a larger "
        "held_out share)"
    ]


@pytest.mark.parametrize(
    ("name", "text", "hint"),
    [("header.csv", "x,y\n1,2\n3,4\n5,6\n", "start a header line with #"),
     ("semicolons.csv", "1;2\n3;4\n5;6\n", "separate the columns of a .csv by commas"),
     ("commas.txt", "1,2\n3,4\n5,6\n", "separate the columns of a .csv by commas, of a .txt")],
)  # fmt: skip
def test_a_data_file_numpy_cannot_read_says_what_to_change(name, text, hint, tmp_path):
    (tmp_path / name).write_text(text)
    with pytest.raises(ValueError, match=f"is not a table of numbers: .*{hint}"):
        EmpiricalSource.from_file(tmp_path / name)


def test_fit_warns_when_too_few_rows_are_left_for_training():
    """--held-out 0.999 trained the map on 3 of 400 rows without a word."""
    data = np.random.default_rng(1).standard_normal((400, 2))
    settings = FitSettings(hidden=(4,), anchors=4, steps=2, evaluate_every=1, held_out=0.999)
    with pytest.warns(FewRowsWarning, match="the map is trained on 3 rows .* 397 being held"):
        fit(data, settings=settings, rng=np.random.default_rng(0))


def test_a_rate_is_fitted_at_any_time_scale():
    """Times of 1e-300 made lstsq's SVD fail (LinAlgError) in the flow check's rate fit."""
    times = 1e-300 * np.arange(6)
    fit = rates.fit_log_linear(times, np.exp(-2e300 * times), (np.inf, 1e-300), relative=False)
    assert fit.rate == pytest.approx(2e300, rel=1e-12)


def test_the_flow_check_refuses_a_step_too_small_to_move_the_flow(exit_status_and_error):
    argv = ["flowcheck", "--tau", "1e-300", "--size", "tiny", "--cases", "gaussian2d"]
    status, line = exit_status_and_error(neural_cli.main, argv)
    assert status == 2 and "--tau must be at least 1e-06, got 1e-300" in line


@pytest.fixture(scope="module")
def truth_and_map(tmp_path_factory):
    """A 2D ground truth (N(0, Σ) → N(0, I) on 33² nodes) and a map fitted in a few steps."""
    folder = tmp_path_factory.mktemp("evaluation")
    fine, metadata = build_ground_truth("gaussian", "standard", 33, 6.0, 1e-6, progress=False)
    save_map(folder / "truth.npz", fine, metadata)
    data = np.random.default_rng(0).standard_normal((400, 2))
    settings = FitSettings(hidden=(4,), anchors=4, steps=2, evaluate_every=1)
    model = fit(data, settings=settings, rng=np.random.default_rng(0)).map
    model.save(folder / "map.npz")
    return folder


@pytest.mark.parametrize("n_eval", ["2", "49"])
def test_evaluate_refuses_an_n_eval_too_small_for_its_error_bars(
    n_eval, truth_and_map, exit_status_and_error
):
    """--n-eval 2 printed a KL '± 0.1' and a UVP from two samples."""
    argv = ["evaluate", str(truth_and_map / "map.npz"), "--ground-truth",
            str(truth_and_map / "truth.npz"), "--n-eval", n_eval]  # fmt: skip
    status, line = exit_status_and_error(neural_cli.main, argv)
    assert status == 2 and f"--n-eval must be an integer >= 50, got {n_eval}" in line


def test_an_evaluation_too_large_for_memory_is_refused_before_sampling(
    truth_and_map, exit_status_and_error
):
    """--n-eval 10000000000 ended in numpy's MemoryError traceback."""
    argv = ["evaluate", str(truth_and_map / "map.npz"), "--ground-truth",
            str(truth_and_map / "truth.npz"), "--n-eval", "10000000000"]  # fmt: skip
    status, line = exit_status_and_error(neural_cli.main, argv)
    assert status == 2
    assert "an evaluation on n_eval = 10000000000 samples in d = 2 needs about" in line


def test_the_likelihood_of_few_data_rows_says_its_error_bar_is_rough(truth_and_map):
    model = load(truth_and_map / "map.npz")
    rows = np.random.default_rng(3).standard_normal((10, 2))
    text = format_evaluation(evaluate_map(model, data=rows, rng=np.random.default_rng(0)))
    assert "(10 rows)" in text
    assert "(from fewer than 50 rows the error bar is itself uncertain by about 22%)" in text
    many = np.random.default_rng(3).standard_normal((60, 2))
    text = format_evaluation(evaluate_map(model, data=many, rng=np.random.default_rng(0)))
    assert "(60 rows)" in text and "uncertain" not in text


def _quadratic_target(grad_V, lam=None, dim=1):
    return LogConcaveTarget(lambda y: 0.5 * np.sum(y**2, axis=1), grad_V, lam=lam, dim=dim)


def test_a_target_that_claims_more_convexity_than_its_v_has_is_refused():
    """lam = 5 for V = |y|²/2 was taken, and every rate was compared with 2λ = 10."""
    grid = Grid([-6.0], [6.0], [17])
    with pytest.raises(ValueError, match=r"lam = 5 exceeds the convexity of V: .* = 1 \|x - y\|"):
        Problem(grid, examples.mixture_1d(), _quadratic_target(lambda y: y, lam=5.0))
    assert Problem(grid, examples.mixture_1d(), _quadratic_target(lambda y: y, lam=1.0))
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="lam = 5 exceeds the convexity of V"):
        network = ICNN(2, (8, 8), rng, quadratic=True)
        target = _quadratic_target(lambda y: y, 5.0, 2)
        run_method(make_method("adam", steps=1), network, examples.paper_mixture(), target, rng)


@pytest.mark.parametrize("method", ["Euler", "rk45", None])
def test_the_gaussian_flow_names_the_integrators_it_takes(method):
    """scipy's message listed a dict of its integrator classes."""
    g0, g1 = Gaussian([1.0], [[0.5]]), Gaussian([0.0], [[1.0]])
    with pytest.raises(ValueError, match=r"method must be one of RK23, RK45, DOP853, Radau, BDF, "):
        gaussian.constrained_flow(g0, g1, [0.0, 1.0], method=method)


@pytest.mark.parametrize("command", ["benchmark", "dimensions"])
def test_an_empty_list_of_methods_is_named_as_such(command, exit_status_and_error):
    """The message read "unknown method(s) []"."""
    status, line = exit_status_and_error(neural_cli.main, [command, "--methods", " ,"])
    assert status == 2 and "--methods: no method in ' ,'; choose from implicit, explicit" in line


@pytest.mark.parametrize(
    ("grad_V", "given"),
    [(lambda y: 2 * y, "[0.9652, -1.0141]"), (lambda y: -y, "[-0.4826, 0.5071]")],
)
def test_a_grad_v_that_is_not_the_gradient_of_v_is_refused_when_the_target_is_built(grad_V, given):
    """grad_V = 2y for V = |y|²/2 made minimize fail with "line search failed"."""
    with pytest.raises(
        ValueError, match=r"grad_V is not the gradient of V: at y = \[0\.483, -0\.507\]"
    ) as caught:
        _quadratic_target(grad_V, dim=2)
    assert f"grad_V(y) = {given}, the differences of V give [0.4826, -0.5071]" in str(caught.value)
    assert _quadratic_target(lambda y: y, dim=2).dim == 2


def test_a_box_whose_cells_overflow_gives_a_finite_log_density_and_no_overflow_warnings():
    """--box 1e300 printed three numpy overflow warnings before its refusal, and the problem's
    log-density was -inf (the cell volume overflowed). Such a box is now refused (|x|²
    overflows, test_probe_answers_round16); in 3D a box of 1e140 still has cell volumes
    beyond the float range."""
    grid = Grid([-1e140] * 3, [1e140] * 3, [5, 5, 5])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.simplefilter("ignore", FlooredSourceWarning)
        target = LogConcaveTarget.standard_gaussian(3)
        problem = Problem(grid, Gaussian(np.zeros(3), np.eye(3)), target)
    assert np.all(np.isfinite(problem.log_source))


@pytest.mark.parametrize("variance", [1e-200, 1e-30, 1e-17, 1e-16, 1e200])
def test_the_gaussian_kl_keeps_its_accuracy_for_far_variance_ratios(variance):
    """KL(N(0, 1e-200) | N(0, 1)) was inf (log1p(ν - 1) with ν - 1 rounded to -1), and 1e-16
    was off by 0.3 %."""
    expected = 0.5 * (variance - 1.0 - np.log(variance))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        value = gaussian.kl(Gaussian([0.0], [[variance]]), Gaussian([0.0], [[1.0]]))
    assert value == pytest.approx(expected, rel=1e-12)


def test_groundtruth_ends_a_solve_that_leaves_the_cone_with_one_line(
    tmp_path, monkeypatch, exit_status_and_error
):
    """--density-floor 1e-30 ended in an OutsideConeError traceback from Newton's method."""

    def leaves_the_cone(*args, **kwargs):
        raise OutsideConeError("the map is not strictly inside K_h: F_h is +inf there")

    monkeypatch.setattr(gridflow_cli, "build_ground_truth", leaves_the_cone)
    argv = ["groundtruth", "--quiet", "--source", "gaussian", "--nodes", "17",
            "--density-floor", "1e-30", "--out", str(tmp_path / "map.npz")]  # fmt: skip
    status, line = exit_status_and_error(gridflow_cli.main, argv)
    assert status == 1
    assert "the solve failed: the map is not strictly inside K_h" in line
    assert "a larger --density-floor (default 1e-06) or more --nodes" in line
    assert not (tmp_path / "map.npz").exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["benchmark", "--size", "tiny", "--seeds", "1000000000000", "--no-progress"],
         "a sweep of 1,000,000,000,000 seeds needs about"),
        (["benchmark", "--size", "tiny", "--seeds", "1", "--workers", "100000", "--no-progress"],
         "a pool of 100000 worker processes needs about"),
        (["dimensions", "--size", "tiny", "--dims", "1", "--workers", "100000"],
         "a pool of 100000 worker processes needs about"),
        (["errorbudget", "--problems", "gaussian2", "--steps", "1000000000000"],
         "a run of 1,000,000,000,000 optimizer steps (its per-step records) needs about"),
        (["errorbudget", "--problems", "gaussian2", "--inner-steps", "100000000000"],
         "a run of 5,000,000,000,000 optimizer steps"),
        (["fit", "--steps", "99999999999999999999"], "a run of 99,999,999,999,999,999,999 "),
        (["fit", "--hidden", "1000000000"], "an ICNN of hidden widths (1000000000,) in d = 2"),
        (["errorbudget", "--problems", "gaussian2", "--n-eval", "100000000000"],
         "a draw of 100,000,000,000 samples in d = 2 needs about"),
        (["dimensions", "--dims", "1", "--n-eval", "100000000000"],
         "or fewer samples than n_eval = 100,000,000,000"),
    ],
)  # fmt: skip
def test_sizes_beyond_memory_are_refused_before_any_work(
    argv, message, tmp_path, exit_status_and_error
):
    """--seeds 10^12 was killed for its memory, --workers 100000 started workers until the
    machine stalled, --steps 10^12 ended in numpy's MemoryError after the first runs, and
    fit's --steps 10^20 and --hidden 10^9 failed in the training with exit status 1."""
    if argv[0] == "fit":
        np.save(tmp_path / "data.npy", np.random.default_rng(0).standard_normal((100, 2)))
        argv = [*argv, "--data", str(tmp_path / "data.npy"), "--no-progress"]
    argv = [*argv, "--out", str(tmp_path / ("out.npz" if argv[0] == "fit" else "out"))]
    if argv[0] == "dimensions":
        argv = argv[:-2]
    status, line = exit_status_and_error(neural_cli.main, argv)
    assert status == 2 and message in line, line
    assert not any(tmp_path.glob("out*"))


def test_make_method_refuses_steps_whose_records_cannot_fit_in_memory():
    with pytest.raises(ValueError, match=r"a run of 10,000,000,000,000 optimizer steps"):
        make_method("adam", steps=10**13)
    with pytest.raises(ValueError, match=r"a run of 10,000,000,000,000 optimizer steps"):
        make_method("implicit", outer_steps=10**6, inner_steps=10**7)


@pytest.mark.parametrize(
    "option",
    [["--inits", "normal", "normal"], ["--widths", "4,4", "4,4"], ["--batches", "100", "100"]],
)
def test_errorbudget_refuses_a_value_listed_twice(option, tmp_path, exit_status_and_error):
    """--inits normal normal measured every run twice."""
    argv = ["errorbudget", "--problems", "gaussian2", *option, "--out", str(tmp_path / "eb")]
    status, line = exit_status_and_error(neural_cli.main, argv)
    assert status == 2 and f"argument {option[0]}:" in line and "is listed more than once" in line


def test_the_flow_check_refuses_more_steps_than_it_can_take(exit_status_and_error):
    """--steps 100000000 ran for hours."""
    status, line = exit_status_and_error(neural_cli.main, ["flowcheck", "--steps", "100000000"])
    assert status == 2
    assert "--steps must be at least 2 and at most 1000, got 100000000" in line
    with pytest.raises(ValueError, match="steps must be at least 2 and at most 1000, got 1001"):
        flow_check("gaussian2d", steps=1001, rng=np.random.default_rng(0))


def test_a_target_that_is_not_log_concave_is_named_in_a_sentence():
    """The message read "so the target log-concave target is not log-concave"."""
    well = LogConcaveTarget(
        lambda y: y[:, 0] ** 4 / 4 - y[:, 0] ** 2,
        lambda y: y**3 - 2 * y,
        dim=1,
    )
    problem = Problem(Grid([-6.0], [6.0], [101]), Gaussian([0.0], [[1.0]]), well)
    with pytest.raises(SolverError, match=r"so the target \(log-concave target\) is not log-"):
        minimize(problem)


@pytest.mark.parametrize(
    "draw",
    [lambda rng: examples.paper_mixture().sample(rng, 10**12),
     lambda rng: LogConcaveTarget.standard_gaussian(2).sample(rng, 10**12),
     lambda rng: Gaussian([0.0], [[1.0]]).sample(rng, 10**12),
     lambda rng: EmpiricalSource(rng.standard_normal((50, 2))).sample(rng, 10**12)],
)  # fmt: skip
def test_draws_that_cannot_fit_in_memory_are_refused_with_the_estimate(draw):
    """sample(rng, 10**12) ended in numpy's MemoryError."""
    with pytest.raises(InsufficientMemoryError, match=r"1,000,000,000,000 samples in d = \d"):
        draw(np.random.default_rng(0))


def test_an_energy_distance_that_would_take_hours_is_refused():
    """Three million samples a side ran for hours (1.8e13 distances)."""
    x = np.zeros((3_000_000, 2))
    with pytest.raises(ValueError, match=r"of 3,000,000 and 3,000,000 samples takes 1\.8e\+13"):
        energy_distance(x, x + 1.0)
    with pytest.raises(ValueError, match="subsample both to a few thousand rows"):
        energy_distance_to(x[:10])(x)


@pytest.mark.parametrize("function", [gaussian.bounds, gaussian.fitted_rate])
@pytest.mark.parametrize("flow", [None, np.zeros(3)])
def test_the_flow_bounds_take_a_gaussian_flow_only(function, flow):
    """gaussian.bounds(None) ended in AttributeError: 'NoneType' object has no attribute."""
    with pytest.raises(TypeError, match=r"flow must be a gridflow\.GaussianFlow, got .*flow or"):
        function(flow)


def test_a_flow_that_leaves_the_cone_names_what_keeps_it_inside():
    """On 9² the flow's Rosenbrock steps leave K_h even 4096 times shortened; the error said
    so without a way out (a finer grid, a larger floor and the implicit scheme all work)."""
    with pytest.raises(SolverError, match="a finer grid, a larger density_floor or the implicit"):
        solve(examples.problem_2d(9), "flow")


def test_newton_reports_a_curvature_block_outside_the_cone_as_a_solver_failure():
    """--density-floor 1e-30: F_h was finite at an iterate whose curvature blocks could not be
    factorized, and the OutsideConeError left Newton's method as a raw ValueError."""
    from gridflow.proximal import damped_newton

    def direction(x, g):
        raise OutsideConeError("a curvature block is not positive definite")

    with pytest.raises(SolverError, match="a curvature block is not positive definite"):
        damped_newton(
            lambda x: float(x @ x), lambda x: 2 * x, direction, np.linalg.norm, np.ones(3)
        )


def test_fit_refuses_data_on_a_lattice(tmp_path, exit_status_and_error):
    """300 rows of integers in {0, 1, 2}²: 9 distinct rows, no density; fit printed a held-out
    NLL that kept falling with more steps (−1.8 at 1500, −3.8 at 6000) as if it were a fit."""
    data = np.random.default_rng(0).integers(0, 3, size=(300, 2)).astype(float)
    np.save(tmp_path / "lattice.npy", data)
    argv = ["fit", "--data", str(tmp_path / "lattice.npy"), "--steps", "2", "--no-progress",
            "--out", str(tmp_path / "map.npz")]  # fmt: skip
    status, line = exit_status_and_error(neural_cli.main, argv)
    assert status == 2
    assert "the data hold 9 distinct rows among 300: values on a lattice" in line
    assert not (tmp_path / "map.npz").exists()
    jittered = data + np.random.default_rng(1).uniform(-0.5, 0.5, data.shape)
    fit(
        EmpiricalSource(jittered),
        settings=FitSettings(steps=2, hidden=(4,)),
        rng=np.random.default_rng(2),
    )


def test_a_density_whose_floor_underflows_says_to_rescale_it():
    """A density of largest value 1e-320 was reported to vanish at every grid point."""
    grid = Grid([-6.0], [6.0], [17])
    target = LogConcaveTarget.standard_gaussian(1)
    with pytest.raises(ValueError, match="largest value on the grid, 1e-320, is so small"):
        Problem(grid, lambda x: 1e-320 * np.exp(-0.5 * x[:, 0] ** 2), target)
    Problem(grid, lambda x: 1e-300 * np.exp(-0.5 * x[:, 0] ** 2), target)


def test_the_refused_error_ratio_is_printed_to_the_digits_that_decide():
    """A ratio of 10.07 % was printed as '10% of the map's spread (at most 10%)'."""
    from gridflow.groundtruth.build import MAX_RELATIVE_ERROR, accuracy_problems

    spread = 1.41
    (reason,) = accuracy_problems(
        {"error_estimate": 1.007 * MAX_RELATIVE_ERROR * spread, "map_spread": spread}
    )
    assert f"is {100.7 * MAX_RELATIVE_ERROR:.2f}% of the map's spread" in reason


def test_a_grid_map_is_made_from_a_discrete_map_only():
    from gridflow.maps import GridMap

    with pytest.raises(TypeError, match=r"discrete_map must be a DiscreteMap .* got str"):
        GridMap.from_discrete_map("not a map")


def test_errorbudget_refuses_a_ground_truth_no_problem_reads(tmp_path, exit_status_and_error):
    """--problems gaussian2 --ground-truth FILE read the file and ignored it without a word."""
    argv = ["errorbudget", "--problems", "gaussian2", "--ground-truth", str(tmp_path / "t.npz"),
            "--out", str(tmp_path / "budget")]  # fmt: skip
    status, line = exit_status_and_error(neural_cli.main, argv)
    assert status == 2
    assert "is read by the problems mixture and file only, and --problems lists gaussian2" in line
    assert not (tmp_path / "budget").exists()


@pytest.mark.parametrize(
    ("lower", "upper", "message"),
    [
        ([5.0, 5.0], [-5.0, -5.0], "the box needs lower < upper on every axis"),
        ([-5.0], [5.0, 5.0], "lower corner must hold 2 number"),
        ([-5.0, np.nan], [5.0, 5.0], "lower corner contains NaN"),
    ],
)
def test_mass_outside_refuses_a_box_that_is_no_box(lower, upper, message):
    """A reversed box gave a 'mass' of 4.0; a 1D box for a 2D mixture an IndexError."""
    sources = [examples.paper_mixture(), Gaussian([0.0, 0.0], np.eye(2))]
    for source in sources:
        with pytest.raises(ValueError, match=message):
            source.mass_outside(lower, upper)
    assert 0.0 < examples.paper_mixture().mass_outside([-5.0, -5.0], [5.0, 5.0]) < 1e-3
    assert examples.paper_mixture().mass_outside(-np.inf, np.inf) == 0.0


def test_a_grid_axis_out_of_range_is_named():
    with pytest.raises(ValueError, match="the axis k must be an integer from 0 to 0, got 5"):
        Grid([-1.0], [1.0], [9]).axis(5)


def test_the_3d_example_problem_takes_a_source_and_a_target():
    """problem_3d(9, source=...) was a TypeError 'got multiple values for keyword source'."""
    source = GaussianMixture(
        means=[[0.5, 0.0, 0.0], [-0.5, 0.0, 0.0]], covs=[np.eye(3)] * 2, weights=[0.5, 0.5]
    )
    problem = examples.problem_3d(9, source=source, density_floor=1e-4, max_cut_mass=1e-2)
    assert problem.source is source and problem.target.dim == 3


def test_a_fourth_list_of_calls_into_the_lower_layers_is_answered_by_name():
    """grid_cascade(17, dim=4) was a KeyError; velocity(..., 'a', 0) numpy's 'could not
    convert'; from_discrete_map(metadata='x') a dict() message; checked_box of a reversed box
    returned a reversed box; target_from_spec ignored the dimension asked; truth_error('x')
    was 0.0, an exact map's."""
    from gridflow.groundtruth import grid_cascade, target_from_spec, truth_error
    from gridflow.maps import GridMap
    from gridflow.measures import CallableSource

    with pytest.raises(ValueError, match="d = 1, 2 and 3, got dim = 4"):
        grid_cascade(17, dim=4)
    pair = Gaussian([0.0, 0.0], np.eye(2))
    with pytest.raises(TypeError, match="matrix must be"):
        gaussian.velocity(pair, pair, "a", 0)
    problem = examples.problem_1d(33)
    with pytest.raises(TypeError, match="metadata must be a dict or None, got str"):
        GridMap.from_discrete_map(minimize(problem), metadata="x")
    source = CallableSource(lambda x: np.exp(-0.5 * np.sum(x**2, axis=1)), 2)
    with pytest.raises(ValueError, match="the box needs lower < upper"):
        source.checked_box([1.0, 1.0], [-1.0, -1.0])
    spec = LogConcaveTarget.standard_gaussian(2).spec
    with pytest.raises(ValueError, match="specification is in d = 2, not d = 3"):
        target_from_spec(spec, 3)
    assert target_from_spec(spec, 2).dim == 2
    with pytest.raises(TypeError, match="true_map must be a map"):
        truth_error("x")


def test_evaluate_refuses_an_n_eval_it_would_ignore(tmp_path, exit_status_and_error):
    """evaluate --data D --n-eval 100 without a ground truth ignored --n-eval without a word."""
    data = np.random.default_rng(3).standard_normal((60, 2))
    np.save(tmp_path / "data.npy", data)
    argv = ["evaluate", str(tmp_path / "map.npz"), "--data", str(tmp_path / "data.npy"),
            "--n-eval", "100"]  # fmt: skip
    status, line = exit_status_and_error(neural_cli.main, argv)
    assert status == 2
    assert "--n-eval is how many samples of the ground truth's source are drawn" in line
