"""ICNN potential, map, parameter-VJP and Hessian (paper §3.4): derivatives, convexity, checks."""

import numpy as np
import pytest

from neural import ICNN, ICNNArchitecture
from neural.network import hessian, map_vjp, potential, reference, transport_map
from neural.network.functions import evaluate, transport_map_unchecked
from neural.network.kernels import MAP_VJP, activate, pack

ARCHITECTURES = [
    (1, (3,)),
    (1, (5, 4, 3)),
    (2, (7,)),
    (2, (20, 20)),
    (2, (6, 9, 4, 5)),
    (5, (8, 8)),
    (5, (4, 6, 3, 5)),
]


def _setup(dim, hidden, seed=0, n=9, scale=0.5):
    """An admissible θ with larger entries than the default init (stronger nonlinearity)."""
    rng = np.random.default_rng(seed)
    architecture = ICNNArchitecture(dim, hidden)
    theta = architecture.project(rng.normal(0.0, scale, architecture.num_params))
    x = rng.standard_normal((n, dim))
    u = rng.standard_normal((n, dim))
    return architecture, theta, x, u


def _relative_error(actual, expected):
    return np.max(np.abs(actual - expected)) / np.max(np.abs(expected))


def test_packed_layout_holds_every_parameter_once():
    # the kernels' zero-padded matrices M_l = [Wz_l | Wx_l | b_l], then w and c
    architecture = ICNNArchitecture(3, (5, 2, 6))
    table, index = architecture.kernel_tables
    assert np.array_equal(np.sort(index[index >= 0]), np.arange(architecture.num_params))
    theta = np.arange(1.0, architecture.num_params + 1.0)
    packed = pack(theta, index)
    named = architecture.views(theta)
    rows, inputs, prev, offset = table[1, :4]  # layer 1: Wz1 (2, 5), Wx1 (2, 3), b1 (2,)
    assert (rows, inputs, prev) == (4, 8 + 4, 8)
    block = packed[offset : offset + rows * inputs].reshape(rows, inputs)
    np.testing.assert_array_equal(block[:2, :5], named["Wz1"])
    np.testing.assert_array_equal(block[:2, prev : prev + 3], named["Wx1"])
    np.testing.assert_array_equal(block[:2, prev + 3], named["b1"])
    assert np.count_nonzero(block) == named["Wz1"].size + named["Wx1"].size + 2
    np.testing.assert_array_equal(packed[-9:-3], named["w"])  # w padded to 8 rows, then c
    assert packed[-1] == named["c"][0]


def test_softplus_terms_are_accurate_for_all_pre_activations():
    pre = np.concatenate([np.linspace(-40.0, 40.0, 396), [0.0, -750.0, 750.0, 1e-20]])
    points = pre.size
    a = np.stack([np.concatenate([pre, np.ones(points)])])  # primal | tangent (ȧ = 1)
    out = np.empty((1, 2 * points))
    slope = np.empty((1, points))
    curvature = np.empty((1, points))
    activate(a, out, slope, curvature, np.empty(points), points, True, 1)
    e = np.exp(-np.abs(pre))
    value = np.maximum(pre, 0.0) + np.log1p(e)
    sigmoid = np.where(pre >= 0.0, 1.0 / (1.0 + e), e / (1.0 + e))
    np.testing.assert_allclose(out[0, :points], value, rtol=4e-16, atol=0.0)
    np.testing.assert_allclose(slope[0], sigmoid, rtol=4e-16, atol=0.0)
    np.testing.assert_allclose(curvature[0], e / (1.0 + e) ** 2, rtol=1e-15, atol=0.0)
    np.testing.assert_array_equal(out[0, points:], slope[0])  # ż = s'(a) ȧ
    assert out[0, points - 2] == 750.0 and slope[0, points - 3] == 0.0  # no overflow


