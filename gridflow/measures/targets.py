"""Log-concave targets γ ∝ exp(−V): the one target type of both solvers (paper §1.3).

``LogConcaveTarget`` holds V, ∇V and what is known about them: the Hessian ∇²V, the
convexity modulus λ of V (Theorem 2.13's rate 2λ; known for Gaussians, given by the user
otherwise, and required only where a statement needs it), log Z = log ∫ exp(−V) (the
exact KL), and for Gaussian targets the mean and covariance (the L²-UVP, samples of γ).

Built-in targets (each with its exact λ, and a JSON-able ``spec`` from which
``LogConcaveTarget.from_spec`` rebuilds it): ``gaussian``, ``standard_gaussian``, ``quartic``
(λ = 0), and the non-Gaussian λ-convex ``logcosh`` (λ = 1) and ``gaussian_logcosh``.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np
from scipy import integrate, special

from gridflow.checks import (
    as_float,
    as_points,
    as_shaped_array,
    positive_float,
    positive_int,
)
from gridflow.measures.gaussians import Gaussian
from gridflow.measures.target_checks import (
    check_gradient_of_V,
    check_growth,
    check_monotone_gradient,
    values_of_V,
)

__all__ = [
    "LogConcaveTarget",
    "as_target",
    "check_growth",
    "check_monotone_gradient",
    "log_cosh",
    "sech_squared",
]

SPEC_KINDS = ("gaussian", "quartic", "logcosh", "gaussian_logcosh")
"""The ``kind`` of a target's ``spec``; each names the classmethod that rebuilds it."""
TRAPEZOID_STEPS_PER_STRIP = 8
"""Trapezoid nodes per half-width of the strip of analyticity (``log_normalizer_logcosh``)."""
TRAPEZOID_TAIL_SIGMAS = 10.0
"""The trapezoid rule's range: ± this many marginal standard deviations of N(0, Σ)."""


def log_cosh(t) -> np.ndarray:
    """log cosh t = |t| + log(1 + e^{−2|t|}) − log 2, without overflow for large |t|."""
    a = np.abs(t)
    return a + np.log1p(np.exp(-2.0 * a)) - np.log(2.0)


def sech_squared(t) -> np.ndarray:
    """sech² t = 1 − tanh² t = 4 e^{−2|t|} / (1 + e^{−2|t|})², without overflow."""
    e = np.exp(-2.0 * np.abs(t))
    return 4.0 * e / (1.0 + e) ** 2


def log_normalizer_logcosh(cov: np.ndarray, precision: np.ndarray, weight: float) -> float | None:
    """log ∫ exp(−½ xᵀPx − w Σ_k log cosh x_k) dx (P = Σ⁻¹), to about 1e-15 relative.

    A product of 1D integrals when Σ is diagonal (any d), else a 2D integral (d = 2; None in
    d > 2). Each is the trapezoid rule on |x_k| ≤ 10 √Σ_kk (the Gaussian's tail beyond is
    below e^{−50}) with step h_k = a_k / 8: the integrand is analytic in the strip
    |Im x_k| < a_k = min(π/4, 1/√P_kk), where |sech|^w ≤ 2^{w/2} and the Gaussian factor grows
    by at most e^{1/2}, so the rule's error is O(e^{−2π a_k / h_k}) = O(e^{−16π}) (Trefethen and
    Weideman, SIAM Review 56 (2014), Thm 5.1).
    """
    dim = cov.shape[0]
    diagonal = bool(np.all(cov == np.diag(np.diag(cov))))
    if not diagonal and dim > 2:
        return None

    def axis(k):
        strip = min(np.pi / 4, 1.0 / np.sqrt(precision[k, k]))
        step = strip / TRAPEZOID_STEPS_PER_STRIP
        half = int(np.ceil(TRAPEZOID_TAIL_SIGMAS * np.sqrt(cov[k, k]) / step))
        return step, step * np.arange(-half, half + 1)

    def log_sum(points, volume, quadratic):
        exponent = -0.5 * quadratic - weight * np.sum(log_cosh(points), axis=-1)
        return float(np.log(volume * np.sum(np.exp(exponent))))

    if diagonal:
        total = 0.0
        for k in range(dim):
            step, x = axis(k)
            total += log_sum(x[:, None], step, precision[k, k] * x**2)
        return total
    (h0, x0), (h1, x1) = axis(0), axis(1)
    points = np.stack(np.meshgrid(x0, x1, indexing="ij"), axis=-1)
    quadratic = np.einsum("...i,ij,...j->...", points, precision, points)
    return log_sum(points, h0 * h1, quadratic)


