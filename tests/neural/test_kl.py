"""The score-free KL: third-order ICNN derivatives, the quadratic part, the exact KL."""

import itertools

import numpy as np
import pytest

from gridflow import Gaussian, LogConcaveTarget, gaussian
from gridflow.examples import paper_mixture
from neural.errors import DivergenceError
from neural.network import (
    ICNN,
    ICNNArchitecture,
    hessian,
    hessian_vjp,
    map_vjp,
    potential,
    transport_map,
)
from neural.training import make_method, run_method
from neural.training.gradients import (
    explicit_logdet_gradient,
    implicit_gradient,
    kl_parameter_gradient,
)
from neural.training.kl import cholesky_factors, exact_kl, relative_entropy, score_free_gradient


def _network(dim, hidden, quadratic=False, strong_convexity=0.0, seed=0, scale=0.3):
    rng = np.random.default_rng(seed)
    architecture = ICNNArchitecture(dim, hidden, quadratic, strong_convexity)
    theta = rng.normal(0.0, scale, architecture.num_params)
    mask = architecture.constrained_mask  # away from 0: finite differences stay admissible
    theta[mask] = np.abs(theta[mask]) + 0.2
    factor = architecture.quadratic_factor(theta)
    if factor is not None:
        factor[...] = rng.normal(size=factor.shape)
    return architecture, theta, rng


def _directional_check(function, gradient, theta, rng, h=1e-5, directions=3):
    """max relative error of gradient·v against central differences of ``function``."""
    errors = []
    for _ in range(directions):
        v = rng.normal(size=theta.shape)
        fd = (function(theta + h * v) - function(theta - h * v)) / (2 * h)
        errors.append(abs(gradient @ v - fd) / max(abs(fd), 1e-12))
    return max(errors)


HESSIAN_VJP_CASES = [
    (1, (3,)),
    (2, (5, 7)),
    (5, (6, 4, 5)),
    (8, (9, 8, 7, 6)),
    (2, (4, 4, 4, 4)),
    (8, (6,)),
]


@pytest.mark.parametrize("quadratic", [False, True])
@pytest.mark.parametrize(("dim", "hidden"), HESSIAN_VJP_CASES)
def test_hessian_vjp_matches_finite_differences(dim, hidden, quadratic):
    architecture, theta, rng = _network(dim, hidden, quadratic, seed=dim + len(hidden))
    x = rng.normal(size=(7, dim))
    factors = rng.normal(size=(7, dim, 3))

    def objective(t):
        return np.einsum("nik,nij,njk->", factors, hessian(architecture, t, x), factors)

    gradient = hessian_vjp(architecture, theta, x, factors)
    assert _directional_check(objective, gradient, theta, rng) < 1e-6


def test_hessian_vjp_blocks_and_padding():
    """n = 300 runs three blocks with a ragged last one; the sum is blockwise additive."""
    architecture, theta, rng = _network(2, (6, 5))
    x = rng.normal(size=(300, 2))
    factors = rng.normal(size=(300, 2, 2))
    whole = hessian_vjp(architecture, theta, x, factors)
    parts = sum(
        hessian_vjp(architecture, theta, x[i : i + 37], factors[i : i + 37])
        for i in range(0, 300, 37)
    )
    np.testing.assert_allclose(whole, parts, rtol=1e-11, atol=1e-11)


def test_hessian_vjp_rejects_bad_factors():
    architecture, theta, rng = _network(2, (4,))
    x = rng.normal(size=(5, 2))
    with pytest.raises(ValueError, match="factors must have shape"):
        hessian_vjp(architecture, theta, x, np.ones((5, 3, 2)))
    bad = np.ones((5, 2, 2))
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="factors"):
        hessian_vjp(architecture, theta, x, bad)


# --------------------------------------------------------------------------- quadratic part


