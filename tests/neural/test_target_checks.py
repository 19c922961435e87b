"""Targets checked before training as in the grid solver: ∇V monotone on the first batch, and
exp(−V) integrable in every dimension (``check_growth``)."""

import numpy as np
import pytest

from gridflow import Gaussian, LogConcaveTarget
from neural import ICNN, run_method
from neural.training import EuclideanGD

SOURCE = Gaussian(np.zeros(2), np.eye(2))


def concave_target(dim=2):
    """The double well V(y) = ¼(‖y‖² − 1)²: ∇V(y) = (‖y‖² − 1) y is not monotone inside the
    unit ball (V is concave near 0), where the first batch lies."""
    return LogConcaveTarget(
        V=lambda y: 0.25 * (np.sum(np.asarray(y) ** 2, axis=1) - 1.0) ** 2,
        grad_V=lambda y: (np.sum(y**2, axis=1, keepdims=True) - 1.0) * y,
        dim=dim,
    )


def test_run_method_refuses_a_gradient_that_is_not_monotone_before_training():
    network = ICNN(dim=2, hidden=(8, 8), rng=np.random.default_rng(0), quadratic=True)
    config = EuclideanGD(steps=3, batch_size=20)
    calls = []
    with pytest.raises(ValueError, match="grad_V is not monotone, so V is not convex"):
        run_method(
            config,
            network,
            SOURCE,
            concave_target(),
            np.random.default_rng(1),
            callback=lambda k, theta: calls.append(k),
        )
    assert calls == []  # refused before the first step


def test_the_check_leaves_the_run_bit_for_bit_unchanged():
    network = ICNN(dim=2, hidden=(8, 8), rng=np.random.default_rng(0), quadratic=True)
    config = EuclideanGD(steps=3, batch_size=20)
    target = LogConcaveTarget.standard_gaussian(2)
    first = run_method(config, network, SOURCE, target, np.random.default_rng(1))
    rng = np.random.default_rng(1)
    second = run_method(config, network, SOURCE, target, rng)
    np.testing.assert_array_equal(first.params, second.params)
    # the run drew exactly its own batches: the generator continues as after 3 draws of 20
    reference = np.random.default_rng(1)
    for _ in range(3):
        SOURCE.sample(reference, 20)
    assert rng.standard_normal() == reference.standard_normal()


@pytest.mark.parametrize("dim", [3, 5])
def test_a_V_constant_along_an_axis_is_refused_in_d_above_2(dim):
    def V(y):
        return 0.5 * np.sum(np.asarray(y)[:, 1:] ** 2, axis=1)  # flat along e_0

    with pytest.raises(ValueError, match="not integrable"):
        LogConcaveTarget(V=V, grad_V=lambda y: np.concatenate([0 * y[:, :1], y[:, 1:]], 1), dim=dim)


def test_a_linear_V_is_refused_in_d_above_2():
    direction = np.array([1.0, -2.0, 0.5, 3.0])
    with pytest.raises(ValueError, match="not integrable"):
        LogConcaveTarget(V=lambda y: np.asarray(y) @ direction, dim=4)


def test_integrable_targets_in_d_above_2_are_accepted():
    for dim in (3, 8):
        assert LogConcaveTarget.standard_gaussian(dim).dim == dim
        assert LogConcaveTarget.logcosh(dim).dim == dim
