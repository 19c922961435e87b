"""Algorithms 1 and 2 (paper §3.4): gradients, eq. 3.4, determinism, descent, input checks."""

import re

import numpy as np
import pytest
from scipy.optimize import least_squares

from gridflow import Gaussian, LogConcaveTarget
from gridflow.examples import paper_mixture
from gridflow.measures import as_target
from neural import ICNN, ICNNArchitecture
from neural.errors import DivergenceError
from neural.mmd import energy_distance
from neural.network import map_vjp, transport_map
from neural.network.initialization import initial_network
from neural.training import (
    METHODS,
    EuclideanAdam,
    EuclideanGD,
    ExplicitScheme,
    ImplicitScheme,
    make_method,
    run_method,
)
from neural.training.gradients import (
    explicit_objective,
    implicit_gradient,
    kl_parameter_gradient,
    map_jacobian,
    natural_gradient,
    wasserstein_gradient,
)

TINY = {
    "implicit": {"outer_steps": 2, "inner_steps": 3, "batch_size": 30},
    "explicit": {"outer_steps": 2, "inner_steps": 3, "batch_size": 30},
    "euclidean": {"steps": 5, "batch_size": 30},
    "adam": {"steps": 5, "batch_size": 30},
}


def _small_problem(seed=0, hidden=(3,), n=30, scale=0.5):
    """A small admissible network with every constrained entry >= 0.5 (no active constraint)."""
    rng = np.random.default_rng(seed)
    architecture = ICNNArchitecture(2, hidden)
    theta = rng.normal(0.0, scale, architecture.num_params)
    theta[architecture.constrained_mask] = np.abs(theta[architecture.constrained_mask]) + 0.5
    x = rng.normal(0.0, 1.0, (n, 2))
    return architecture, theta, x, rng


# --------------------------------------------------------------------------- gradients


def test_kl_gradient_is_eq_3_7():
    architecture, theta, x, _ = _small_problem()
    target = LogConcaveTarget.standard_gaussian(2)
    gradient, g = kl_parameter_gradient(architecture, theta, x, target)
    y = transport_map(architecture, theta, x)
    np.testing.assert_allclose(g, wasserstein_gradient(y, target), rtol=0, atol=0)
    np.testing.assert_allclose(gradient, map_vjp(architecture, theta, x, g) / len(x), rtol=1e-14)
    summed, _ = kl_parameter_gradient(architecture, theta, x, target, reduction="sum")
    np.testing.assert_allclose(summed, len(x) * gradient, rtol=1e-12)


def test_explicit_objective_gradient_matches_finite_differences():
    architecture, theta, x, rng = _small_problem(seed=1)
    y_previous = transport_map(architecture, theta, x)
    g = rng.normal(size=x.shape)
    theta1 = theta + 0.01 * rng.normal(size=theta.shape)
    tau = 0.3
    _, gradient = explicit_objective(architecture, theta1, x, y_previous, g, tau)
    direction = rng.normal(size=theta.shape)
    h = 1e-6
    plus, _ = explicit_objective(architecture, theta1 + h * direction, x, y_previous, g, tau)
    minus, _ = explicit_objective(architecture, theta1 - h * direction, x, y_previous, g, tau)
    assert gradient @ direction == pytest.approx((plus - minus) / (2 * h), rel=1e-6)


def test_implicit_gradient_is_kl_gradient_plus_proximal_gradient():
    architecture, theta, x, rng = _small_problem(seed=2)
    target = LogConcaveTarget.standard_gaussian(2)
    y_previous = transport_map(architecture, theta, x) + 0.1 * rng.normal(size=x.shape)
    tau = 0.4
    gradient, proximal, fisher = implicit_gradient(architecture, theta, x, y_previous, target, tau)
    kl, g = kl_parameter_gradient(architecture, theta, x, target)
    assert fisher == pytest.approx(np.mean(np.sum(g**2, axis=1)), rel=1e-12)

    def prox(t):
        step = transport_map(architecture, t, x) - y_previous
        return np.sum(step**2) / (2 * tau * len(x))

    assert proximal == pytest.approx(prox(theta), rel=1e-12)
    direction = rng.normal(size=theta.shape)
    h = 1e-6
    fd = (prox(theta + h * direction) - prox(theta - h * direction)) / (2 * h)
    assert (gradient - kl) @ direction == pytest.approx(fd, rel=1e-6)


