"""Source densities ϱ0 and log-concave targets γ ∝ exp(-V) (DESIGN §3, paper §1.3).

A source is anything with `density(points) -> (n,)` (unnormalized is fine) and
`mass_outside(lower, upper) -> float`; `GaussianMixture` computes that mass exactly,
`CallableSource` wraps a user function and estimates it by quadrature on a larger box.
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from scipy import integrate, special, stats

from gridflow._checks import as_finite_array, as_points, summable, symmetric_positive_definite


@dataclass(frozen=True)
class GaussianMixture:
    """Σ_k weights[k] N(means[k], covs[k]) in R^d."""

    weights: np.ndarray
    means: np.ndarray
    covs: np.ndarray

    def __post_init__(self):
        weights = as_finite_array(self.weights, "weights", ndim=1)
        means = as_finite_array(self.means, "means")
        if means.ndim == 1:
            means = means[:, None]
        if means.ndim != 2 or means.shape[0] != weights.size:
            raise ValueError(f"means must be (components, d), got {means.shape}")
        dim = means.shape[1]
        covs = as_finite_array(self.covs, "covs").reshape(weights.size, dim, dim)
        covs = np.stack(
            [symmetric_positive_definite(c, f"covs[{k}]", dim) for k, c in enumerate(covs)]
        )
        if np.any(weights <= 0):
            raise ValueError("weights must be > 0")
        (weights,) = summable(weights)
        object.__setattr__(self, "weights", weights / weights.sum())
        object.__setattr__(self, "means", means)
        object.__setattr__(self, "covs", covs)

    @classmethod
    def gaussian(cls, mean, cov) -> GaussianMixture:
        mean = np.atleast_1d(as_finite_array(mean, "mean"))
        return cls(np.ones(1), mean[None, :], np.atleast_2d(cov)[None])

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    def _components(self):
        for weight, mean, cov in zip(self.weights, self.means, self.covs, strict=True):
            yield weight, stats.multivariate_normal(mean, cov)

    def density(self, points) -> np.ndarray:
        points = as_points(points, "points", self.dim)
        return sum(w * c.pdf(points).reshape(-1) for w, c in self._components())

    def log_density(self, points) -> np.ndarray:
        points = as_points(points, "points", self.dim)
        logs = np.stack([np.log(w) + c.logpdf(points).reshape(-1) for w, c in self._components()])
        return special.logsumexp(logs, axis=0)

    def cdf(self, x) -> np.ndarray:
        """Cumulative distribution function (d = 1)."""
        self._require_1d("cdf")
        sigmas = np.sqrt(self.covs[:, 0, 0])
        z = (np.asarray(x, dtype=float)[..., None] - self.means[:, 0]) / sigmas
        return special.ndtr(z) @ self.weights

    def sf(self, x) -> np.ndarray:
        """Survival function 1 - cdf, accurate in the right tail (d = 1)."""
        self._require_1d("sf")
        sigmas = np.sqrt(self.covs[:, 0, 0])
        z = (np.asarray(x, dtype=float)[..., None] - self.means[:, 0]) / sigmas
        return special.ndtr(-z) @ self.weights

    def mass_outside(self, lower, upper) -> float:
        """ϱ0 mass outside the box: exact in d = 1, a union bound over the axes in d ≥ 2.

        z-scores that overflow to ±inf (tiny variances) give the exact limits 0 and 1."""
        total = 0.0
        for k in range(self.dim):
            sigmas = np.sqrt(self.covs[:, k, k])
            with np.errstate(over="ignore"):
                below = special.ndtr((lower[k] - self.means[:, k]) / sigmas)
                above = special.ndtr((self.means[:, k] - upper[k]) / sigmas)
            total += float(self.weights @ (below + above))
        return total

    def mass_check_description(self, lower, upper) -> str:
        """What `mass_outside` checks, for error messages."""
        return "exact" if self.dim == 1 else "a union bound over the axes (exact per axis)"

    def _require_1d(self, what: str):
        if self.dim != 1:
            raise ValueError(f"{what} is defined for d = 1 only, this mixture has d = {self.dim}")


@dataclass(frozen=True)
class CallableSource:
    """A user density `function(points (n, d)) -> (n,)`, unnormalized, nonnegative.

    What the cut-mass check (`mass_outside`) sees: the density is integrated by the
    midpoint rule on a larger box, `nodes_per_axis` cells per axis on the grid's box and as
    many on each margin (150 in d = 2). The larger box is `support` when it is given (a box
    (lower, upper) that holds all of ϱ0's mass; the margins then reach it), else the box
    three times as wide per axis as the grid's. Mass beyond that larger box is not seen:
    a source with mass far from the grid passes the check unless `support` declares it.
    """

    function: Callable[[np.ndarray], np.ndarray]
    dim: int
    nodes_per_axis: int = 400
    support: tuple | None = None

    def __post_init__(self):
        if self.support is not None:
            lower, upper = (np.atleast_1d(as_finite_array(v, "support")) for v in self.support)
            if lower.shape != (self.dim,) or upper.shape != (self.dim,):
                raise ValueError(
                    f"support must be a box (lower, upper) of two length-{self.dim} sequences, "
                    f"got shapes {lower.shape} and {upper.shape}"
                )
            if np.any(lower >= upper):
                raise ValueError(f"support needs lower < upper, got {lower} and {upper}")
            object.__setattr__(self, "support", (tuple(lower), tuple(upper)))

    def density(self, points) -> np.ndarray:
        points = as_points(points, "points", self.dim)
        values = np.asarray(self.function(points), dtype=np.float64).reshape(-1)
        if values.shape != (points.shape[0],):
            raise ValueError(
                f"the source density must return one value per point, got shape {values.shape}"
            )
        if not np.all(np.isfinite(values)) or np.any(values < 0):
            raise ValueError("the source density returned negative, NaN or infinite values")
        return values

    def checked_box(self, lower, upper) -> tuple[np.ndarray, np.ndarray]:
        """The box on which `mass_outside(lower, upper)` integrates the density."""
        lower, upper = np.asarray(lower, float), np.asarray(upper, float)
        if self.support is None:
            return lower - (upper - lower), upper + (upper - lower)
        return np.minimum(self.support[0], lower), np.maximum(self.support[1], upper)

    def mass_check_description(self, lower, upper) -> str:
        """What `mass_outside` checks, for error messages."""
        outer_lower, outer_upper = self.checked_box(lower, upper)
        declared = "the declared support" if self.support is not None else "3× the grid box"
        return (
            f"midpoint rule on {np.round(outer_lower, 3).tolist()}..."
            f"{np.round(outer_upper, 3).tolist()} ({declared}); mass beyond it is not seen, "
            f"declare it with CallableSource(..., support=(lower, upper))"
        )

    def mass_outside(self, lower, upper) -> float:
        """ϱ0 mass outside the box [lower, upper] relative to its mass on `checked_box`."""
        lower, upper = np.asarray(lower, float), np.asarray(upper, float)
        outer_lower, outer_upper = self.checked_box(lower, upper)
        per_axis = self.nodes_per_axis if self.dim == 1 else min(self.nodes_per_axis, 150)
        axes, widths, inside = [], [], []
        for k in range(self.dim):
            breaks = [outer_lower[k], lower[k], upper[k], outer_upper[k]]
            pieces = [
                np.linspace(a, b, per_axis + 1) for a, b in itertools.pairwise(breaks) if b > a
            ]
            edges = np.unique(np.concatenate(pieces))
            centers = 0.5 * (edges[1:] + edges[:-1])
            axes.append(centers)
            widths.append(np.diff(edges))
            inside.append((centers > lower[k]) & (centers < upper[k]))
        mesh = np.meshgrid(*axes, indexing="ij")
        cell_volume = np.prod(np.meshgrid(*widths, indexing="ij"), axis=0)
        values = self.density(np.stack([m.ravel() for m in mesh], axis=1)).reshape(mesh[0].shape)
        (masses,) = summable(values * cell_volume)
        total = masses.sum()
        if total <= 0:
            raise ValueError("the source density vanishes on and around the grid box")
        return float(max(total - masses[np.ix_(*inside)].sum(), 0.0) / total)


GROWTH_RADIUS = 1e3
GROWTH_DIRECTIONS = 64


def check_growth(V, dim: int) -> None:
    """Refuse a V under which exp(-V) is not integrable, as far as a cheap probe can tell.

    For convex V, exp(-V) is integrable iff V(r u) → ∞ as r → ∞ in every direction u, and
    by convexity V(r u) ≥ V(0) + (r / R)(V(R u) - V(0)) for r ≥ R. Checked: V(0) is finite
    and V(R u) > V(0) at R = GROWTH_RADIUS for the 2 axis directions (d = 1) or
    GROWTH_DIRECTIONS unit vectors (d = 2). That refuses V constant or linear, or constant
    along a line; a V growing only between the probed directions is not seen here.
    """
    if dim == 1:
        directions = np.array([[1.0], [-1.0]])
    elif dim == 2:
        angles = 2 * np.pi * np.arange(GROWTH_DIRECTIONS) / GROWTH_DIRECTIONS
        directions = np.stack([np.cos(angles), np.sin(angles)], axis=1)
        directions[np.abs(directions) < 1e-12] = 0.0  # the axes exactly
    else:
        return  # no probe in d > 2: the caller gives log_normalizer and vouches for V
    probe = np.vstack([np.zeros((1, dim)), GROWTH_RADIUS * directions])
    with np.errstate(over="ignore"):
        values = np.asarray(V(probe), dtype=np.float64).reshape(-1)
    if values.shape != (probe.shape[0],):
        raise ValueError(f"V must return one value per point (n,), got shape {values.shape}")
    if not np.isfinite(values[0]):
        raise ValueError(f"V(0) must be finite, got {values[0]}")
    rise = values[1:] - values[0]
    flat = ~(rise > 1e-9 * (1.0 + abs(values[0])))  # NaN counts as flat
    if flat.any():
        u = directions[np.argmax(flat)]
        raise ValueError(
            f"exp(-V) is not integrable (or numerically flat): V does not grow along the direction "
            f"u = {np.round(u, 3).tolist()} (V({GROWTH_RADIUS:g} u) - V(0) = "
            f"{rise[np.argmax(flat)]:.3g}); γ ∝ exp(-V) needs V → ∞ in every direction "
            f"(e.g. V(y) = |y|²/2 for N(0, I))"
        )


def as_source(source, dim: int):
    """Accept a source object or a plain density callable."""
    if hasattr(source, "density") and hasattr(source, "mass_outside"):
        if source.dim != dim:
            raise ValueError(f"source has dimension {source.dim}, the grid has {dim}")
        return source
    if callable(source):
        return CallableSource(source, dim)
    raise TypeError("source must be a density callable points (n, d) -> (n,) or a source object")


def _rounded(array: np.ndarray) -> list:
    """`array` rounded to 3 decimals as nested lists, for names (no overflow near 1e308)."""
    small = np.abs(array) < 1e300
    with np.errstate(over="ignore"):
        return np.where(small, np.round(np.where(small, array, 0.0), 3), array).tolist()


@dataclass(frozen=True)
class LogConcaveTarget:
    """γ ∝ exp(-V) with V convex and λ-convex (λ ≥ 0): the target of KL(·|γ).

    V(points (n, d)) -> (n,), grad_V(points) -> (n, d), lam the convexity modulus of V.
    Optional: hess_V(points) -> (n, d, d) (else central differences of grad_V);
    expected_V_cvxpy(T, weights) -> a convex cvxpy expression of Σ_i w_i V(T_i) for a
    cvxpy expression T of shape (n, d), needed by the implicit scheme and `minimize`;
    log_normalizer = log ∫ exp(-V) (else computed by quadrature in d ≤ 2).
    """

    V: Callable[[np.ndarray], np.ndarray]
    grad_V: Callable[[np.ndarray], np.ndarray]
    lam: float
    dim: int = 1
    hess_V: Callable[[np.ndarray], np.ndarray] | None = None
    expected_V_cvxpy: Callable | None = None
    log_normalizer: float | None = None
    name: str = "log-concave target"
    mean: np.ndarray | None = field(default=None, repr=False)
    cov: np.ndarray | None = field(default=None, repr=False)

    def __post_init__(self):
        lam = float(self.lam)
        if not np.isfinite(lam) or lam < 0:
            raise ValueError(f"lam (the convexity modulus of V) must be finite and >= 0, got {lam}")
        object.__setattr__(self, "lam", lam)
        if int(self.dim) != self.dim or self.dim < 1:
            raise ValueError(f"dim must be an integer >= 1, got {self.dim!r}")
        check_growth(self.V, self.dim)
        if self.log_normalizer is None:
            object.__setattr__(self, "log_normalizer", self._log_normalizer_by_quadrature())
        elif not np.isfinite(float(self.log_normalizer)):
            raise ValueError(f"log_normalizer must be finite, got {self.log_normalizer!r}")

    @classmethod
    def gaussian(cls, mean, cov) -> LogConcaveTarget:
        """γ = N(mean, cov): V(y) = ½ (y - m)ᵀ cov⁻¹ (y - m), λ = 1 / λmax(cov)."""
        mean = np.atleast_1d(as_finite_array(mean, "mean"))
        dim = mean.size
        cov = symmetric_positive_definite(np.atleast_2d(cov), "cov", dim)
        eigenvalues = np.linalg.eigvalsh(cov)
        if not eigenvalues.min() > 1.0 / np.finfo(np.float64).max:
            raise ValueError(
                f"cov's smallest eigenvalue {eigenvalues.min():.3g} is too small: its inverse "
                f"(the precision) overflows float64"
            )
        precision = np.linalg.inv(cov)
        precision_root = np.linalg.cholesky(precision)

        def V(points):
            centered = as_points(points, "points", dim) - mean
            return 0.5 * np.einsum("ni,ij,nj->n", centered, precision, centered)

        def grad_V(points):
            return (as_points(points, "points", dim) - mean) @ precision

        def hess_V(points):
            return np.broadcast_to(precision, (len(points), dim, dim)).copy()

        def expected_V_cvxpy(T, weights):
            import cvxpy as cp

            scaled = cp.multiply(np.sqrt(weights)[:, None], T - mean[None, :]) @ precision_root
            return 0.5 * cp.sum_squares(scaled)

        _, logdet = np.linalg.slogdet(cov)
        return cls(
            V=V,
            grad_V=grad_V,
            lam=1.0 / eigenvalues.max(),
            dim=dim,
            hess_V=hess_V,
            expected_V_cvxpy=expected_V_cvxpy,
            log_normalizer=0.5 * (dim * np.log(2 * np.pi) + logdet),
            name=f"N({_rounded(mean)}, {_rounded(cov)})",
            mean=mean,
            cov=cov,
        )

    @classmethod
    def quartic(cls) -> LogConcaveTarget:
        """γ ∝ exp(-y⁴/4) on R: log-concave but not strongly (λ = 0)."""

        def expected_V_cvxpy(T, weights):
            import cvxpy as cp

            return cp.sum(cp.multiply(weights[:, None], cp.power(T, 4))) / 4

        return cls(
            V=lambda y: as_points(y, "points", 1)[:, 0] ** 4 / 4,
            grad_V=lambda y: as_points(y, "points", 1) ** 3,
            lam=0.0,
            hess_V=lambda y: 3 * as_points(y, "points", 1)[:, :, None] ** 2,
            expected_V_cvxpy=expected_V_cvxpy,
            log_normalizer=float(np.log(2 * special.gamma(0.25) * 4 ** (0.25) / 4)),
            name="exp(-y^4/4)",
        )

    @property
    def is_gaussian(self) -> bool:
        return self.mean is not None

    def hessian(self, points) -> np.ndarray:
        """∇²V at points (n, d, d): `hess_V`, or central differences of `grad_V`."""
        points = as_points(points, "points", self.dim)
        if self.hess_V is not None:
            return np.asarray(self.hess_V(points), dtype=np.float64)
        step = 1e-5 * (1 + np.abs(points).max())
        columns = []
        for k in range(self.dim):
            shift = np.zeros(self.dim)
            shift[k] = step
            columns.append((self.grad_V(points + shift) - self.grad_V(points - shift)) / (2 * step))
        return np.stack(columns, axis=2)

    def _log_normalizer_by_quadrature(self) -> float:
        """log ∫ exp(-V) by scipy's quad/dblquad; a quadrature warning or a non-finite result
        (exp(-V) not integrable, or too slowly decaying for the quadrature) raises."""

        def integrand(*y):
            return float(np.exp(-self.V(np.array([y[::-1]]))[0]))

        if self.dim > 2:
            raise ValueError("give log_normalizer explicitly for targets of dimension > 2")
        with warnings.catch_warnings():
            warnings.simplefilter("error", integrate.IntegrationWarning)
            warnings.filterwarnings("ignore", "overflow encountered in exp", RuntimeWarning)
            try:
                if self.dim == 1:
                    value, _ = integrate.quad(integrand, -np.inf, np.inf, epsabs=0, epsrel=1e-12)
                else:
                    value, _ = integrate.dblquad(integrand, -np.inf, np.inf, -np.inf, np.inf)
            except integrate.IntegrationWarning as warning:
                raise ValueError(
                    f"the log-normalizer log ∫ exp(-V) could not be computed ({warning}): "
                    f"exp(-V) must be integrable (V must grow at least linearly in every "
                    f"direction); if it is, pass log_normalizer explicitly"
                ) from None
        if not (np.isfinite(value) and value > 0):
            raise ValueError(
                f"∫ exp(-V) = {value!r} is not a finite positive number: exp(-V) must be "
                f"integrable (V must grow at least linearly in every direction)"
            )
        return float(np.log(value))