@pytest.mark.parametrize("strong_convexity", [0.0, 0.3])
def test_quadratic_part_derivatives(strong_convexity):
    architecture, theta, rng = _network(3, (5, 4), True, strong_convexity, seed=3)
    x = rng.normal(size=(6, 3))
    h = 1e-5
    fd_map = np.stack(
        [
            (potential(architecture, theta, x + h * e) - potential(architecture, theta, x - h * e))
            / (2 * h)
            for e in np.eye(3)
        ],
        axis=1,
    )
    np.testing.assert_allclose(transport_map(architecture, theta, x), fd_map, rtol=1e-7, atol=1e-8)
    fd_hessian = np.stack(
        [
            (
                transport_map(architecture, theta, x + h * e)
                - transport_map(architecture, theta, x - h * e)
            )
            / (2 * h)
            for e in np.eye(3)
        ],
        axis=2,
    )
    np.testing.assert_allclose(hessian(architecture, theta, x), fd_hessian, rtol=1e-7, atol=1e-8)
    u = rng.normal(size=x.shape)
    gradient = map_vjp(architecture, theta, x, u)

    def objective(t):
        return np.sum(u * transport_map(architecture, t, x))

    assert _directional_check(objective, gradient, theta, rng) < 1e-7


def test_quadratic_part_layout_and_init():
    net = ICNN(2, (20, 20), np.random.default_rng(0), quadratic=True)
    assert net.num_params == 541 + 4
    np.testing.assert_array_equal(net.views()["L"], np.eye(2))
    assert "quadratic=True" in repr(net)
    assert net.with_params(net.params).architecture == net.architecture
    plain = ICNN(2, (20, 20), np.random.default_rng(0))
    assert plain.num_params == 541  # the paper's network is the default
    x = np.random.default_rng(1).normal(size=(5, 2))
    # same draws for the ICNN part: the quadratic part adds exactly ½‖x‖² (L = I)
    np.testing.assert_allclose(net.map(x), plain.map(x) + x, rtol=1e-13, atol=1e-13)
    with pytest.raises(ValueError, match="strong_convexity"):
        ICNN(2, (4,), np.random.default_rng(0), strong_convexity=-1.0)
    with pytest.raises(TypeError, match="quadratic"):
        ICNNArchitecture(2, (4,), quadratic="yes")


# --------------------------------------------------------------------------- log det, exact KL


@pytest.mark.parametrize("d", [1, 2, 3, 8])
def test_cholesky_of_a_block_is_the_pointwise_one_bit_for_bit(d):
    """The score-free kernel factors a block's Hessians at once (loops over the points):
    the same log det, H⁻¹ and failures as ``cholesky_point`` point by point, with the
    quadratic part added, padded points zero, a point that is not positive definite NaN."""
    from neural.network.kernels import cholesky_block, cholesky_point

    rng = np.random.default_rng(d)
    count, points, start, n = 37, 40, 5, 50
    factors = rng.standard_normal((n, d, d))
    hessians = factors @ factors.transpose(0, 2, 1) + 0.01 * np.eye(d)
    hessians[start + 6] = -np.eye(d)  # not positive definite
    hessians[start + 9, 0, 0] = np.nan
    quadratic = 0.1 * np.eye(d)
    stride = d + d * d
    outputs = np.full(n * stride, np.nan)
    for i in range(n):
        outputs[i * stride + d : (i + 1) * stride] = (hessians[i] - quadratic).ravel()
    gram, inverses, log_det = np.full((d, d, points), 7.0), np.zeros((n, d, d)), np.zeros(n)
    failures = cholesky_block(outputs, quadratic, start, count, points, gram, inverses, log_det)
    assert failures == 2
    lower, factor = np.zeros((d, d)), np.zeros((d, d))
    for i in range(start, start + count):
        h = outputs[i * stride + d : (i + 1) * stride].reshape(d, d) + quadratic
        expected = cholesky_point(h, lower, factor)
        if np.isnan(expected):
            assert np.isnan(log_det[i])
            continue
        assert log_det[i] == expected
        inverse = np.zeros((d, d))  # S = C Cᵀ summed in the kernel's order
        for j, k, m in itertools.product(range(d), range(d), range(d)):
            inverse[j, k] += factor[j, m] * factor[k, m]
        np.testing.assert_array_equal(inverses[i], inverse)
        np.testing.assert_allclose(inverses[i], np.linalg.inv(h), rtol=1e-8, atol=1e-10)
        np.testing.assert_array_equal(gram[:, :, i - start], inverses[i])
    np.testing.assert_array_equal(gram[:, :, count:], 0.0)


