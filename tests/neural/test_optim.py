"""SGD and Adam on flat parameter vectors with a projection hook."""

import numpy as np
import pytest

from neural import ICNNArchitecture
from neural.training.optim import SGD, Adam, AdamState


def test_sgd_step_by_hand():
    params = np.array([1.0, -2.0, 3.0])
    grad = np.array([0.5, 0.5, -1.0])
    optimizer = SGD(learning_rate=0.1)
    new, state = optimizer.step(params, grad, optimizer.init(params))
    np.testing.assert_array_equal(new, [0.95, -2.05, 3.1])
    assert state.step == 1
    np.testing.assert_array_equal(state.velocity, grad)  # the update direction v = g
    np.testing.assert_array_equal(params, [1.0, -2.0, 3.0])  # inputs untouched


def test_sgd_momentum_by_hand():
    optimizer = SGD(learning_rate=0.1, momentum=0.9)
    params = np.array([1.0])
    state = optimizer.init(params)
    params, state = optimizer.step(params, np.array([1.0]), state)  # v = 1
    params, state = optimizer.step(params, np.array([2.0]), state)  # v = 0.9 + 2 = 2.9
    assert params[0] == pytest.approx(1.0 - 0.1 - 0.29, rel=1e-15)


def test_adam_two_steps_by_hand():
    optimizer = Adam(learning_rate=0.05, beta1=0.9, beta2=0.999, epsilon=1e-8)
    params = np.array([0.3, -0.7])
    g1 = np.array([0.2, -1.5])
    g2 = np.array([-0.4, 0.25])
    state = optimizer.init(params)
    p1, state = optimizer.step(params, g1, state)
    m = 0.1 * g1
    v = 0.001 * g1**2
    expected1 = params - 0.05 * (m / 0.1) / (np.sqrt(v / 0.001) + 1e-8)
    np.testing.assert_allclose(p1, expected1, rtol=1e-15)
    np.testing.assert_allclose(p1, params - 0.05 * np.sign(g1), rtol=1e-6)  # first step ~ sign
    p2, state = optimizer.step(p1, g2, state)
    m = 0.9 * m + 0.1 * g2
    v = 0.999 * v + 0.001 * g2**2
    expected2 = p1 - 0.05 * (m / (1 - 0.9**2)) / (np.sqrt(v / (1 - 0.999**2)) + 1e-8)
    np.testing.assert_allclose(p2, expected2, rtol=1e-14)
    assert isinstance(state, AdamState) and state.step == 2
    np.testing.assert_allclose(state.first_moment, m, rtol=1e-15)
    np.testing.assert_allclose(state.second_moment, v, rtol=1e-15)


@pytest.mark.parametrize("optimizer", [SGD(learning_rate=1.0), Adam(learning_rate=1.0)])
def test_projection_hook_is_applied_after_the_update(optimizer):
    architecture = ICNNArchitecture(2, (3, 3))
    params = architecture.init_params(np.random.default_rng(0))
    grad = np.ones_like(params)  # pushes every entry down, constrained ones below 0
    raw, _ = optimizer.step(params, grad, optimizer.init(params))
    assert not architecture.is_admissible(raw)
    projected, _ = optimizer.step(params, grad, optimizer.init(params), architecture.project)
    assert architecture.is_admissible(projected)
    np.testing.assert_array_equal(projected, architecture.project(raw))


def test_bad_input():
    with pytest.raises(ValueError, match="learning_rate"):
        Adam(learning_rate=0.0)
    with pytest.raises(ValueError, match="beta1"):
        Adam(beta1=1.0)
    with pytest.raises(ValueError, match="momentum"):
        SGD(learning_rate=0.1, momentum=-0.5)
    with pytest.raises(ValueError, match="learning_rate must be a finite number"):
        SGD(learning_rate=10**400)  # an int beyond the float range
    with pytest.raises(TypeError, match="learning_rate must be a real number"):
        SGD(learning_rate="0.1")
    optimizer = Adam()
    state = optimizer.init(np.zeros(3))
    with pytest.raises(ValueError, match="grad must have the shape of params"):
        optimizer.step(np.zeros(3), np.zeros(4), state)
    with pytest.raises(ValueError, match="grad contains 1 NaN"):
        optimizer.step(np.zeros(3), np.array([0.0, np.nan, 0.0]), state)
    with pytest.raises(TypeError, match="state must be the AdamState"):
        optimizer.step(np.zeros(3), np.zeros(3), SGD(0.1).init(np.zeros(3)))
    with pytest.raises(TypeError, match=r"state must be the SGDState .* shape \(3,\)"):
        SGD(0.1).step(np.zeros(3), np.zeros(3), SGD(0.1).init(np.zeros(4)))
    with pytest.raises(ValueError, match="project must return"):
        optimizer.step(np.zeros(3), np.zeros(3), state, project=lambda p: p[:2])