def test_explicit_step_with_exact_inner_solve_is_the_natural_gradient_step_eq_3_4():
    """(gd, expl.) solved exactly on a fixed batch: (θ* − θ_k)/τ → −G⁺∇_θF as τ → 0 (Cor. 3.8).

    θ = θ_k + τ δ; the inner problem min_θ (1/n) Σ ‖g_i + (T_θ(x_i) − T_θk(x_i))/τ‖² is
    solved by Levenberg–Marquardt in δ (well scaled for every τ), from δ = 0.
    """
    architecture, theta, x, _ = _small_problem(seed=3, hidden=(3,), n=30)
    y_k = transport_map(architecture, theta, x)
    g = wasserstein_gradient(y_k, LogConcaveTarget.standard_gaussian(2))
    direction = natural_gradient(architecture, theta, x, g)
    n = len(x)
    errors = []
    for tau in (1e-5, 1e-6):

        def residual(delta, tau=tau):
            y = transport_map(architecture, theta + tau * delta, x)
            return ((g + (y - y_k) / tau) / np.sqrt(n)).ravel()

        def jacobian(delta, tau=tau):
            jac = map_jacobian(architecture, theta + tau * delta, x)
            return jac.reshape(-1, delta.size) / np.sqrt(n)

        solution = least_squares(
            residual, np.zeros_like(theta), jac=jacobian, method="lm", xtol=1e-15, ftol=1e-15
        )
        theta_star = theta + tau * solution.x
        _, at_start = explicit_objective(architecture, theta, x, y_k, g, tau)
        _, at_solution = explicit_objective(architecture, theta_star, x, y_k, g, tau)
        assert np.linalg.norm(at_solution) < 1e-6 * np.linalg.norm(at_start)  # exact solve
        step = (theta_star - theta) / tau
        errors.append(np.linalg.norm(step - direction) / np.linalg.norm(direction))
    assert errors[1] < 0.2 * errors[0]  # O(τ)
    assert errors[1] < 1e-2


def test_explicit_scheme_with_exact_inner_solves_reports_the_tolerance_reached():
    """inner_solver='lbfgs': the projected gradient each solve reports is the (gd, expl.)
    objective's on its batch (checked by ``explicit_objective``, an independent gradient),
    and the warm-started solves of the later steps reach the tolerance."""
    source = Gaussian(np.array([0.5, -0.5]), np.array([[0.6, 0.25], [0.25, 0.4]]))
    target = LogConcaveTarget.standard_gaussian(2)
    net = ICNN(2, (4,), np.random.default_rng(0), quadratic=True)
    tau, tolerance = 0.1, 1e-6
    config = make_method("explicit", inner_solver="lbfgs", outer_steps=3, inner_steps=2000,
                         batch_size=200, tau=tau, inner_tolerance=tolerance)  # fmt: skip
    thetas = []
    result = run_method(config, net, source, target, np.random.default_rng(1),
                        callback=lambda k, theta: thetas.append(np.array(theta)))  # fmt: skip
    assert len(result.inner_solves) == 3 and result.inner_loss.shape == (3, 1)
    assert all(fit.projected_gradient <= tolerance for fit in result.inner_solves[1:])
    # the first batch is the first draw of the run's generator; T_0 = id
    x = source.sample(np.random.default_rng(1), 200)
    g = wasserstein_gradient(x, target)
    loss, gradient = explicit_objective(net.architecture, thetas[0], x, x, g, tau)
    held = net.architecture.constrained_mask & (thetas[0] <= 0) & (gradient > 0)
    reported = result.inner_solves[0].projected_gradient
    np.testing.assert_allclose(np.max(np.abs(np.where(held, 0.0, gradient))) * tau**2, reported,
                               rtol=1e-6)  # fmt: skip
    np.testing.assert_allclose(loss, result.inner_loss[0, 0], rtol=1e-9)