def test_cholesky_factors():
    rng = np.random.default_rng(4)
    a = rng.normal(size=(6, 3, 3))
    hessians = a @ a.transpose(0, 2, 1) + 0.1 * np.eye(3)
    log_det, factors = cholesky_factors(hessians)
    np.testing.assert_allclose(log_det, np.linalg.slogdet(hessians)[1], rtol=1e-12)
    np.testing.assert_allclose(
        factors @ factors.transpose(0, 2, 1), np.linalg.inv(hessians), rtol=1e-9, atol=1e-9
    )
    singular = hessians.copy()
    singular[2] = np.diag([1.0, 0.0, 1.0])
    with pytest.raises(DivergenceError, match="not positive definite at 1 of 6"):
        cholesky_factors(singular)
    singular[2, 0, 0] = np.nan
    with pytest.raises(DivergenceError, match="not positive definite"):
        cholesky_factors(singular)


@pytest.mark.parametrize(
    ("dim", "hidden", "quadratic", "strong_convexity"),
    [(2, (6, 5), True, 0.1), (1, (5,), False, 0.0), (5, (9, 7, 5), False, 0.0),
     (8, (9, 8, 7, 6), True, 0.0)],
)  # fmt: skip
def test_score_free_gradient_matches_finite_differences(dim, hidden, quadratic, strong_convexity):
    architecture, theta, rng = _network(dim, hidden, quadratic, strong_convexity, seed=5 + dim)
    x = rng.normal(size=(9, dim))
    target = LogConcaveTarget.gaussian(
        rng.normal(size=dim), np.eye(dim) + 0.2 * np.ones((dim, dim))
    )

    def objective(t):
        y = transport_map(architecture, t, x)
        log_det = np.linalg.slogdet(hessian(architecture, t, x))[1]
        return np.mean(target.V(y) - log_det)

    gradient, y, _ = score_free_gradient(architecture, theta, x, target, 1.0 / len(x))
    np.testing.assert_allclose(y, transport_map(architecture, theta, x), rtol=0, atol=0)
    assert _directional_check(objective, gradient, theta, rng) < 1e-6
    scheme_gradient, g = kl_parameter_gradient(architecture, theta, x, target, kl="logdet")
    assert g is None
    np.testing.assert_allclose(scheme_gradient, gradient, rtol=1e-13, atol=1e-15)


SCORE_FREE_HIDDEN = [(9,), (9, 6), (9, 7, 5), (9, 8, 7, 6)]  # depths 1-4, first width >= d


@pytest.mark.parametrize("quadratic", [False, True])
@pytest.mark.parametrize("hidden", SCORE_FREE_HIDDEN)
@pytest.mark.parametrize("dim", [1, 2, 5, 8])
def test_fused_score_free_gradient_matches_the_unfused_path(dim, hidden, quadratic):
    """One Hessian tape and one reverse sweep (``score_free_gradient``) against the separate
    public pieces: hessian, cholesky_factors, map_vjp and hessian_vjp (n = 150: two blocks,
    the second padded), with an extra cotangent as the implicit scheme passes."""
    architecture, theta, rng = _network(dim, hidden, quadratic, seed=20 + dim + len(hidden))
    x = rng.normal(size=(150, dim))
    target = LogConcaveTarget.gaussian(
        rng.normal(size=dim), np.eye(dim) + 0.2 * np.ones((dim, dim))
    )
    weight = 1.0 / len(x)
    anchor = rng.normal(size=x.shape)

    def extra(y):
        return (y - anchor) / (0.7 * len(x))

    gradient, y, log_det = score_free_gradient(architecture, theta, x, target, weight, extra)

    expected_log_det, factors = cholesky_factors(hessian(architecture, theta, x))
    expected_y = transport_map(architecture, theta, x)
    cotangent = weight * target.grad_V(expected_y) + extra(expected_y)
    expected = map_vjp(architecture, theta, x, cotangent)
    expected -= weight * hessian_vjp(architecture, theta, x, factors)
    np.testing.assert_array_equal(y, expected_y)
    np.testing.assert_array_equal(log_det, expected_log_det)
    assert np.max(np.abs(gradient - expected)) <= 1e-12 * np.max(np.abs(expected))


