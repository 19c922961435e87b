"""The built-in log-concave targets: derivatives, λ, log Z, the cvxpy form of E V, specs."""

from __future__ import annotations

import json

import cvxpy as cp
import numpy as np
import pytest
from scipy import integrate

from gridflow import LogConcaveTarget

COV_2D = [[1.5, 0.6], [0.6, 0.8]]
MEAN_2D = [0.3, -0.2]


def built_in_targets():
    return {
        "gaussian 2d": LogConcaveTarget.gaussian(MEAN_2D, COV_2D),
        "standard gaussian": LogConcaveTarget.standard_gaussian(2),
        "quartic": LogConcaveTarget.quartic(),
        "logcosh 1d": LogConcaveTarget.logcosh(1),
        "logcosh 2d": LogConcaveTarget.logcosh(2),
        "logcosh 3d": LogConcaveTarget.logcosh(3),
        "gaussian logcosh 1d": LogConcaveTarget.gaussian_logcosh([0.5], [[0.7]], 2.0),
        "gaussian logcosh 2d": LogConcaveTarget.gaussian_logcosh(MEAN_2D, COV_2D, 2.0),
        "gaussian logcosh 3d diagonal": LogConcaveTarget.gaussian_logcosh(
            [0.1, 0.0, -0.4], np.diag([0.5, 2.0, 1.0]), 0.5
        ),
    }


TARGETS = built_in_targets()
NON_GAUSSIAN = [name for name in TARGETS if "logcosh" in name]


def points(target, n=40, scale=3.0, seed=0):
    return scale * np.random.default_rng(seed).standard_normal((n, target.dim))


@pytest.mark.parametrize("name", list(TARGETS))
def test_derivatives_match_finite_differences(name):
    """grad_V against central differences of V, hess_V against those of grad_V (step 1e-5:
    truncation ~1e-10, rounding ~1e-11)."""
    target = TARGETS[name]
    y = points(target)
    step = 1e-5
    eye = np.eye(target.dim)
    gradient = np.stack(
        [(target.V(y + step * e) - target.V(y - step * e)) / (2 * step) for e in eye], axis=1
    )
    scale = 1 + np.abs(gradient).max()
    np.testing.assert_allclose(target.grad_V(y), gradient, rtol=0, atol=1e-7 * scale)
    hessian = np.stack(
        [(target.grad_V(y + step * e) - target.grad_V(y - step * e)) / (2 * step) for e in eye],
        axis=2,
    )
    scale = 1 + np.abs(hessian).max()
    np.testing.assert_allclose(target.hess_V(y), hessian, rtol=0, atol=1e-7 * scale)


def independent_log_normalizer(target):
    """log ∫ exp(−V) by scipy's adaptive quadrature (quad, dblquad), and for the diagonal
    3D cases as a product of quad over the coordinates (V separates)."""

    def one_dimensional(V1):
        with np.errstate(over="ignore"):
            value, _ = integrate.quad(
                lambda t: np.exp(-V1(t)), -np.inf, np.inf, epsabs=0, epsrel=1e-13, limit=200
            )
        return np.log(value)

    if target.dim == 1:
        return one_dimensional(lambda t: target.V(np.array([[t]]))[0])
    if target.dim == 2:
        # a bounded box: V ≥ λ|y − m|²/2 with λ ≥ 0.5 makes the rest below e^{-35}
        with np.errstate(over="ignore"):
            value, _ = integrate.dblquad(
                lambda y1, y0: np.exp(-target.V(np.array([[y0, y1]]))[0]),
                -12, 12, -12, 12, epsabs=0, epsrel=1e-13,
            )  # fmt: skip
        return np.log(value)
    spec = target.spec
    mean = np.zeros(3) if spec["kind"] == "logcosh" else np.array(spec["mean"])
    variances = np.ones(3) if spec["kind"] == "logcosh" else np.diag(spec["cov"])
    weight = 1.0 if spec["kind"] == "logcosh" else spec["weight"]

    def coordinate(k):
        return lambda t: (
            (t - mean[k]) ** 2 / (2 * variances[k]) + weight * np.log(np.cosh(t - mean[k]))
        )

    return sum(one_dimensional(coordinate(k)) for k in range(3))


@pytest.mark.parametrize("name", [n for n in TARGETS if n != "standard gaussian"])
def test_log_normalizer_against_an_independent_quadrature(name):
    target = TARGETS[name]
    assert target.log_normalizer == pytest.approx(
        independent_log_normalizer(target), rel=0, abs=1e-12
    )