def test_exact_inner_solves_refuse_what_they_cannot_solve():
    with pytest.raises(ValueError, match="needs kl='score'"):
        make_method("explicit", inner_solver="lbfgs", kl="logdet")
    with pytest.raises(ValueError, match="inner_solver must be"):
        make_method("explicit", inner_solver="newton")
    with pytest.raises(ValueError, match="interpolate"):
        run_method(make_method("explicit", inner_solver="lbfgs", batch_size=100),
                   ICNN(2, (20, 20), np.random.default_rng(0)), Gaussian.standard(2),
                   LogConcaveTarget.standard_gaussian(2), np.random.default_rng(0))  # fmt: skip


def test_natural_gradient_solves_the_normal_equations_of_eq_3_4():
    architecture, theta, x, rng = _small_problem(seed=4, hidden=(4,), n=20)
    g = rng.normal(size=x.shape)
    jacobian = map_jacobian(architecture, theta, x)
    # the Jacobian agrees with a map_vjp of a random cotangent
    u = rng.normal(size=x.shape)
    np.testing.assert_allclose(
        np.einsum("nd,ndp->p", u, jacobian), map_vjp(architecture, theta, x, u), rtol=1e-12
    )
    direction = natural_gradient(architecture, theta, x, g)
    flat = jacobian.reshape(-1, architecture.num_params)
    gram = flat.T @ flat / len(x)  # G of eq. 3.4
    euclidean = flat.T @ g.ravel() / len(x)  # ∇_θF of eq. 3.7
    np.testing.assert_allclose(gram @ direction, -euclidean, atol=1e-10 * np.abs(euclidean).max())


# --------------------------------------------------------------------------- the methods


@pytest.fixture(scope="module")
def paper_setting():
    source = paper_mixture()
    rng = np.random.default_rng(5)
    x_eval = source.sample(rng, 600)
    y_eval = rng.standard_normal((600, 2))
    net = initial_network(2, (20, 20), np.random.default_rng(0), init="torch")
    return source, net, x_eval, y_eval


DESCENT = {
    "implicit": {"outer_steps": 3, "inner_steps": 30},
    "explicit": {"outer_steps": 3, "inner_steps": 60},
    "adam": {"steps": 100},
    "euclidean": {"steps": 100},
}


@pytest.mark.parametrize("name", list(METHODS))
def test_each_method_moves_the_pushforward_towards_the_target(name, paper_setting):
    source, net, x_eval, y_eval = paper_setting
    config = make_method(name, batch_size=50, **DESCENT[name])
    result = run_method(
        config, net, source, LogConcaveTarget.standard_gaussian(2), np.random.default_rng(1)
    )
    before = energy_distance(net.map(x_eval), y_eval)
    after = energy_distance(result.map(x_eval), y_eval)
    assert result.network.is_admissible()
    np.testing.assert_array_equal(result.initial_params, net.params)
    if name == "euclidean":  # step 1e-3 is slow (paper §3.4.2 (iii)); it still descends
        assert after < 0.9 * before
        assert result.fisher[-10:].mean() < 0.5 * result.fisher[:10].mean()
    else:
        assert after < 0.3 * before
    if name == "explicit":  # each inner solve decreases the (gd, expl.) objective
        assert np.all(result.inner_loss[:, -5:].mean(axis=1) < result.inner_loss[:, 0])


@pytest.mark.parametrize("name", list(METHODS))
def test_same_seed_gives_bit_identical_results(name):
    source = paper_mixture()
    net = ICNN(2, (6, 5), np.random.default_rng(2))
    config = make_method(name, **TINY[name])
    target = LogConcaveTarget.standard_gaussian(2)
    first = run_method(config, net, source, target, np.random.default_rng(7))
    second = run_method(config, net, source, target, np.random.default_rng(7))
    third = run_method(config, net, source, target, np.random.default_rng(8))
    np.testing.assert_array_equal(first.params, second.params)
    np.testing.assert_array_equal(first.fisher, second.fisher)
    assert not np.array_equal(first.params, third.params)