def test_score_free_gradient_does_not_depend_on_the_thread_count():
    import numba

    architecture, theta, rng = _network(3, (6, 5), True, 0.1, seed=16)
    x = rng.normal(size=(3000, 3))  # 24 blocks: the parallel kernels
    target = LogConcaveTarget.standard_gaussian(3)
    results = []
    for threads in (1, numba.config.NUMBA_NUM_THREADS):
        numba.set_num_threads(threads)
        try:
            results.append(score_free_gradient(architecture, theta, x, target, 1e-3, np.sin))
        finally:
            numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    for first, second in zip(*results, strict=True):
        assert np.array_equal(first, second)


def test_score_free_gradient_refuses_a_singular_hessian():
    """w = 0 and no quadratic part: ∇²φ = 0 at every sample; a DivergenceError, never NaN."""
    architecture, theta, rng = _network(2, (4, 3), seed=17)
    theta[architecture.slices()["w"][0]] = 0.0
    x = rng.normal(size=(9, 2))
    with pytest.raises(DivergenceError, match="not positive definite at 9 of 9 points"):
        score_free_gradient(architecture, theta, x, LogConcaveTarget.standard_gaussian(2), 1.0 / 9)


def test_implicit_and_explicit_logdet_gradients_match_finite_differences():
    architecture, theta, rng = _network(2, (5, 5), True, 0.1, seed=6)
    x = rng.normal(size=(8, 2))
    target = LogConcaveTarget.standard_gaussian(2)
    tau = 0.4
    y_previous = x + 0.1 * rng.normal(size=x.shape)
    a = rng.normal(size=(8, 2, 2))
    hessian_previous = a @ a.transpose(0, 2, 1) + np.eye(2)

    def implicit(t):
        y = transport_map(architecture, t, x)
        log_det = np.linalg.slogdet(hessian(architecture, t, x))[1]
        return np.mean(target.V(y) - log_det) + np.mean(np.sum((y - y_previous) ** 2, 1)) / (
            2 * tau
        )

    gradient, proximal, fisher = implicit_gradient(
        architecture, theta, x, y_previous, target, tau, kl="logdet"
    )
    assert np.isnan(fisher) and proximal > 0
    assert _directional_check(implicit, gradient, theta, rng) < 1e-6

    inverse = np.linalg.inv(hessian_previous)

    def explicit(t):
        y = transport_map(architecture, t, x)
        trace = np.einsum("nij,nji->n", inverse, hessian(architecture, t, x))
        linear = np.sum(target.grad_V(y_previous) * y, 1) - trace
        return np.mean(linear + np.sum((y - y_previous) ** 2, 1) / (2 * tau))

    gradient, _ = explicit_logdet_gradient(
        architecture, theta, x, y_previous, hessian_previous, target, tau
    )
    assert _directional_check(explicit, gradient, theta, rng) < 1e-6


def _affine_network(matrix_factor, strong_convexity, dim, hidden=(5,)):
    """An ICNN whose ICNN part is constant (w = 0): T(x) = (L Lᵀ + α I) x exactly."""
    architecture = ICNNArchitecture(dim, hidden, True, strong_convexity)
    theta = architecture.init_params(np.random.default_rng(0))
    theta[architecture.slices()["w"][0]] = 0.0
    architecture.quadratic_factor(theta)[...] = matrix_factor
    return architecture, theta