def test_logcosh_log_normalizer_is_a_product_over_coordinates():
    z = LogConcaveTarget.logcosh(1).log_normalizer
    for dim in (2, 3, 5):
        assert LogConcaveTarget.logcosh(dim).log_normalizer == pytest.approx(dim * z, abs=1e-13)


@pytest.mark.parametrize("name", list(TARGETS))
def test_lam_is_the_infimum_of_the_smallest_hessian_eigenvalue(name):
    """On a grid of points: every eigenvalue of ∇²V is ≥ λ, and the smallest comes within
    1e-9 of λ far out (along the Hessian's limit's softest direction for the non-Gaussian
    targets, where sech² vanishes; at 0 for the quartic)."""
    target = TARGETS[name]
    center = np.zeros(target.dim) if target.spec.get("mean") is None else target.spec["mean"]
    radii = np.linspace(-40.0, 40.0, 161)
    if target.dim == 1:
        y = np.asarray(center) + radii[:, None]
    else:
        grid = np.stack(np.meshgrid(*[radii[::8]] * target.dim, indexing="ij"), -1)
        hessian = target.hess_V(np.atleast_2d(center))[0]
        _, vectors = np.linalg.eigh(hessian)
        direction = vectors[:, 0] + 1e-3  # no zero coordinate: every sech² → 0
        line = radii[:, None] * direction / np.linalg.norm(direction)
        y = np.asarray(center) + np.vstack([grid.reshape(-1, target.dim), line])
    smallest = np.linalg.eigvalsh(target.hess_V(y))[:, 0]
    assert smallest.min() >= target.lam - 1e-12
    assert smallest.min() == pytest.approx(target.lam, abs=1e-9)


@pytest.mark.parametrize("name", list(TARGETS))
def test_expected_V_cvxpy_is_convex_and_equals_the_weighted_sum(name):
    target = TARGETS[name]
    rng = np.random.default_rng(1)
    T_value = 2.0 * rng.standard_normal((30, target.dim))
    weights = rng.uniform(0.1, 1.0, 30)
    T = cp.Variable((30, target.dim))
    T.value = T_value
    expression = target.expected_V_cvxpy(T, weights)
    assert expression.is_dcp() and expression.is_convex()
    assert float(expression.value) == pytest.approx(
        float(weights @ target.V(T_value)), rel=1e-12, abs=1e-12
    )


@pytest.mark.parametrize("name", list(TARGETS))
def test_from_spec_rebuilds_each_built_in_target(name):
    target = TARGETS[name]
    spec = json.loads(json.dumps(target.spec))
    rebuilt = LogConcaveTarget.from_spec(spec)
    y = points(target, seed=2)
    np.testing.assert_array_equal(rebuilt.V(y), target.V(y))
    np.testing.assert_array_equal(rebuilt.grad_V(y), target.grad_V(y))
    assert rebuilt.lam == target.lam
    assert rebuilt.log_normalizer == target.log_normalizer
    assert rebuilt.dim == target.dim and rebuilt.name == target.name
    assert rebuilt.spec == target.spec


def test_a_target_from_python_functions_has_no_spec():
    target = LogConcaveTarget(V=lambda y: 0.5 * y[:, 0] ** 2, grad_V=lambda y: y, lam=1.0)
    assert target.spec is None


def test_the_spec_names_the_kind():
    assert LogConcaveTarget.standard_gaussian(2).spec == {
        "kind": "gaussian",
        "mean": [0.0, 0.0],
        "cov": [[1.0, 0.0], [0.0, 1.0]],
    }
    assert LogConcaveTarget.quartic().spec == {"kind": "quartic"}
    assert LogConcaveTarget.logcosh(2).spec == {"kind": "logcosh", "dim": 2}
    assert LogConcaveTarget.logcosh(2).lam == 1.0
    assert LogConcaveTarget.gaussian_logcosh([0.0], [[4.0]]).lam == 0.25