def test_callback_sees_every_outer_step():
    seen = []
    config = make_method("implicit", **TINY["implicit"])
    net = ICNN(2, (6, 5), np.random.default_rng(0))
    result = run_method(
        config,
        net,
        paper_mixture(),
        LogConcaveTarget.standard_gaussian(2),
        np.random.default_rng(0),
        callback=lambda k, theta: seen.append((k, theta.copy())),
    )
    assert [k for k, _ in seen] == [1, 2]
    np.testing.assert_array_equal(seen[-1][1], result.params)
    assert result.fisher.shape == result.inner_loss.shape == (2, 3)


@pytest.mark.parametrize("name", ["explicit", "implicit"])
def test_start_identity_anchors_the_first_step_at_the_identity(name):
    """start='identity': the first outer step moves from T̂_0 = id (eqs. 3.1, 3.2)."""
    source, target = paper_mixture(), LogConcaveTarget.standard_gaussian(2)
    net = ICNN(2, (6, 5), np.random.default_rng(0))
    config = make_method(name, outer_steps=1, inner_steps=1, batch_size=30, start="identity")
    result = run_method(config, net, source, target, np.random.default_rng(3))
    x = source.sample(np.random.default_rng(3), 30)  # the same first batch
    y = net.map(x)
    if name == "explicit":
        g = wasserstein_gradient(x, target)  # at ϱ0 itself
        expected = np.mean(np.sum((g + (y - x) / config.tau) ** 2, axis=1))
    else:
        expected = np.sum((y - x) ** 2) / (2 * config.tau * len(x))
    assert result.inner_loss[0, 0] == pytest.approx(expected, rel=1e-12)
    with pytest.raises(ValueError, match="start"):
        make_method(name, start="zero")


@pytest.mark.parametrize("start", ["identity", "network"])
def test_inner_losses_at_the_start_of_each_outer_step(start):
    """At inner step 0 θ = θ_k: the proximal term vanishes (implicit, k >= 1, and k = 0 from
    T_θ0), and the explicit objective equals the mean ‖g^k‖² (k >= 1)."""
    source, target = paper_mixture(), LogConcaveTarget.standard_gaussian(2)
    net = ICNN(2, (6, 5), np.random.default_rng(0))
    common = {"outer_steps": 3, "inner_steps": 2, "batch_size": 30, "start": start}
    implicit = run_method(
        make_method("implicit", **common), net, source, target, np.random.default_rng(1)
    )
    first = 0 if start == "network" else 1
    assert np.all(implicit.inner_loss[first:, 0] == 0.0)
    if start == "identity":
        assert implicit.inner_loss[0, 0] > 0.0
    explicit = run_method(
        make_method("explicit", **common), net, source, target, np.random.default_rng(1)
    )
    np.testing.assert_allclose(explicit.inner_loss[1:, 0], explicit.fisher[1:, 0], rtol=1e-12)
    assert np.all(explicit.inner_loss[1:, 1] != explicit.fisher[1:, 1])


def test_implicit_gradient_with_summed_kl_weighs_the_kl_n_times():
    architecture, theta, x, rng = _small_problem(seed=5)
    target = LogConcaveTarget.standard_gaussian(2)
    y_previous = transport_map(architecture, theta, x) + 0.1 * rng.normal(size=x.shape)
    mean, proximal, _ = implicit_gradient(architecture, theta, x, y_previous, target, 0.4)
    summed, proximal_sum, _ = implicit_gradient(
        architecture, theta, x, y_previous, target, 0.4, reduction="sum"
    )
    kl, _ = kl_parameter_gradient(architecture, theta, x, target)
    np.testing.assert_allclose(summed - mean, (len(x) - 1) * kl, rtol=1e-10, atol=1e-14)
    assert proximal_sum == proximal


def test_shapes_of_the_frozen_arrays_are_checked():
    architecture, theta, x, _ = _small_problem()
    target = LogConcaveTarget.standard_gaussian(2)
    y = transport_map(architecture, theta, x)
    with pytest.raises(ValueError, match="g_previous"):
        explicit_objective(architecture, theta, x, y, y[:1], 0.4)
    with pytest.raises(ValueError, match="y_previous"):
        explicit_objective(architecture, theta, x, y[0], y, 0.4)
    with pytest.raises(ValueError, match="y_previous"):
        implicit_gradient(architecture, theta, x, y[:1], target, 0.4)
    with pytest.raises(ValueError, match=r"dimension|shape"):
        LogConcaveTarget.standard_gaussian(3).grad_V(y)
    with pytest.raises(ValueError, match=r"dimension|shape"):
        LogConcaveTarget.gaussian([0.0, 1.0, 0.0], np.eye(3)).V(y)