def test_paper_network_has_541_parameters():
    net = ICNN(dim=2, hidden=(20, 20), rng=np.random.default_rng(0))
    assert net.num_params == 541
    assert net.params.shape == (541,) and net.params.dtype == np.float64
    names = list(net.views())
    assert names == ["W0", "b0", "Wz1", "b1", "Wx1", "w", "c"]
    assert [v.size for v in net.views().values()] == [40, 20, 400, 20, 40, 20, 1]


def test_views_and_layers_share_memory_with_params():
    net = ICNN(dim=3, hidden=(4, 5, 6), rng=np.random.default_rng(1))
    views = net.views()
    assert views["Wz2"].shape == (6, 5) and views["Wx2"].shape == (6, 3)
    assert np.shares_memory(views["Wz1"], net.params)
    layers = net.layers
    assert len(layers) == 3 and layers[0].weight_z is None
    assert layers[1].weight_z.shape == (5, 4) and layers[2].bias.shape == (6,)
    with pytest.raises(ValueError):
        views["W0"][0, 0] = 1.0  # read-only


@pytest.mark.parametrize("n", [1, 70, 203])  # one padded point; 2 blocks; 4 blocks, last padded
@pytest.mark.parametrize(("dim", "hidden"), ARCHITECTURES)
def test_kernels_match_numpy_reference(dim, hidden, n):
    architecture, theta, x, u = _setup(dim, hidden, n=n)
    np.testing.assert_allclose(
        potential(architecture, theta, x),
        reference.icnn_potential(architecture, theta, x),
        rtol=1e-12,
        atol=1e-12,
    )
    np.testing.assert_allclose(
        transport_map(architecture, theta, x),
        reference.icnn_map(architecture, theta, x),
        rtol=1e-12,
        atol=1e-12,
    )
    expected = reference.icnn_map_vjp(architecture, theta, x, u)
    assert _relative_error(map_vjp(architecture, theta, x, u), expected) < 1e-12


@pytest.mark.parametrize(("dim", "hidden"), ARCHITECTURES)
def test_map_is_gradient_of_potential(dim, hidden):
    architecture, theta, x, _ = _setup(dim, hidden)
    step = 1e-5
    finite_difference = np.empty_like(x)
    for k in range(dim):
        shift = np.zeros(dim)
        shift[k] = step
        finite_difference[:, k] = (
            potential(architecture, theta, x + shift) - potential(architecture, theta, x - shift)
        ) / (2 * step)
    assert _relative_error(transport_map(architecture, theta, x), finite_difference) < 1e-7


@pytest.mark.parametrize(("dim", "hidden"), ARCHITECTURES)
def test_map_vjp_matches_finite_differences(dim, hidden):
    architecture, theta, x, u = _setup(dim, hidden)

    def objective(parameters):
        # the unchecked map: θ ± step may leave the constraint set at clipped entries
        return np.sum(u * transport_map_unchecked(architecture, parameters, x))

    step = 1e-6
    finite_difference = np.empty(architecture.num_params)
    for k in range(architecture.num_params):
        shift = np.zeros(architecture.num_params)
        shift[k] = step
        finite_difference[k] = (objective(theta + shift) - objective(theta - shift)) / (2 * step)
    gradient = map_vjp(architecture, theta, x, u)
    assert _relative_error(gradient, finite_difference) < 1e-6
    assert gradient[-1] == 0.0  # the output bias c does not enter the map


