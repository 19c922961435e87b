"""When damped Newton stops (`proximal.damped_newton`): at a step within the tolerance, or
after the step that quadratic convergence predicts to leave the next one within it."""

import numpy as np

from gridflow.proximal import damped_newton


def _newton_on_x_minus_log1p(start, shrink=1.0):
    """damped_newton on f(x) = Σ x − log(1 + x) (minimizer 0), the Newton direction times
    `shrink`; returns the minimizer found and the points where a direction was computed."""
    asked = []

    def direction(x, g):
        asked.append(x.copy())
        return shrink * g * (1 + x) ** 2

    def value(x):
        return float(np.sum(x - np.log1p(x))) if np.all(x > -1) else np.inf

    found = damped_newton(value, lambda x: x / (1 + x), direction, np.linalg.norm, start)
    return found, asked


def test_newton_stops_when_quadratic_convergence_predicts_the_tolerance():
    """Two whole steps of quadratic convergence predict the next: the iteration ends at a
    point within the tolerance without computing the direction there."""
    found, asked = _newton_on_x_minus_log1p(np.array([0.3, -0.2]))
    assert np.linalg.norm(found) <= 1e-13
    assert not any(np.array_equal(found, x) for x in asked)


def test_linear_convergence_is_never_taken_for_quadratic():
    """Half Newton steps shrink by 1/2 each: no prediction, the norm test ends them."""
    found, asked = _newton_on_x_minus_log1p(np.array([0.3, -0.2]), shrink=0.5)
    assert np.linalg.norm(found) <= 2e-13
    assert any(np.array_equal(found, x) for x in asked)
