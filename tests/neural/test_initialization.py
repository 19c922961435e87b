"""θ0 schemes: the sample-anchored initialization (neural.network.architecture, .initialization)."""

import numpy as np
import pytest

from gridflow.examples import paper_mixture
from neural import ICNN
from neural.network import reference
from neural.network.architecture import ANCHOR_SLOPE
from neural.network.initialization import initial_network


@pytest.mark.parametrize(
    ("dim", "hidden", "quadratic"),
    [(2, (20, 20), False), (2, (20, 20), True), (3, (5, 4, 6), False), (1, (7,), True)],
)
def test_every_hidden_unit_bends_at_an_anchor(dim, hidden, quadratic):
    rng = np.random.default_rng(0)
    anchors = 2.0 * rng.standard_normal((40, dim)) + 1.0
    net = ICNN(dim, hidden, np.random.default_rng(1), quadratic=quadratic, anchors=anchors)
    assert net.is_admissible()
    pre_activations = reference._forward(net.architecture, net.params, anchors)[0]
    for layer, pre in zip(net.layers, pre_activations, strict=True):
        # a unit's pre-activation vanishes at its anchor, and grows at slope 5 away from it
        scale = np.abs(pre).max()
        assert np.all(np.abs(pre).min(axis=0) <= 1e-13 * scale)
        np.testing.assert_allclose(np.linalg.norm(layer.weight_x, axis=1), ANCHOR_SLOPE, rtol=1e-14)


def test_anchored_network_with_quadratic_part_starts_at_the_identity():
    x = np.random.default_rng(2).standard_normal((50, 2))
    for alpha in (0.0, 0.25):
        net = ICNN(2, (8, 8), np.random.default_rng(3), quadratic=True, strong_convexity=alpha,
                   anchors=x)  # fmt: skip
        np.testing.assert_allclose(net.map(x), (1.0 + alpha) * x, rtol=1e-15, atol=1e-15)
    # without it the map is the ICNN's own, far from zero (every unit bends in the data)
    plain = ICNN(2, (8, 8), np.random.default_rng(3), anchors=x)
    assert np.abs(plain.map(x)).max() > 0.1


def test_slope_sets_the_weight_norms_and_the_default_draw_is_unchanged():
    x = np.random.default_rng(4).standard_normal((30, 2))
    net = ICNN(2, (6, 6), np.random.default_rng(5), anchors=x, slope=2.5)
    np.testing.assert_allclose(np.linalg.norm(net.views()["W0"], axis=1), 2.5, rtol=1e-14)
    default = ICNN(2, (6, 6), np.random.default_rng(5))
    # the anchored draw changes x-weights and biases only (and w with the quadratic part)
    changed = (net.params != default.params).astype(float)
    views = net.architecture.views(changed)
    assert not views["w"].any() and not views["Wz1"].any() and not views["c"].any()


def test_anchored_initialization_rejects_bad_input():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="anchors"):
        ICNN(2, (4,), rng, anchors=np.zeros((5, 3)))
    with pytest.raises(ValueError, match="anchors"):
        ICNN(2, (4,), rng, anchors=np.array([[0.0, np.nan]]))
    with pytest.raises(ValueError, match="slope"):
        ICNN(2, (4,), rng, anchors=np.zeros((5, 2)), slope=0.0)
    with pytest.raises(TypeError, match="pass anchors too"):
        ICNN(2, (4,), rng, slope=2.0)
    params = ICNN(2, (4,), rng).params
    with pytest.raises(TypeError, match="cannot go with params"):
        ICNN(2, (4,), params=params, anchors=np.zeros((5, 2)))


def test_initial_network_schemes():
    source = paper_mixture()
    net = initial_network(2, (20, 20), np.random.default_rng(0), "anchored", source=source)
    again = initial_network(2, (20, 20), np.random.default_rng(0), "anchored", source=source)
    np.testing.assert_array_equal(net.params, again.params)
    assert not np.array_equal(
        net.params, initial_network(2, (20, 20), np.random.default_rng(0)).params
    )
    with pytest.raises(ValueError, match="needs the source"):
        initial_network(2, (20, 20), np.random.default_rng(0), "anchored")
    with pytest.raises(ValueError, match="without the quadratic part"):
        initial_network(2, (5,), np.random.default_rng(0), "torch", quadratic=True)
    with pytest.raises(ValueError, match="unknown init"):
        initial_network(2, (5,), np.random.default_rng(0), "zeros")
    for init in ("normal", "torch", "anchored"):
        with pytest.raises(TypeError, match="hidden must be a sequence"):
            initial_network(2, 5, np.random.default_rng(0), init, source=source)
        with pytest.raises(TypeError, match=r"numpy\.random\.Generator"):
            initial_network(2, (5,), 0, init, source=source)
    with pytest.raises(ValueError, match=r"source.sample\(rng, 5\) must return shape \(5, 3\)"):
        initial_network(3, (5,), np.random.default_rng(0), "anchored", source=source)


def test_anchored_units_let_the_mixture_kl_run_past_the_plateau():
    """The finding behind the option: 1000 score-free Adam steps on the paper's mixture end
    near KL 0.05 from anchored units, on the plateau near 0.25 from the default draw."""
    from gridflow import LogConcaveTarget
    from neural.training import make_method, run_method
    from neural.training.kl import exact_kl

    source, target = paper_mixture(), LogConcaveTarget.standard_gaussian(2)
    x_eval = source.sample(np.random.default_rng(1), 5000)
    config = make_method("adam", kl="logdet", batch_size=500, steps=1000, learning_rate=0.01,
                         cosine_decay=True)  # fmt: skip
    kl = {}
    for init in ("anchored", "normal"):
        net = initial_network(2, (20, 20), np.random.default_rng(0), init, source=source)
        result = run_method(config, net, source, target, np.random.default_rng(10))
        kl[init] = exact_kl(net.architecture, result.params, source, target, x_eval)
    assert kl["anchored"].value + 3 * kl["anchored"].standard_error < 0.1
    assert kl["normal"].value - 3 * kl["normal"].standard_error > 0.2