@pytest.mark.parametrize(("dim", "hidden"), ARCHITECTURES)
def test_hessian_matches_finite_differences_of_map(dim, hidden):
    architecture, theta, x, _ = _setup(dim, hidden)
    step = 1e-5
    expected = np.empty((x.shape[0], dim, dim))
    for k in range(dim):
        shift = np.zeros(dim)
        shift[k] = step
        expected[:, :, k] = (
            transport_map(architecture, theta, x + shift)
            - transport_map(architecture, theta, x - shift)
        ) / (2 * step)
    actual = hessian(architecture, theta, x)
    assert _relative_error(actual, expected) < 1e-7
    np.testing.assert_allclose(actual, np.swapaxes(actual, 1, 2), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize(("dim", "hidden"), [(2, (20, 20)), (3, (6, 5, 4)), (5, (8, 3))])
def test_hessian_is_positive_semidefinite_for_admissible_parameters(dim, hidden, seed):
    architecture, theta, _, _ = _setup(dim, hidden, seed=seed, scale=1.0)
    x = np.random.default_rng(100 + seed).normal(0.0, 3.0, (50, dim))
    eigenvalues = np.linalg.eigvalsh(hessian(architecture, theta, x))
    scale = np.max(np.abs(eigenvalues))
    assert eigenvalues.min() >= -1e-12 * scale


def test_unconstrained_parameters_can_make_the_potential_nonconvex():
    # sanity check of the convexity test: negative output weights give negative curvature
    architecture, theta, x, _ = _setup(2, (20, 20), scale=1.0, n=50)
    named = architecture.views(theta.copy())
    flipped = theta.copy()
    flipped[architecture.slices()["w"][0]] = -np.abs(named["w"]) - 0.5
    assert not architecture.is_admissible(flipped)
    h = reference.icnn_map(architecture, flipped, x)  # unchecked path still evaluates
    assert np.isfinite(h).all()
    with pytest.raises(ValueError, match="project"):
        hessian(architecture, flipped, x)


def test_parallel_and_serial_kernels_agree_bit_for_bit():
    architecture, theta, x, u = _setup(2, (20, 20), n=300)
    serial = evaluate(architecture, theta, x, u, MAP_VJP, parallel=False)
    parallel = evaluate(architecture, theta, x, u, MAP_VJP, parallel=True)
    assert np.array_equal(serial, parallel)
    assert np.array_equal(parallel, evaluate(architecture, theta, x, u, MAP_VJP, parallel=True))


def test_same_seed_gives_bit_identical_parameters():
    a = ICNN(2, (20, 20), np.random.default_rng(123))
    b = ICNN(2, (20, 20), np.random.default_rng(123))
    c = ICNN(2, (20, 20), np.random.default_rng(124))
    assert np.array_equal(a.params, b.params)
    assert not np.array_equal(a.params, c.params)
    assert a.is_admissible()


def test_initialization_is_projected_normal():
    net = ICNN(2, (20, 20), np.random.default_rng(5))
    raw = np.random.default_rng(5).normal(0.0, 0.1, 541)
    mask = net.architecture.constrained_mask
    np.testing.assert_array_equal(net.params[~mask], raw[~mask])
    np.testing.assert_array_equal(net.params[mask], np.maximum(raw[mask], 0.0))


def test_project_and_is_admissible():
    architecture = ICNNArchitecture(2, (20, 20))
    theta = np.random.default_rng(0).standard_normal(architecture.num_params)
    assert not architecture.is_admissible(theta)
    projected = architecture.project(theta)
    assert architecture.is_admissible(projected)
    assert np.all(projected[architecture.constrained_mask] >= 0.0)
    mask = architecture.constrained_mask
    np.testing.assert_array_equal(projected[~mask], theta[~mask])
    assert not np.shares_memory(projected, theta)
    np.testing.assert_array_equal(architecture.project(projected), projected)  # idempotent


def test_with_params_returns_new_network():
    net = ICNN(2, (5, 5), np.random.default_rng(0))
    theta = net.params * 2.0
    other = net.with_params(theta)
    np.testing.assert_array_equal(other.params, theta)
    assert not np.shares_memory(other.params, theta)
    x = np.random.default_rng(1).standard_normal((4, 2))
    np.testing.assert_allclose(other.potential(x), potential(net.architecture, theta, x))
    with pytest.raises(AttributeError):
        net.params = theta


def test_public_methods_shapes():
    net = ICNN(dim=2, hidden=(20, 20), rng=np.random.default_rng(0))
    x = np.random.default_rng(1).standard_normal((100, 2))
    assert net.potential(x).shape == (100,)
    assert net.map(x).shape == (100, 2)
    assert net.map_vjp(x, x).shape == (541,)
    assert net.hessian(x).shape == (100, 2, 2)


class TestBadInput:
    net = ICNN(2, (4, 4), np.random.default_rng(0))

    def test_points_must_be_two_dimensional(self):
        with pytest.raises(ValueError, match=r"x must be a 2-D array.*\(1, d\)"):
            self.net.map(np.zeros(2))

    def test_wrong_dimension(self):
        with pytest.raises(ValueError, match="x must have 2 columns"):
            self.net.potential(np.zeros((3, 3)))

    def test_nan_and_inf_samples(self):
        x = np.zeros((3, 2))
        x[1, 0] = np.nan
        with pytest.raises(ValueError, match="x contains 1 NaN or infinite"):
            self.net.map(x)
        u = np.zeros((3, 2))
        u[0, 1] = np.inf
        with pytest.raises(ValueError, match="u contains"):
            self.net.map_vjp(np.zeros((3, 2)), u)

    def test_cotangent_shape(self):
        with pytest.raises(ValueError, match="u must have the shape of x"):
            self.net.map_vjp(np.zeros((3, 2)), np.zeros((4, 2)))

    def test_non_numeric(self):
        with pytest.raises(TypeError, match="x must be an array of real numbers"):
            self.net.map(np.array([["a", "b"]]))

    def test_parameters_violating_constraints(self):
        theta = self.net.params.copy()
        theta[self.net.architecture.slices()["w"][0]] = -1.0
        with pytest.raises(ValueError, match=r"violates the ICNN constraints.*project"):
            self.net.with_params(theta)
        with pytest.raises(ValueError, match="violates"):
            map_vjp(self.net.architecture, theta, np.zeros((2, 2)), np.zeros((2, 2)))

    def test_parameter_length_and_nan(self):
        with pytest.raises(ValueError, match="flat vector of"):
            self.net.with_params(np.zeros(7))
        theta = self.net.params.copy()
        theta[0] = np.nan
        with pytest.raises(ValueError, match="NaN"):
            self.net.with_params(theta)

    def test_architecture_arguments(self):
        with pytest.raises(ValueError, match="dim"):
            ICNN(0, (3,), np.random.default_rng(0))
        with pytest.raises(ValueError, match="hidden"):
            ICNN(2, (), np.random.default_rng(0))
        with pytest.raises(TypeError, match="hidden"):
            ICNN(2, 20, np.random.default_rng(0))
        with pytest.raises(ValueError, match="hidden widths"):
            ICNN(2, (3, 0), np.random.default_rng(0))

    def test_generator_required(self):
        with pytest.raises(TypeError, match=r"numpy\.random\.Generator"):
            ICNN(2, (3,), rng=0)
        with pytest.raises(TypeError, match="exactly one of rng"):
            ICNN(2, (3,))


def test_a_network_is_a_map_of_the_family():
    """net(x) is T_θ(x), so an ICNN goes wherever a map does (gridflow.map_distance)."""
    from gridflow import AffineMap, map_distance

    net = ICNN(2, (5, 4), np.random.default_rng(3), quadratic=True)
    x = np.random.default_rng(4).normal(size=(50, 2))
    np.testing.assert_array_equal(net(x), net.map(x))
    distance = map_distance(net, AffineMap.identity(2), x, np.eye(2))
    assert distance.l2_squared == np.mean(np.sum((net.map(x) - x) ** 2, axis=1))


@pytest.mark.parametrize("options", [{}, {"quadratic": True, "strong_convexity": 0.5}])
def test_icnn_pickles_and_deep_copies_to_bit_identical_maps(options):
    import copy
    import pickle

    net = ICNN(2, (6, 5), np.random.default_rng(3), **options)
    x = np.random.default_rng(4).standard_normal((30, 2))
    for clone in (pickle.loads(pickle.dumps(net)), copy.deepcopy(net), copy.copy(net)):
        assert isinstance(clone, ICNN) and clone.architecture == net.architecture
        np.testing.assert_array_equal(clone.params, net.params)
        assert not clone.params.flags.writeable
        np.testing.assert_array_equal(clone.map(x), net.map(x))
        np.testing.assert_array_equal(clone.potential(x), net.potential(x))
