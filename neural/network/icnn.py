"""The ICNN object (paper §3.4): an architecture with fixed, admissible parameters θ.

The potential, its map and their derivatives are the functions of
``neural.network.functions``; the layout of θ, θ0 and the projection those of
``neural.network.architecture``.
"""

from __future__ import annotations

import numpy as np

from gridflow.checks import as_points
from neural.network.architecture import ICNNArchitecture, LayerParams
from neural.network.functions import (
    check_architecture,
    check_cotangent,
    hessian_unchecked,
    hessian_vjp,
    map_vjp_unchecked,
    potential_unchecked,
    transport_map_unchecked,
)

__all__ = ["ICNN"]


class ICNN:
    """An ICNN potential φ_θ with fixed, admissible parameters (paper §3.4).

    Give exactly one of `rng` and `params`. The parameters are a read-only copy;
    `with_params` returns a new network.

    Parameters
    ----------
    dim : int
        The dimension d of the points x.
    hidden : int or sequence of int
        The widths of the hidden layers.
    rng : numpy.random.Generator, optional
        Draws θ (see ``INIT_STD``).
    params : array_like, optional
        The flat parameter vector θ, which must satisfy the constraints (project it first
        with `ICNN.project` / ``architecture.project``); it is checked and copied.
    quadratic : bool, default False
        Add ½ xᵀL Lᵀx (``neural.network.architecture``).
    strong_convexity : float, default 0.0
        α >= 0: add ½ α|x|² (``neural.network.architecture``); with `quadratic`, the two
        add ½ xᵀ(L Lᵀ + α I)x.
    anchors : array_like, optional
        Samples (with `rng`): every hidden unit bends at one of them (the sample-anchored
        initialization of ``neural.network.architecture``).
    slope : float, optional
        The slope of the sample-anchored initialization; default ``ANCHOR_SLOPE``.

    Raises
    ------
    TypeError
        If not exactly one of `rng` and `params` is given, or `anchors` or `slope` goes
        with `params`.
    ValueError
        If `params` does not fit the architecture or the constraints.

    Examples
    --------
    >>> import numpy as np
    >>> net = ICNN(dim=2, hidden=(20, 20), rng=np.random.default_rng(0))
    >>> net.num_params
    541
    >>> x = np.zeros((5, 2))
    >>> net.potential(x).shape, net.map(x).shape, net.map_vjp(x, x).shape
    ((5,), (5, 2), (541,))
    """

    __slots__ = ("_params", "architecture")

    def __init__(
        self,
        dim: int,
        hidden,
        rng: np.random.Generator | None = None,
        *,
        params=None,
        quadratic: bool = False,
        strong_convexity: float = 0.0,
        anchors=None,
        slope: float | None = None,
    ):
        if hasattr(hidden, "__iter__"):
            hidden = tuple(hidden)
        architecture = ICNNArchitecture(dim, hidden, quadratic, strong_convexity)
        if (rng is None) == (params is None):
            raise TypeError(
                "ICNN needs exactly one of rng (a numpy.random.Generator, to draw θ) "
                "or params (a flat parameter vector)"
            )
        if params is None:
            theta = architecture.init_params(rng, anchors, slope)
        elif anchors is not None or slope is not None:
            raise TypeError("anchors and slope initialize θ; they cannot go with params")
        else:
            theta = architecture.check_params(params, "params").copy()
        theta.setflags(write=False)
        object.__setattr__(self, "architecture", architecture)
        object.__setattr__(self, "_params", theta)

    def __setattr__(self, name, value):
        raise AttributeError("ICNN is immutable; use with_params(theta) for new parameters")

    def __reduce__(self):
        """Pickling and copying rebuild the network from (architecture, θ): the immutable
        object cannot be filled in attribute by attribute."""
        return (type(self).from_architecture, (self.architecture, np.array(self._params)))

    def __repr__(self) -> str:
        extra = ""
        if self.architecture.quadratic:
            extra += ", quadratic=True"
        if self.architecture.strong_convexity:
            extra += f", strong_convexity={self.architecture.strong_convexity}"
        return f"ICNN(dim={self.dim}, hidden={self.hidden}{extra}, num_params={self.num_params})"

    @classmethod
    def from_architecture(cls, architecture: ICNNArchitecture, params) -> ICNN:
        """A network with the given architecture and (admissible) parameters.

        Parameters
        ----------
        architecture : ICNNArchitecture
            The architecture.
        params : array_like
            The flat parameter vector θ, admissible (checked and copied).

        Returns
        -------
        ICNN
        """
        check_architecture(architecture)
        return cls(
            architecture.dim,
            architecture.hidden,
            params=params,
            quadratic=architecture.quadratic,
            strong_convexity=architecture.strong_convexity,
        )

    @property
    def dim(self) -> int:
        """The dimension d of the points."""
        return self.architecture.dim

    @property
    def hidden(self) -> tuple[int, ...]:
        """The widths of the hidden layers."""
        return self.architecture.hidden

    @property
    def num_params(self) -> int:
        """The length of θ."""
        return self.architecture.num_params

    @property
    def params(self) -> np.ndarray:
        """The flat float64 parameter vector θ (read-only)."""
        return self._params

    def views(self) -> dict[str, np.ndarray]:
        """Named read-only views of θ: W0, b0, Wz1, b1, Wx1, ..., w, c."""
        return self.architecture.views(self._params)

    @property
    def layers(self) -> list[LayerParams]:
        """Per hidden layer read-only views (weight_z, weight_x, bias)."""
        return self.architecture.layers(self._params)

    def with_params(self, theta) -> ICNN:
        """A new network with the same architecture and parameters θ (checked, copied).

        Parameters
        ----------
        theta : array_like
            The flat parameter vector, admissible.

        Returns
        -------
        ICNN
        """
        return ICNN.from_architecture(self.architecture, theta)

    def project(self, theta) -> np.ndarray:
        """Projection of θ onto the constraint set (Wz_l, w clipped at 0).

        Parameters
        ----------
        theta : array_like
            A flat parameter vector.

        Returns
        -------
        numpy.ndarray
            The projection, a new vector.
        """
        return self.architecture.project(theta)

    def is_admissible(self, theta=None) -> bool:
        """Whether θ satisfies Wz_l >= 0, w >= 0.

        Parameters
        ----------
        theta : array_like, optional
            A flat parameter vector; default: this network's parameters.

        Returns
        -------
        bool
        """
        return self.architecture.is_admissible(self._params if theta is None else theta)

    def _points(self, x) -> np.ndarray:
        # the parameters were checked at construction and are read-only
        return as_points(x, "x", dim=self.architecture.dim)

    def potential(self, x) -> np.ndarray:
        """φ_θ(x_i).

        Parameters
        ----------
        x : array_like
            Points, (n, d).

        Returns
        -------
        numpy.ndarray
            φ_θ(x_i), (n,).
        """
        return potential_unchecked(self.architecture, self._params, self._points(x))

    def map(self, x) -> np.ndarray:
        """T_θ(x_i) = ∇_x φ_θ(x_i).

        Parameters
        ----------
        x : array_like
            Points, (n, d).

        Returns
        -------
        numpy.ndarray
            T_θ(x_i), (n, d).
        """
        return transport_map_unchecked(self.architecture, self._params, self._points(x))

    def __call__(self, x) -> np.ndarray:
        """T_θ(x) = ∇_x φ_θ(x): a network is a map of the family of ``gridflow.maps``.

        Parameters
        ----------
        x : array_like
            Points, (n, d).

        Returns
        -------
        numpy.ndarray
            T_θ(x_i), (n, d) (the same as `map`).
        """
        return self.map(x)

    def map_vjp(self, x, u) -> np.ndarray:
        """∇_θ Σ_i ⟨u_i, T_θ(x_i)⟩.

        Parameters
        ----------
        x : array_like
            Points, (n, d).
        u : array_like
            The cotangents, one per point, of the shape of x, (n, d).

        Returns
        -------
        numpy.ndarray
            The gradient, (num_params,).

        Raises
        ------
        ValueError
            If `u` does not have the shape of `x`.
        """
        x = self._points(x)
        u = check_cotangent(u, x, self.architecture)
        return map_vjp_unchecked(self.architecture, self._params, x, u)

    def hessian(self, x) -> np.ndarray:
        """∇²_x φ_θ(x_i).

        Parameters
        ----------
        x : array_like
            Points, (n, d).

        Returns
        -------
        numpy.ndarray
            The Hessians, (n, d, d).
        """
        return hessian_unchecked(self.architecture, self._params, self._points(x))

    def hessian_vjp(self, x, factors) -> np.ndarray:
        """∇_θ Σ_i ⟨C_i C_iᵀ, ∇²φ_θ(x_i)⟩ (``functions.hessian_vjp``).

        Parameters
        ----------
        x : array_like
            Points, (n, d).
        factors : array_like
            The factors C_i, (n, d, K).

        Returns
        -------
        numpy.ndarray
            The gradient, (num_params,).
        """
        return hessian_vjp(self.architecture, self._params, x, factors)