@pytest.mark.parametrize(
    "spec, message",
    [
        ("gaussian", "must be a dict with 'kind'"),
        ({"mean": [0.0]}, "must be a dict with 'kind'"),
        ({"kind": "laplace"}, "kind 'laplace'"),
        ({"kind": "gaussian", "mean": [0.0]}, r"fields \['cov', 'mean'\]"),
        ({"kind": "quartic", "dim": 1}, r"fields \[\] besides 'kind', got \['dim'\]"),
        ({"kind": "gaussian", "mean": [0.0, 0.0], "cov": [[1.0, 2.0], [2.0, 1.0]]}, "bad"),
        ({"kind": "gaussian", "mean": [0.0], "cov": "one"}, "bad 'gaussian' target spec"),
        ({"kind": "logcosh", "dim": 0}, "bad 'logcosh' target spec: dim"),
        ({"kind": "logcosh", "dim": 1.5}, "bad 'logcosh' target spec: dim"),
        (
            {"kind": "gaussian_logcosh", "mean": [0.0], "cov": [[1.0]], "weight": -1.0},
            "bad 'gaussian_logcosh' target spec: weight",
        ),
    ],
)
def test_from_spec_refuses_a_bad_spec(spec, message):
    with pytest.raises(ValueError, match=message):
        LogConcaveTarget.from_spec(spec)


def test_a_grad_v_of_the_wrong_shape_is_refused_not_broadcast():
    target = LogConcaveTarget(
        lambda x: 0.5 * np.sum(x**2, axis=-1), grad_V=lambda x: np.sum(x, axis=-1), dim=2
    )
    with pytest.raises(ValueError, match=r"grad_V\(y\) must have shape \(3, 2\) = y.shape"):
        target.score(np.zeros((3, 2)))
    with pytest.raises(ValueError, match=r"grad_V\(y\) must have shape"):
        target.hessian(np.zeros((3, 2)))
    wrong_hessian = LogConcaveTarget(
        lambda x: 0.5 * np.sum(x**2, axis=-1), grad_V=lambda x: x, hess_V=lambda x: x, dim=2
    )
    with pytest.raises(ValueError, match=r"hess_V\(points\) must have shape \(3, 2, 2\)"):
        wrong_hessian.hessian(np.zeros((3, 2)))


def _half_square(y):
    return 0.5 * (y**2).sum(1)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"lam": "1"}, TypeError, r"lam \(the convexity modulus of V\) must be a real number"),
        ({"lam": "abc"}, TypeError, r"lam \(the convexity modulus of V\) must be a real number"),
        ({"lam": True}, TypeError, r"lam \(the convexity modulus of V\) must be a real number"),
        ({"lam": [1]}, TypeError, r"lam \(the convexity modulus of V\) must be a real number"),
        ({"lam": -1.0}, ValueError, r"lam \(the convexity modulus of V\) must be a finite"),
        ({"lam": np.nan}, ValueError, "pass None when it is unknown"),
        ({"dim": None}, TypeError, "dim must be a positive integer, got None"),
        ({"dim": "2"}, TypeError, "dim must be a positive integer, got '2'"),
        ({"dim": 2.0}, TypeError, "dim must be a positive integer, got 2.0"),
        ({"dim": 0}, ValueError, "dim must be a positive integer, got 0"),
        ({"log_normalizer": "x"}, TypeError, "log_normalizer must be a real number, got 'x'"),
        ({"log_normalizer": np.inf}, ValueError, r"log_normalizer \(log ∫ exp\(-V\)\) must be"),
    ],
)
def test_lam_dim_and_log_normalizer_are_checked_by_kind_and_value(kwargs, error, match):
    with pytest.raises(error, match=match):
        LogConcaveTarget(_half_square, lambda y: y, **kwargs)


def test_numpy_numbers_are_accepted_for_lam_dim_and_log_normalizer():
    target = LogConcaveTarget(
        _half_square,
        lambda y: y,
        lam=np.float64(1.0),
        dim=np.int64(2),
        log_normalizer=np.log(2 * np.pi),
    )
    assert (target.lam, target.dim) == (1.0, 2) and type(target.log_normalizer) is float


def test_a_v_returning_a_column_is_refused_naming_the_shape():
    """V returning (n, 1) used to pass the growth probe (reshaped) and fail in the
    quadrature with numpy's 'only 0-dimensional arrays can be converted'."""
    with pytest.raises(
        ValueError, match=r"V must return one value per point, shape \(3,\).*keepdims"
    ):
        LogConcaveTarget(lambda y: 0.5 * (y**2).sum(1, keepdims=True), lambda y: y)
    with pytest.raises(ValueError, match=r"V must return one value per point"):
        LogConcaveTarget(lambda y: 0.5 * (y**2).sum(), lambda y: y, dim=2)
    target = LogConcaveTarget(_half_square, lambda y: y, log_normalizer=0.0)
    object.__setattr__(target, "V", lambda y: 0.5 * (y**2).sum(1, keepdims=True))
    with pytest.raises(ValueError, match=r"shape \(1,\) for points y of shape \(1, 1\)"):
        target.log_density([[0.0]])