def test_any_sampler_and_gridflow_target():
    from gridflow import LogConcaveTarget

    mean, cov = np.array([0.5, -0.2]), np.array([[1.0, 0.3], [0.3, 0.8]])
    gridflow_target = LogConcaveTarget.gaussian(mean, cov)
    ours = as_target(gridflow_target)
    y = np.random.default_rng(0).normal(size=(7, 2))
    np.testing.assert_allclose(
        ours.grad_V(y), LogConcaveTarget.gaussian(mean, cov).grad_V(y), rtol=1e-12
    )
    np.testing.assert_allclose(
        as_target(Gaussian(mean, cov)).grad_V(y), -Gaussian(mean, cov).score(y), rtol=1e-12
    )

    def sampler(rng, n):  # a plain callable source
        return rng.normal(size=(n, 2)) * 0.5

    config = make_method("adam", **TINY["adam"])
    result = run_method(
        config, ICNN(2, (6, 5), np.random.default_rng(0)), sampler, ours, np.random.default_rng(0)
    )
    assert result.fisher.shape == (5,)


def test_divergence_is_reported_as_divergence_error():
    config = EuclideanGD(step_size=1e6, steps=20, batch_size=30)
    net = ICNN(2, (6, 5), np.random.default_rng(0))
    with pytest.raises(DivergenceError, match="euclidean"):
        run_method(
            config,
            net,
            paper_mixture(),
            LogConcaveTarget.standard_gaussian(2),
            np.random.default_rng(0),
        )


def test_a_map_sent_to_infinity_is_a_divergence_naming_the_samples():
    """The training loops pass the map's values to the score unchecked: a diverged map is a
    DivergenceError that says so, not the score's advice about its input x."""
    from neural.training.gradients import wasserstein_gradient_unchecked

    y = np.random.default_rng(1).standard_normal((30, 2))
    y[[3, 7]] = np.inf
    with pytest.raises(DivergenceError, match="sent 2 of the samples to inf or NaN"):
        wasserstein_gradient_unchecked(y, LogConcaveTarget.standard_gaussian(2), None)


def test_a_constant_initial_map_is_refused_before_training_saying_why():
    """ICNN(2, (4,), default_rng(0)) draws its 4 output weights negative: clipped to 0, T_θ0
    is constant. That was 'adam diverged at step 0: ... pass eps explicitly' (probe P132)."""
    network = ICNN(2, (4,), np.random.default_rng(0))
    assert not network.architecture.views(network.params)["w"].any()
    source, target = paper_mixture(), LogConcaveTarget.standard_gaussian(2)
    expected = (
        r"adam: the initial map T_θ0 = ∇φ_θ0 is constant: it sends all 100 samples of the "
        r"first batch to \[0\., 0\.\].*nothing diverged: all 4 output weights w of θ_0 are 0.*"
        r"ICNN\(\.\.\., quadratic=True\)"
    )
    for config in (
        make_method("adam", steps=3, batch_size=100),
        make_method("explicit", outer_steps=3, batch_size=100, score_eps=0.1),
    ):
        with pytest.raises(DivergenceError, match=expected.replace("adam", config.name)):
            run_method(config, network, source, target, np.random.default_rng(0))
    quadratic = ICNN(2, (4,), np.random.default_rng(0), quadratic=True)
    run_method(make_method("adam", steps=3, batch_size=100), quadratic, source, target,
               np.random.default_rng(0))  # fmt: skip