def _rounded(array: np.ndarray) -> list:
    """``array`` rounded to 3 decimals as nested lists, for names (no overflow near 1e308)."""
    small = np.abs(array) < 1e300
    with np.errstate(over="ignore"):
        return np.where(small, np.round(np.where(small, array, 0.0), 3), array).tolist()


def _built(target):
    """``target``, flagged as made by a built-in constructor (``LogConcaveTarget.built_in``)."""
    object.__setattr__(target, "built_in", True)
    return target


@dataclass(frozen=True, eq=False)
class LogConcaveTarget:
    """γ ∝ exp(−V) with V convex: the target of KL(· | γ) for both solvers.

    Parameters
    ----------
    V : callable
        Points (n, d) -> (n,).
    grad_V : callable, optional
        Points (n, d) -> (n, d); both solvers need it to run.
    lam : float, optional
        The convexity modulus λ ≥ 0 of V; None when unknown (the rate 2λ of Theorem 2.13
        is then not checked).
    dim : int
        The dimension d (default 1).
    hess_V : callable, optional
        Points -> (n, d, d); else central differences of ``grad_V``.
    expected_V_cvxpy : callable, optional
        (T, weights) -> a convex cvxpy expression of Σ_i w_i V(T_i) for a cvxpy expression
        T (n, d): the grid solver's cvxpy reference needs it.
    log_normalizer : float, optional
        log ∫ exp(−V); else computed by quadrature in d ≤ 2 (unknown in d > 2).
    name : str
        For tables and messages.
    mean, cov : ndarray, optional
        γ's moments, set by ``gaussian``.
    spec : dict, optional
        A JSON-able description of a built-in target (``{"kind": ..., ...}``, kinds
        ``SPEC_KINDS``) from which ``from_spec`` rebuilds it; None for a target given by
        Python functions.

    Raises
    ------
    ValueError
        When exp(−V) is not integrable: a V that does not grow in some direction
        (``check_growth``), or whose quadrature diverges (d ≤ 2).

    Examples
    --------
    >>> target = LogConcaveTarget.gaussian([0.0, 0.0], [[2.0, 0.0], [0.0, 1.0]])
    >>> target.lam
    0.5
    """

    V: Callable[[np.ndarray], np.ndarray]
    grad_V: Callable[[np.ndarray], np.ndarray] | None = None
    lam: float | None = None
    dim: int = 1
    hess_V: Callable[[np.ndarray], np.ndarray] | None = None
    expected_V_cvxpy: Callable | None = None
    log_normalizer: float | None = None
    name: str = "log-concave target"
    mean: np.ndarray | None = field(default=None, repr=False)
    cov: np.ndarray | None = field(default=None, repr=False)
    spec: dict | None = field(default=None, repr=False)
    built_in: bool = field(default=False, init=False, repr=False, compare=False)
    """Whether a built-in constructor made this target as it is (its ``spec`` then rebuilds
    it; `dataclasses.replace` resets the flag, so a changed copy is not pickled as its spec)."""

    def __post_init__(self):
        if not callable(self.V):
            raise TypeError(f"V must be a callable points (n, d) -> (n,), got {self.V!r}")
        for name in ("grad_V", "hess_V", "expected_V_cvxpy"):
            value = getattr(self, name)
            if value is not None and not callable(value):
                raise TypeError(f"{name} must be None or a callable, got {value!r}")
        if self.lam is not None:
            lam = positive_float(
                self.lam,
                "lam (the convexity modulus of V)",
                allow_zero=True,
                hint="; pass None when it is unknown",
            )
            object.__setattr__(self, "lam", lam)
        object.__setattr__(self, "dim", positive_int(self.dim, "dim"))
        if self.spec is not None and not (isinstance(self.spec, dict) and "kind" in self.spec):
            raise TypeError(f"spec must be None or a dict with a 'kind', got {self.spec!r}")
        check_growth(self.V, self.dim)
        if self.grad_V is not None:
            check_gradient_of_V(self.V, self.grad_V, self.dim, self.name)
        if self.log_normalizer is None:
            if self.dim <= 2:
                object.__setattr__(self, "log_normalizer", self._log_normalizer_by_quadrature())
        else:
            log_normalizer = as_float(self.log_normalizer, "log_normalizer")
            if not np.isfinite(log_normalizer):
                raise ValueError(
                    f"log_normalizer (log ∫ exp(-V)) must be finite, got {self.log_normalizer!r}; "
                    f"pass None to have it computed (d <= 2)"
                )
            object.__setattr__(self, "log_normalizer", log_normalizer)

    @classmethod
    def gaussian(cls, mean, cov) -> LogConcaveTarget:
        """γ = N(mean, cov): V(y) = ½ (y − m)ᵀ cov⁻¹ (y − m), λ = 1 / λmax(cov)."""
        law = Gaussian(np.atleast_1d(mean), np.atleast_2d(cov))
        mean, cov, precision, dim = law.mean, law.cov, law._precision, law.dim
        standard = bool(np.all(mean == 0.0) and np.all(cov == np.eye(dim)))
        eigenvalues = np.linalg.eigvalsh(cov)
        if not eigenvalues.min() > 1.0 / np.finfo(np.float64).max:
            raise ValueError(
                f"cov's smallest eigenvalue {eigenvalues.min():.3g} is too small: its inverse "
                f"(the precision) overflows float64"
            )

        def centered(y):
            y = as_points(y, "y", dim)
            return y if standard else y - mean

        def V(y):
            c = centered(y)
            return 0.5 * np.einsum("ni,ni->n", c @ precision, c)  # 4x faster than 3 operands

        def grad_V(y):
            return np.array(centered(y), copy=True) if standard else centered(y) @ precision

        def hess_V(y):
            return np.broadcast_to(precision, (len(y), dim, dim)).copy()

        precision_root = np.linalg.cholesky(precision)

        def expected_V_cvxpy(T, weights):
            import cvxpy as cp  # cvxpy loads in about a second: only where the reference runs

            scaled = cp.multiply(np.sqrt(weights)[:, None], T - mean[None, :]) @ precision_root
            return 0.5 * cp.sum_squares(scaled)

        return _built(
            cls(
                V=V,
                grad_V=grad_V,
                lam=1.0 / eigenvalues.max(),
                dim=dim,
                hess_V=hess_V,
                expected_V_cvxpy=expected_V_cvxpy,
                log_normalizer=0.5 * float(dim * np.log(2.0 * np.pi) + np.sum(np.log(eigenvalues))),
                name=f"N(0, I_{dim})" if standard else f"N({_rounded(mean)}, {_rounded(cov)})",
                mean=mean,
                cov=cov,
                spec={"kind": "gaussian", "mean": mean.tolist(), "cov": cov.tolist()},
            )
        )

    @classmethod
    def standard_gaussian(cls, dim: int) -> LogConcaveTarget:
        """γ = N(0, I_d), ∇V(y) = y (the paper's target with d = 2)."""
        dim = positive_int(dim, "dim")
        return cls.gaussian(np.zeros(dim), np.eye(dim))

    @classmethod
    def quartic(cls) -> LogConcaveTarget:
        """γ ∝ exp(−y⁴/4) on R: log-concave but not strongly (λ = 0)."""

        def expected_V_cvxpy(T, weights):
            import cvxpy as cp  # as in ``gaussian``

            return cp.sum(cp.multiply(weights[:, None], cp.power(T, 4))) / 4

        return _built(
            cls(
                V=lambda y: as_points(y, "points", 1)[:, 0] ** 4 / 4,
                grad_V=lambda y: as_points(y, "points", 1) ** 3,
                lam=0.0,
                hess_V=lambda y: 3 * as_points(y, "points", 1)[:, :, None] ** 2,
                expected_V_cvxpy=expected_V_cvxpy,
                log_normalizer=float(np.log(2 * special.gamma(0.25) * 4 ** (0.25) / 4)),
                name="exp(-y^4/4)",
                spec={"kind": "quartic"},
            )
        )

    @classmethod
    def logcosh(cls, dim: int) -> LogConcaveTarget:
        """γ ∝ exp(−V), V(y) = ½‖y‖² + Σ_i log cosh y_i: non-Gaussian, λ = 1.

        λ = 1: ∇²V(y) = I + diag(sech² y_i) ≥ I, and → I as every |y_i| → ∞. ∇V(y) = y +
        tanh y. Z = z^d with z = ∫ e^{−t²/2} sech t dt (``log_normalizer_logcosh``).
        """
        dim = positive_int(dim, "dim")
        target = cls.gaussian_logcosh(np.zeros(dim), np.eye(dim), 1.0)
        return _built(
            replace(
                target,
                name=f"exp(-‖y‖²/2 - Σ log cosh y_i), d = {dim}",
                spec={"kind": "logcosh", "dim": dim},
            )
        )

    @classmethod
    def gaussian_logcosh(cls, mean, cov, weight: float = 1.0) -> LogConcaveTarget:
        """γ ∝ N(m, Σ) × Π_i cosh(y_i − m_i)^{−w}: V(y) = ½ (y − m)ᵀ Σ⁻¹ (y − m) + w Σ_i
        log cosh(y_i − m_i), non-Gaussian for w > 0, λ = 1 / λmax(Σ).

        λ = 1/λmax(Σ): ∇²V = Σ⁻¹ + w diag(sech²(y_i − m_i)) ≥ Σ⁻¹, and → Σ⁻¹ as y → ∞ along a
        direction with no zero coordinate. log Z by quadrature (``log_normalizer_logcosh``):
        for any d when Σ is diagonal (V separates), in d ≤ 2 otherwise, else None.
        """
        weight = positive_float(weight, "weight", allow_zero=True)
        gaussian = cls.gaussian(mean, cov)
        mean, cov, dim = gaussian.mean, gaussian.cov, gaussian.dim
        precision = np.linalg.inv(cov)
        precision = 0.5 * (precision + precision.T)

        def V(y):
            c = as_points(y, "y", dim) - mean
            return gaussian.V(y) + weight * np.sum(log_cosh(c), axis=1)

        def grad_V(y):
            c = as_points(y, "y", dim) - mean
            return gaussian.grad_V(y) + weight * np.tanh(c)

        def hess_V(y):
            c = as_points(y, "y", dim) - mean
            hessian = gaussian.hess_V(c)
            hessian[:, np.arange(dim), np.arange(dim)] += weight * sech_squared(c)
            return hessian

        def expected_V_cvxpy(T, weights):
            import cvxpy as cp  # as in ``gaussian``

            # log cosh t = t + log(1 + e^{−2t}) − log 2, convex: cp.logistic(u) = log(1 + e^u)
            centered = T - mean[None, :]
            log_cosh_terms = centered + cp.logistic(-2 * centered) - np.log(2.0)
            factor = cp.sum(cp.multiply(weights[:, None], log_cosh_terms))
            return gaussian.expected_V_cvxpy(T, weights) + weight * factor

        log_normalizer = log_normalizer_logcosh(cov, precision, weight)
        return _built(
            cls(
                V=V,
                grad_V=grad_V,
                lam=gaussian.lam,
                dim=dim,
                hess_V=hess_V,
                expected_V_cvxpy=expected_V_cvxpy,
                log_normalizer=log_normalizer,
                name=f"{gaussian.name} × cosh^-{weight:g}",
                spec={
                    "kind": "gaussian_logcosh",
                    "mean": mean.tolist(),
                    "cov": cov.tolist(),
                    "weight": weight,
                },
            )
        )

    @classmethod
    def from_spec(cls, spec) -> LogConcaveTarget:
        """The built-in target described by ``spec`` (a target's ``spec``, e.g. read back
        from JSON): ``{"kind": "gaussian", "mean": [...], "cov": [[...]]}``, ``{"kind":
        "quartic"}``, ``{"kind": "logcosh", "dim": d}``, ``{"kind": "gaussian_logcosh",
        "mean": [...], "cov": [[...]], "weight": w}``.

        Raises
        ------
        ValueError
            For an unknown kind, missing or extra fields, or fields the constructor refuses.
        """
        fields = {
            "gaussian": ("mean", "cov"),
            "quartic": (),
            "logcosh": ("dim",),
            "gaussian_logcosh": ("mean", "cov", "weight"),
        }
        if not isinstance(spec, dict) or spec.get("kind") not in fields:
            kind = spec.get("kind") if isinstance(spec, dict) else None
            raise ValueError(
                f"a target spec must be a dict with 'kind' one of {', '.join(SPEC_KINDS)}, "
                f"got {'kind ' + repr(kind) if isinstance(spec, dict) else repr(spec)}"
            )
        kind = spec["kind"]
        given, expected = set(spec) - {"kind"}, set(fields[kind])
        if given != expected:
            raise ValueError(
                f"a {kind!r} target spec has the fields {sorted(expected)} besides 'kind', got "
                f"{sorted(given)}"
            )
        arguments = [spec[key] for key in fields[kind]]
        try:
            return getattr(cls, kind)(*arguments)
        except (TypeError, ValueError) as error:
            raise ValueError(f"bad {kind!r} target spec: {error}") from None

    def __reduce__(self):
        """A built-in target as it was made is pickled (and deep-copied) as its ``spec``: its V
        and ∇V are closures, which pickle cannot store. Any other target pickles field by
        field (and fails on closures, loudly)."""
        if not self.built_in:
            return super().__reduce__()
        return (LogConcaveTarget.from_spec, (self.spec,))

    @property
    def is_gaussian(self) -> bool:
        """Whether γ is a Gaussian with known mean and covariance."""
        return self.mean is not None and self.cov is not None

    def log_density(self, y) -> np.ndarray:
        """log γ(y) = −V(y) − log Z at points y (n, d) -> (n,); needs ``log_normalizer``."""
        if self.log_normalizer is None:
            raise ValueError(f"log γ needs log Z; {self.name} lacks log_normalizer")
        y = as_points(y, "y", self.dim)
        return -values_of_V(self.V, y) - self.log_normalizer

    def density(self, y) -> np.ndarray:
        """γ(y) = exp(−V(y)) / Z at points y (n, d) -> (n,)."""
        return np.exp(self.log_density(y))

    def gradient(self, y) -> np.ndarray:
        """∇V at points y (n, d) -> (n, d): ``grad_V``, whose output shape is checked (a
        grad_V returning (n,) would otherwise broadcast silently)."""
        if self.grad_V is None:
            raise ValueError(f"∇V needs grad_V; {self.name} lacks it")
        y = as_points(y, "y", self.dim)
        return as_shaped_array(
            self.grad_V(y),
            y.shape,
            f"{self.name}'s grad_V(y)",
            " = y.shape: grad_V must return one gradient row (d numbers) per point",
        )

    def score(self, y) -> np.ndarray:
        """∇ log γ = −∇V at points y (n, d) -> (n, d)."""
        if self.grad_V is None:
            raise ValueError(f"the score of γ needs grad_V; {self.name} lacks it")
        return -self.gradient(y)

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """n samples of γ (n, d); Gaussian targets only."""
        if not self.is_gaussian:
            raise ValueError(f"samples of γ are drawn for Gaussian targets only, not {self.name}")
        return Gaussian(self.mean, self.cov).sample(rng, n)

    def hessian(self, points) -> np.ndarray:
        """∇²V at points (n, d, d): ``hess_V``, or central differences of ``grad_V``."""
        points = as_points(points, "points", self.dim)
        if self.hess_V is not None:
            n, d = points.shape
            return as_shaped_array(
                self.hess_V(points), (n, d, d), f"{self.name}'s hess_V(points)", " = (n, d, d)"
            )
        step = 1e-5 * (1 + np.abs(points).max())
        columns = []
        for k in range(self.dim):
            shift = np.zeros(self.dim)
            shift[k] = step
            columns.append(
                (self.gradient(points + shift) - self.gradient(points - shift)) / (2 * step)
            )
        return np.stack(columns, axis=2)

    def _log_normalizer_by_quadrature(self) -> float:
        """log ∫ exp(−V) by scipy's quad/dblquad; a quadrature warning or a non-finite result
        (exp(−V) not integrable, or too slowly decaying for the quadrature) raises."""

        def integrand(*y):
            return float(np.exp(-values_of_V(self.V, np.array([y[::-1]]))[0]))

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


def as_target(target) -> LogConcaveTarget:
    """The ``LogConcaveTarget`` of ``target``: itself, or N(mean, cov) for a ``Gaussian``."""
    if isinstance(target, LogConcaveTarget):
        return target
    if isinstance(target, Gaussian):
        return LogConcaveTarget.gaussian(target.mean, target.cov)
    raise TypeError(
        "target must be a gridflow.LogConcaveTarget (e.g. LogConcaveTarget.gaussian(mean, cov)) "
        f"or a gridflow.Gaussian, got {type(target).__name__}"
    )
