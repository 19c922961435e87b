"""Property tests of the ICNN's shape checks: points and cotangents are never broadcast.

The ICNN methods and the checked functions of ``neural.network.functions`` refuse random
wrong shapes of x, u and the Hessian factors with ValueError or TypeError, and accept the
right ones (in d = 1 a vector of n numbers is n points, read as the column (n, 1)).
"""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from neural import ICNN
from neural.network import functions

SETTINGS = settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
REFUSED = (ValueError, TypeError)
NETWORKS = {dim: ICNN(dim, (4, 4), np.random.default_rng(dim)) for dim in (1, 2, 3)}


def values(shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape)


@SETTINGS
@given(dim=st.sampled_from([1, 2, 3]), n=st.integers(1, 6), data=st.data())
def test_icnn_refuses_points_of_another_shape(wrong_shapes, dim, n, data):
    net = NETWORKS[dim]
    x = values(data.draw(wrong_shapes((n, dim)).filter(_not_points(dim))))
    theta = net.params
    for call in (
        net.potential,
        net.map,
        net,
        net.hessian,
        lambda x: net.map_vjp(x, x),
        lambda x: functions.potential(net.architecture, theta, x),
        lambda x: functions.transport_map(net.architecture, theta, x),
        lambda x: functions.hessian(net.architecture, theta, x),
    ):
        with pytest.raises(REFUSED):
            call(x)


def _not_points(dim):
    """Shapes that are not points of dimension `dim` for any n >= 1 (in d = 1 too, n numbers
    are not points: they must be the column (n, 1))."""
    return lambda s: not (len(s) == 2 and s[0] >= 1 and s[1] == dim)


@SETTINGS
@given(dim=st.sampled_from([1, 2, 3]), n=st.integers(1, 6), data=st.data())
def test_icnn_refuses_cotangents_and_factors_of_another_shape(wrong_shapes, dim, n, data):
    net = NETWORKS[dim]
    x = values((n, dim))
    u = values(data.draw(wrong_shapes((n, dim))))
    with pytest.raises(REFUSED, match="u"):
        net.map_vjp(x, u)
    with pytest.raises(REFUSED, match="u"):
        functions.map_vjp(net.architecture, net.params, x, u)
    factors = values(data.draw(wrong_shapes((n, dim)).map(lambda s: (*s, 2))))
    with pytest.raises(REFUSED, match="factors"):
        net.hessian_vjp(x, factors)


@SETTINGS
@given(dim=st.sampled_from([1, 2, 3]), n=st.integers(1, 6), seed=st.integers(0, 100))
def test_icnn_accepts_points_cotangents_and_factors_of_the_right_shape(dim, n, seed):
    net = NETWORKS[dim]
    x, u = values((n, dim), seed), values((n, dim), seed + 1)
    assert net.potential(x).shape == (n,)
    assert net.map(x).shape == net(x).shape == (n, dim)
    assert net.hessian(x).shape == (n, dim, dim)
    assert net.map_vjp(x, u).shape == net.hessian_vjp(x, values((n, dim, 2))).shape
    if dim == 1:  # n numbers are not n points: the column (n, 1) is
        with pytest.raises(ValueError, match=r"in d = 1 pass x\[:, None\]"):
            net.map(x[:, 0])