def test_exact_kl_of_affine_maps_matches_the_gaussian_closed_form():
    rng = np.random.default_rng(7)
    d = 3
    factor = rng.normal(size=(d, d))
    architecture, theta = _affine_network(factor, 0.3, d)
    matrix = factor @ factor.T + 0.3 * np.eye(d)
    m0, mg = rng.normal(size=d), rng.normal(size=d)
    s0 = np.cov(rng.normal(size=(d, 10))) + 0.5 * np.eye(d)
    cov_g = np.cov(rng.normal(size=(d, 10))) + 0.5 * np.eye(d)
    source, target = Gaussian(m0, s0), LogConcaveTarget.gaussian(mg, cov_g)
    estimate = exact_kl(architecture, theta, source, target, source.sample(rng, 20000))
    closed = gaussian.kl(
        gaussian.Gaussian(matrix @ m0, matrix @ s0 @ matrix), gaussian.Gaussian(mg, cov_g)
    )
    assert estimate.n == 20000
    assert 0 < estimate.standard_error < 0.02 * closed
    assert abs(estimate.value - closed) < 4 * estimate.standard_error


def test_exact_kl_vanishes_pointwise_at_the_ot_map():
    """At T = T* the integrand of (★) is 0 at every sample: value and error are roundoff."""
    rng = np.random.default_rng(8)
    d = 4
    s0 = np.cov(rng.normal(size=(d, 12))) + 0.3 * np.eye(d)
    cov_g = np.cov(rng.normal(size=(d, 12))) + 0.3 * np.eye(d)
    a_star, b_star = gaussian.ot_map(
        gaussian.Gaussian(np.zeros(d), s0), gaussian.Gaussian(np.zeros(d), cov_g)
    )
    np.testing.assert_allclose(b_star, 0.0, atol=1e-12)
    architecture, theta = _affine_network(np.linalg.cholesky(a_star), 0.0, d)
    estimate = exact_kl(
        architecture,
        theta,
        Gaussian(np.zeros(d), s0),
        LogConcaveTarget.gaussian(np.zeros(d), cov_g),
        rng.normal(size=(500, d)),
    )
    assert abs(estimate.value) < 1e-10 and estimate.standard_error < 1e-10


def test_exact_kl_needs_densities():
    architecture, theta = _affine_network(np.eye(2), 0.0, 2)
    x = np.random.default_rng(0).normal(size=(10, 2))
    with pytest.raises(TypeError, match="log_density"):
        exact_kl(architecture, theta, lambda rng, n: x, LogConcaveTarget.standard_gaussian(2), x)
    with pytest.raises(TypeError, match="V must be a callable"):  # a target always has V
        LogConcaveTarget(V=None, grad_V=lambda y: y, dim=2)


# --------------------------------------------------------------------------- schemes


@pytest.mark.parametrize("method", ["implicit", "explicit", "adam", "euclidean"])
def test_every_method_runs_score_free(method):
    rng = np.random.default_rng(9)
    net = ICNN(2, (6, 6), rng, strong_convexity=0.05)
    sizes = (
        {"steps": 4} if method in ("adam", "euclidean") else {"outer_steps": 2, "inner_steps": 3}
    )
    config = make_method(method, kl="logdet", batch_size=16, **sizes)
    result = run_method(config, net, paper_mixture(), LogConcaveTarget.standard_gaussian(2), rng)
    assert np.isnan(result.fisher).all()
    assert result.network.is_admissible()
    assert not np.array_equal(result.params, result.initial_params)


def test_score_free_training_reaches_a_gaussian_ot_map():
    """Gaussian → N(0, I) in d = 2: the implicit scheme with the log-det gradient and the
    quadratic part ends within 0.3 % UVP of the closed-form map (measured 0.07 %; the
    score path with the same settings: 0.63 %)."""
    rng = np.random.default_rng(10)
    cov0 = np.array([[0.6, 0.25], [0.25, 0.4]])
    source = Gaussian(np.array([1.0, -0.5]), cov0)
    a_star, b_star = gaussian.ot_map(
        gaussian.Gaussian(source.mean, cov0), gaussian.Gaussian(np.zeros(2), np.eye(2))
    )
    net = ICNN(2, (8, 8), rng, quadratic=True)
    config = make_method("implicit", kl="logdet", outer_steps=8, inner_steps=40, tau=1.0,
                         inner_learning_rate=0.02, batch_size=200)  # fmt: skip
    result = run_method(config, net, source, LogConcaveTarget.standard_gaussian(2), rng)
    x = source.sample(rng, 4000)
    error = result.map(x) - (x @ a_star.T + b_star)
    uvp = 100 * np.mean(np.sum(error**2, 1)) / 2.0
    assert uvp < 0.3