@pytest.mark.parametrize("name", ["y_previous", "g_previous"])
def test_explicit_objective_refuses_non_finite_anchors(name):
    net = ICNN(2, (6, 5), np.random.default_rng(0))
    x = np.random.default_rng(1).standard_normal((30, 2))
    arrays = {"y_previous": x.copy(), "g_previous": np.zeros_like(x)}
    arrays[name][4, 1] = np.nan
    with pytest.raises(ValueError, match=f"{name} contains 1 NaN"):
        explicit_objective(net.architecture, net.params, x, tau=0.4, **arrays)


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("factory", "kwargs", "match"),
    [
        (ImplicitScheme, {"tau": 0.0}, "tau"),
        (ExplicitScheme, {"tau": -0.4}, "tau"),
        (ExplicitScheme, {"tau": float("nan")}, "tau"),
        (ImplicitScheme, {"outer_steps": 0}, "outer_steps"),
        (ExplicitScheme, {"inner_steps": 0}, "inner_steps"),
        (EuclideanGD, {"steps": 0}, "steps"),
        (EuclideanAdam, {"steps": -3}, "steps"),
        (EuclideanGD, {"step_size": 0.0}, "step_size"),
        (EuclideanAdam, {"learning_rate": -1.0}, "learning_rate"),
        (ImplicitScheme, {"inner_learning_rate": 0.0}, "inner_learning_rate"),
        (ImplicitScheme, {"batch_size": 1}, "batch_size"),
        (EuclideanGD, {"kl_reduction": "median"}, "kl_reduction"),
        (ImplicitScheme, {"score_eps": 0.0}, "score_eps"),
    ],
)
def test_bad_hyperparameters_raise_clear_errors(factory, kwargs, match):
    with pytest.raises(ValueError, match=match):
        factory(**kwargs)


def test_non_integer_steps_raise_type_error():
    with pytest.raises(TypeError, match="steps"):
        EuclideanGD(steps=2.5)


def test_unknown_method_and_options():
    with pytest.raises(ValueError, match=r"unknown method 'newton'.*implicit"):
        make_method("newton")
    with pytest.raises(ValueError, match="unknown method"):
        run_method(
            "newton",
            ICNN(2, (3,), np.random.default_rng(0)),
            paper_mixture(),
            LogConcaveTarget.standard_gaussian(2),
            np.random.default_rng(0),
        )
    with pytest.raises(TypeError, match="no option"):
        make_method("explicit", steps=3)


@pytest.mark.parametrize("name", [["adam"], None, 1])
def test_a_method_name_that_is_not_text_is_a_type_error(name):
    """make_method(['adam']) used to raise "unhashable type: 'list'"."""
    with pytest.raises(TypeError, match=r"name must be a method name \(a str\), one of implicit"):
        make_method(name)


def test_bad_arguments_of_run_method():
    net = ICNN(2, (3,), np.random.default_rng(0))
    config = make_method("adam", **TINY["adam"])
    target = LogConcaveTarget.standard_gaussian(2)
    with pytest.raises(TypeError, match="initial must be an ICNN"):
        run_method(config, net.params, paper_mixture(), target, np.random.default_rng(0))
    with pytest.raises(TypeError, match="source"):
        run_method(config, net, "mixture", target, np.random.default_rng(0))
    with pytest.raises(TypeError, match="target"):
        run_method(config, net, paper_mixture(), "gaussian", np.random.default_rng(0))
    with pytest.raises(TypeError, match="Generator"):
        run_method(config, net, paper_mixture(), target, 0)
    with pytest.raises(ValueError, match=r"shape \(30, 2\)"):
        run_method(
            config, net, lambda rng, n: rng.normal(size=(n, 3)), target, np.random.default_rng(0)
        )
    with pytest.raises(TypeError, match="config"):
        run_method(object(), net, paper_mixture(), target, np.random.default_rng(0))


@pytest.mark.parametrize(
    ("source_dim", "target_dim", "message"),
    [
        (2, 3, "the target has d = 3, the source and the network d = 2"),
        (3, 2, "the target and the network have d = 2, the source d = 3"),
    ],
)
def test_run_method_refuses_dimensions_that_differ(source_dim, target_dim, message):
    """Before training (it failed later with 'y must have 3 columns, got shape (20, 2)')."""
    target = LogConcaveTarget.gaussian(np.zeros(target_dim), np.eye(target_dim))
    net = ICNN(2, (4,), np.random.default_rng(0))
    with pytest.raises(ValueError, match=re.escape(message)):
        run_method("adam", net, Gaussian.standard(source_dim), target, np.random.default_rng(0))
