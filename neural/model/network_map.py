"""A trained network map: T_θ = ∇φ_θ with its target γ, as a map, a bijection and a density.

A map may be centered at a point c (the mean of the data it was fitted to) and offset by a
point m (the target's mean): T(x) = ∇φ_θ(x − c) + m, still the gradient of the convex
function x ↦ φ_θ(x − c) + ⟨m, x⟩, which is the potential it reports. Below, ∇φ_θ stands
for that map.

The pushforward relation T_θ#p_θ = γ defines the model density of the source that a
network implies (the change of variables behind eq. 3.7, docs/mathematics.md):

    p_θ(x) = γ(∇φ_θ(x)) det ∇²φ_θ(x),     log p_θ(x) = −V(∇φ_θ(x)) − log Z_γ + log det ∇²φ_θ(x).

The relative entropy the score-free objective minimizes is KL(T_θ#ϱ0 | γ) = KL(ϱ0 | p_θ)
= E_ϱ0[log ϱ0] − E_ϱ0[log p_θ]: the held-out negative log-likelihood −E[log p_θ] of data
minus the entropy of ϱ0. Samples of p_θ are ∇φ_θ*(y) for y ~ γ (``neural.model.inverse``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from gridflow.checks import as_points, as_shaped_array, require_finite, require_generator
from gridflow.measures import LogConcaveTarget, as_target
from neural.model.files import read_network_map, write_network_map
from neural.model.inverse import INVERSE_TOLERANCE, inverse_map
from neural.network.icnn import ICNN
from neural.training.kl import cholesky_factors

__all__ = ["NetworkMap"]


@dataclass(frozen=True, eq=False)
class NetworkMap:
    """T_θ = ∇φ_θ from ϱ0 to γ (a map of the family of ``gridflow.maps``), invertible,
    with the model density p_θ of the module docstring.

    Parameters
    ----------
    network : ICNN
        φ_θ.
    target : gridflow.LogConcaveTarget or gridflow.Gaussian
        γ ∝ exp(−V), the measure T_θ pushes the source to.
    training : dict, optional
        How the map was made (method, data, seeds, held-out scores): JSON values, saved
        with the map.
    center : array_like, optional
        c (d,): the map is x ↦ ∇φ_θ(x − c) + m; default the origin.
    offset : array_like, optional
        m (d,); default the origin.

    Examples
    --------
    >>> import numpy as np
    >>> from gridflow import LogConcaveTarget
    >>> from neural import ICNN
    >>> net = ICNN(dim=2, hidden=(8,), rng=np.random.default_rng(0), quadratic=True)
    >>> model = NetworkMap(net, LogConcaveTarget.standard_gaussian(2))
    >>> y = np.array([[0.5, -1.0]])
    >>> bool(np.allclose(model(model.inverse(y)), y, rtol=0, atol=1e-10))
    True
    """

    network: ICNN
    target: LogConcaveTarget
    training: dict = field(default_factory=dict)
    center: np.ndarray | None = None
    offset: np.ndarray | None = None

    def __post_init__(self):
        if not isinstance(self.network, ICNN):
            raise TypeError(f"network must be an ICNN, got {type(self.network).__name__}")
        target = as_target(self.target)
        if target.dim != self.network.dim:
            raise ValueError(f"the target has d = {target.dim}, the network d = {self.network.dim}")
        if not isinstance(self.training, dict):
            raise TypeError(f"training must be a dict, got {type(self.training).__name__}")
        object.__setattr__(self, "target", target)
        for name in ("center", "offset"):
            value = getattr(self, name)
            value = np.zeros(self.dim) if value is None else value
            value = as_shaped_array(value, (self.dim,), name, " (one coordinate per axis)")
            require_finite(value, name)
            value = np.array(value)
            value.setflags(write=False)
            object.__setattr__(self, name, value)

    @property
    def dim(self) -> int:
        """The dimension d."""
        return self.network.dim

    def _centered(self, x) -> np.ndarray:
        return as_points(x, "x", dim=self.dim) - self.center

    def __call__(self, x) -> np.ndarray:
        """T_θ(x) = ∇φ_θ(x − c) + m at points x (n, d) -> (n, d)."""
        return self.network.map(self._centered(x)) + self.offset

    def potential(self, x) -> np.ndarray:
        """φ_θ(x − c) + ⟨m, x⟩ at points x (n, d) -> (n,)."""
        x = as_points(x, "x", dim=self.dim)
        return self.network.potential(x - self.center) + x @ self.offset

    def inverse(self, y, tolerance: float = INVERSE_TOLERANCE) -> np.ndarray:
        """∇φ_θ*(y): the points x (n, d) with T_θ(x) = y, to ‖T_θ(x) − y‖ ≤ tolerance ·
        max(1, ‖y − m‖), or where x no longer changes in floating point, or (far out, where
        the residual's rounding dominates) ≤ √ε max(1, ‖y − m‖)
        (``neural.model.inverse.inverse_map``)."""
        y = as_points(y, "y", dim=self.dim)
        return inverse_map(self.network, y - self.offset, tolerance) + self.center

    def log_density(self, x) -> np.ndarray:
        """log p_θ(x) = log γ(∇φ_θ(x)) + log det ∇²φ_θ(x) at points x (n, d) -> (n,).

        Raises ``DivergenceError`` where ∇²φ_θ is not positive definite and ValueError if
        the target lacks log Z_γ. Points so far out that V(∇φ_θ(x)) overflows (‖x‖ beyond
        about 1e154 for a Gaussian γ) get −inf: their density is 0 in floating point
        (``evaluate`` refuses data with such rows).
        """
        x = self._centered(x)
        log_det, _ = cholesky_factors(self.network.hessian(x))
        return self.target.log_density(self.network.map(x) + self.offset) + log_det

    def negative_log_likelihood(self, x) -> float:
        """−(1/n) Σ_i log p_θ(x_i): the held-out NLL of data x (n, d), in nats."""
        return float(-np.mean(self.log_density(x)))

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """n samples of p_θ: ∇φ_θ*(y) for y ~ γ (Gaussian targets, which can be sampled)."""
        rng = require_generator(rng)
        return self.inverse(self.target.sample(rng, n))

    def save(self, path) -> None:
        """Write the map, its target and its training record to a .npz file, whole or not
        at all (``neural.model.files``); `load` reads it back bit for bit. A file of that
        name is replaced, as numpy.save does (the commands ask for --overwrite)."""
        write_network_map(path, self.network, self.target, self.training, self.center, self.offset)

    @classmethod
    def load(cls, path) -> NetworkMap:
        """The map saved at ``path`` by `save`; ``NetworkFileError`` for any other file."""
        return cls(*read_network_map(path))