def test_singular_hessian_is_a_divergence_error():
    """A network with one nonzero output weight and no quadratic part has ∇²φ of rank 1 in
    d = 2: a clear error, never NaN. With w = 0 (∇²φ = 0) the map is constant, refused
    before training (``check_initial_map``; that check came later, probe P132)."""
    rng = np.random.default_rng(11)
    net = ICNN(2, (4,), rng)
    theta = np.array(net.params)
    output = net.architecture.slices()["w"][0]
    theta[output] = 0.0
    config = make_method("implicit", kl="logdet", outer_steps=1, inner_steps=2, batch_size=8)
    source, target = paper_mixture(), LogConcaveTarget.standard_gaussian(2)
    with pytest.raises(DivergenceError, match=r"implicit: the initial map .* is constant"):
        run_method(config, net.with_params(theta), source, target, np.random.default_rng(11))
    theta[output.start] = 1.0  # one unit: ∇²φ = s''(a) W0_1 W0_1ᵀ, singular everywhere
    with pytest.raises(DivergenceError, match=r"implicit diverged at step \(0, 0\).*not positive"):
        run_method(config, net.with_params(theta), source, target, rng)
    with pytest.raises(ValueError, match="kl must be 'score'"):
        make_method("adam", kl="entropy")


def test_shapes_are_checked_before_any_kernel_runs():
    architecture, theta, rng = _network(2, (4,), True, 0.1, seed=14)
    x = rng.normal(size=(10, 2))
    target = LogConcaveTarget.standard_gaussian(2)
    for wrong in (np.ones((4, 2, 2)), np.ones((40, 2, 2)), np.ones((10, 2))):
        with pytest.raises(ValueError, match="hessian_previous must have shape"):
            explicit_logdet_gradient(architecture, theta, x, x, wrong, target, 0.5)
    negative = theta.copy()
    negative[architecture.constrained_mask] = -1.0
    with pytest.raises(ValueError, match="violates the ICNN constraints"):
        explicit_logdet_gradient(
            architecture, negative, x, x, np.broadcast_to(np.eye(2), (10, 2, 2)), target, 0.5
        )
    for wrong in (np.eye(2), np.ones((3, 2, 3))):
        with pytest.raises(ValueError, match=r"hessians must have shape \(n, d, d\)"):
            cholesky_factors(wrong)
    with pytest.raises(ValueError, match="log_det must be a number or have shape"):
        relative_entropy(Gaussian.standard(2), target, x, x, np.zeros((10, 1)))
    with pytest.raises(ValueError, match="y must have the shape"):
        relative_entropy(Gaussian.standard(2), target, x, x[:, :1], 0.0)


def test_exact_kl_needs_the_target_normalizer():
    architecture, theta = _affine_network(np.eye(3), 0.0, 3)
    x = np.random.default_rng(0).normal(size=(10, 3))
    no_log_z = LogConcaveTarget(  # in d > 2 log Z is not computed by quadrature
        V=lambda y: 0.5 * np.sum(y * y, axis=1), grad_V=lambda y: y, dim=3
    )
    with pytest.raises(ValueError, match="lacks log_normalizer"):
        exact_kl(architecture, theta, Gaussian.standard(3), no_log_z, x)


def test_hessian_vjp_does_not_depend_on_the_thread_count():
    import numba

    architecture, theta, rng = _network(2, (6, 5), True, 0.1, seed=15)
    x = rng.normal(size=(3000, 2))  # 24 blocks: the parallel kernel
    factors = rng.normal(size=(3000, 2, 2))
    results = []
    for threads in (1, numba.config.NUMBA_NUM_THREADS):
        numba.set_num_threads(threads)
        try:
            results.append(hessian_vjp(architecture, theta, x, factors))
        finally:
            numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    assert np.array_equal(results[0], results[1])
