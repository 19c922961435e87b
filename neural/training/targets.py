"""The target γ ∝ exp(−V) of the training schemes and the source sampler of ϱ0."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from neural._validate import as_float_array, as_points, positive_int

__all__ = ["Target", "as_sampler", "as_target"]


# ---------------------------------------------------------------------------
# Target γ ∝ exp(−V) and source sampler
# ---------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Target:
    """A log-concave target γ ∝ exp(−V) given by ∇V: points (n, d) -> (n, d) (V optional).

    ``Target.gaussian(mean, cov)`` and ``Target.standard_gaussian(d)`` build N(m, Σ);
    ``as_target`` also accepts ``gridflow.LogConcaveTarget`` and ``neural.samplers.Gaussian``.
    ``mean``, ``cov`` are the target's moments when known (``cov``: the L²-UVP), ``log_normalizer``
    log Z_γ = log ∫ exp(−V) when known (the exact KL, ``neural.kl``), ``lam`` the
    convexity modulus λ of V when known (the rate 2λ of Thm 2.13).
    """

    grad_V: Callable[[np.ndarray], np.ndarray]
    V: Callable[[np.ndarray], np.ndarray] | None = None
    name: str = "target"
    cov: np.ndarray | None = field(default=None, repr=False)
    log_normalizer: float | None = None
    lam: float | None = None
    mean: np.ndarray | None = field(default=None, repr=False)

    def __post_init__(self):
        if not callable(self.grad_V):
            raise TypeError(
                f"grad_V must be a callable points (n, d) -> (n, d), got {self.grad_V!r}"
            )
        if self.V is not None and not callable(self.V):
            raise TypeError(f"V must be None or a callable points (n, d) -> (n,), got {self.V!r}")

    @classmethod
    def gaussian(cls, mean, cov) -> Target:
        """γ = N(mean, cov): V(y) = ½ (y − m)ᵀ cov⁻¹ (y − m), ∇V(y) = cov⁻¹ (y − m)."""
        mean = as_float_array(mean, "mean").copy()
        if mean.ndim != 1:
            raise ValueError(f"mean must have shape (d,), got {mean.shape}")
        cov = as_float_array(cov, "cov").copy()
        d = mean.size
        if cov.shape != (d, d) or not np.allclose(cov, cov.T) or not np.isfinite(cov).all():
            raise ValueError(f"cov must be a symmetric ({d}, {d}) matrix, got shape {cov.shape}")
        if np.linalg.eigvalsh(cov).min() <= 0.0:
            raise ValueError("cov must be positive definite")
        precision = np.linalg.inv(cov)
        precision = 0.5 * (precision + precision.T)
        standard = bool(np.all(mean == 0.0) and np.all(cov == np.eye(d)))
        for array in (mean, cov, precision):
            array.setflags(write=False)

        def centered(y):
            y = as_points(y, "y", dim=d)
            return y if standard else y - mean

        def grad_V(y):
            return np.array(centered(y), copy=True) if standard else centered(y) @ precision

        def V(y):
            c = centered(y)
            return 0.5 * np.einsum("ni,ij,nj->n", c, precision, c)

        name = f"N(0, I_{d})" if standard else f"N(m, Σ) in d = {d}"
        eigenvalues = np.linalg.eigvalsh(cov)
        return cls(
            grad_V=grad_V,
            V=V,
            name=name,
            cov=cov,
            log_normalizer=0.5 * float(d * np.log(2.0 * np.pi) + np.sum(np.log(eigenvalues))),
            lam=1.0 / float(eigenvalues.max()),
            mean=mean,
        )

    @classmethod
    def standard_gaussian(cls, dim: int) -> Target:
        """γ = N(0, I_d), ∇V(y) = y (the paper's target with d = 2)."""
        dim = positive_int(dim, "dim")
        return cls.gaussian(np.zeros(dim), np.eye(dim))


def as_target(target) -> Target:
    """A ``Target`` from a Target, an object with ``grad_V`` (gridflow.LogConcaveTarget),
    or a Gaussian with ``mean``, ``cov`` (neural.samplers.Gaussian, gridflow.gaussian.Gaussian).
    """
    if isinstance(target, Target):
        return target
    if callable(getattr(target, "grad_V", None)):
        cov = getattr(target, "cov", None)
        log_normalizer = getattr(target, "log_normalizer", None)
        lam = getattr(target, "lam", None)
        return Target(
            grad_V=target.grad_V,
            V=getattr(target, "V", None),
            name=str(getattr(target, "name", "target")),
            cov=None if cov is None else np.asarray(cov, dtype=np.float64),
            log_normalizer=None if log_normalizer is None else float(log_normalizer),
            lam=None if lam is None else float(lam),
            mean=None if getattr(target, "mean", None) is None else np.asarray(target.mean, float),
        )
    if hasattr(target, "mean") and hasattr(target, "cov"):
        return Target.gaussian(target.mean, target.cov)
    raise TypeError(
        "target must be a neural.schemes.Target, an object with grad_V (e.g. "
        "gridflow.LogConcaveTarget) or a Gaussian with mean and cov; got "
        f"{type(target).__name__}"
    )


def as_sampler(source) -> Callable[[np.random.Generator, int], np.ndarray]:
    """(rng, n) -> (n, d) samples of ϱ0 from an object with ``sample(rng, n)`` or a callable."""
    sample = getattr(source, "sample", None)
    if callable(sample):
        return sample
    if callable(source):
        return source
    raise TypeError(
        "source must have a method sample(rng, n) -> (n, d) (e.g. neural.samplers.paper_mixture()) "
        f"or be a callable (rng, n) -> (n, d); got {type(source).__name__}"
    )
