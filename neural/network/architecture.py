"""The ICNN architecture (paper §3.4): the layout of θ, its constraints and projection, θ0.

The potential (paper §3.4), for an input x in R^d and hidden widths
(h_1, ..., h_L):

    a_1 = W0 x + b0,                          z_1 = s(a_1)
    a_{l+1} = Wz_l z_l + b_l + Wx_l x,        z_{l+1} = s(a_{l+1}),   l = 1, ..., L-1
    φ_θ(x) = wᵀ z_L + c

with s the softplus. φ_θ is convex in x when every Wz_l ≥ 0 and w ≥ 0 (softplus is
convex and nondecreasing, nonnegative sums of convex functions are convex), so
T_θ = ∇_x φ_θ is the gradient of a convex function, an element of the cone
K_{ϱ0} of the paper's (nat.gf) parameterization (§3.2). The paper's network,
d = 2 and two hidden layers of 20, has m = 541 parameters (§3.4.2 (ii)); there is
no extra linear or quadratic term in x.

Optional strongly convex quadratic part (not in the paper):

    φ_θ(x) = ICNN_θ(x) + ½ xᵀ (L Lᵀ + α I) x

with L (d, d) learnable (``quadratic=True``; initialized to the identity, so that
T_θ0 is (1 + α) id plus the small initial ICNN map) and α >= 0 fixed
(``strong_convexity``). Every linear map x ↦ A x with A ≻ α I is then within reach of the
network (with an offset from the ICNN part, the Gaussian OT maps), and ∇²φ_θ ⪰ α I is
invertible when α > 0. With both off (the default) φ_θ is
the paper's network.

All parameters live in one flat float64 vector θ, in the order
W0 (h_1, d), b0 (h_1), then for l = 1, ..., L-1: Wz_l (h_{l+1}, h_l), b_l (h_{l+1}),
Wx_l (h_{l+1}, d), then w (h_L), c (1), then L (d, d) with the quadratic part;
matrices row-major. ``views(θ)`` gives the named blocks.

Initialization (the paper does not specify it; the project's convention): every
entry of θ drawn from N(0, 0.1²) with the given ``numpy.random.Generator``, then
projected onto the constraint set (Wz_l ≥ 0 and w ≥ 0 clipped at 0).

Sample-anchored initialization (an option, ``ICNN(..., anchors=samples)``; not in the
paper): after the default draw, every hidden unit j of layer l gets x-weights
slope · u_j with u_j uniform on the unit sphere, and the bias that makes its whole
pre-activation vanish at an anchor p_j drawn from the given points (samples of ϱ0):
a_l,j(p_j) = 0, layer by layer, so each softplus bends inside the data. With the
quadratic part, w = 0 as well: T_θ0 = (1 + α) id exactly, the schemes' T̂_0 = id.
From the default draw every unit bends near the origin with a slope of about 0.1, and the
KL minimizations on the paper's mixture stop at plateaus (KL ≈ 0.2, UVP 2–3 %, for
thousands of steps); from anchored units they end at UVP 0.04 to 0.33 % (docs/neural.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from numba import njit

from gridflow.checks import (
    as_float_array,
    as_points,
    flag,
    positive_float,
    positive_int,
    require_finite,
    require_generator,
)
from gridflow.memory import check_memory
from neural._kernels import JIT
from neural.network.kernels import LANES, LARGEST_FLOAT

__all__ = ["ANCHOR_SLOPE", "INIT_STD", "ICNNArchitecture", "LayerParams"]

INIT_STD = 0.1
"""Standard deviation of the initial parameters (entries N(0, INIT_STD²), then projected)."""

ANCHOR_SLOPE = 5.0
"""Norm of every hidden unit's x-weights in the sample-anchored initialization (1/length:
its softplus bends over about 1/ANCHOR_SLOPE). Chosen on the paper's mixture (modes of
standard deviations 0.2 to 0.7), where slopes 5 and 8 trained best and 3, 2 and 1 gradually
worse. For a smooth, unimodal source the default draw is better: on the d = 8 Gaussian pair
of the dimension study the KL runs from anchored units end about 4 times farther from T*,
the regression onto T* 20 times (docs/neural.md, 'Error budget')."""


@njit(**JIT)
def _count_violations(theta, constrained):
    """(non-finite entries, negative entries where ``constrained``) of θ, in one pass."""
    nonfinite = 0
    negative = 0
    for k in range(theta.size):  # branch-free, so that the loop vectorizes
        value = theta[k]
        nonfinite += not (abs(value) <= LARGEST_FLOAT)  # NaN and ±inf
        negative += constrained[k] and value < 0.0
    return nonfinite, negative


@dataclass(frozen=True)
class LayerParams:
    """Views of one layer's parameters: a = weight_z z_prev + bias + weight_x x.

    ``weight_z`` is None for the first layer (a_1 = W0 x + b0, weight_x = W0).
    """

    weight_z: np.ndarray | None
    weight_x: np.ndarray
    bias: np.ndarray


def _hidden_output(layers: Sequence[LayerParams], x: np.ndarray) -> np.ndarray:
    """z of the last of ``layers`` at points x (n, d), in numpy (for the initialization)."""
    z = None
    for layer in layers:
        a = x @ layer.weight_x.T + layer.bias
        if layer.weight_z is not None:
            a += z @ layer.weight_z.T
        z = np.logaddexp(0.0, a)
    return z


PARAMETER_COPIES = 4
"""Vectors of the size of θ a training holds at once (θ, its gradient, Adam's two moments)."""


@dataclass(frozen=True)
class ICNNArchitecture:
    """Input dimension and hidden widths of an ICNN; owns the layout of θ.

    dim               input dimension d >= 1
    hidden            widths (h_1, ..., h_L), depth L >= 1, every h_l >= 1
    quadratic         add ½ xᵀ L Lᵀ x with a learnable L (d, d) (module docstring)
    strong_convexity  α >= 0: add ½ α ‖x‖² (fixed), so that ∇²φ ⪰ α I
    """

    dim: int
    hidden: tuple[int, ...]
    quadratic: bool = False
    strong_convexity: float = 0.0

    def __post_init__(self):
        positive_int(self.dim, "dim")
        object.__setattr__(self, "quadratic", flag(self.quadratic, "quadratic"))
        object.__setattr__(
            self,
            "strong_convexity",
            positive_float(self.strong_convexity, "strong_convexity", allow_zero=True),
        )
        if isinstance(self.hidden, (int, np.integer)) or not hasattr(self.hidden, "__len__"):
            raise TypeError(
                f"hidden must be a sequence of layer widths, e.g. (20, 20), got {self.hidden!r}"
            )
        if len(self.hidden) < 1:
            raise ValueError("hidden must list at least one layer width, e.g. (20, 20)")
        widths = tuple(positive_int(h, "hidden widths") for h in self.hidden)
        object.__setattr__(self, "dim", int(self.dim))
        object.__setattr__(self, "hidden", widths)
        check_memory(
            PARAMETER_COPIES * 8 * self.num_params,
            f"an ICNN of hidden widths {widths} in d = {self.dim} ({self.num_params:.3g} "
            "parameters)",
            "choose smaller widths",
        )

    @property
    def depth(self) -> int:
        """Number of hidden layers L."""
        return len(self.hidden)

    @cached_property
    def widths(self) -> np.ndarray:
        """int64 array (d, h_1, ..., h_L)."""
        return np.array((self.dim, *self.hidden), dtype=np.int64)

    @cached_property
    def _blocks(self) -> tuple[tuple[str, int, tuple[int, ...]], ...]:
        """(name, offset, shape) of every parameter block, in θ order."""
        blocks = []
        offset = 0

        def add(name, shape):
            nonlocal offset
            blocks.append((name, offset, shape))
            offset += int(np.prod(shape))

        add("W0", (self.hidden[0], self.dim))
        add("b0", (self.hidden[0],))
        for layer in range(1, self.depth):
            add(f"Wz{layer}", (self.hidden[layer], self.hidden[layer - 1]))
            add(f"b{layer}", (self.hidden[layer],))
            add(f"Wx{layer}", (self.hidden[layer], self.dim))
        add("w", (self.hidden[-1],))
        add("c", (1,))
        if self.quadratic:
            add("L", (self.dim, self.dim))
        return tuple(blocks)

    @cached_property
    def num_params(self) -> int:
        """Length m of θ (541 for dim 2, hidden (20, 20))."""
        _, offset, shape = self._blocks[-1]
        return offset + int(np.prod(shape))

    @property
    def has_quadratic_part(self) -> bool:
        """Whether φ_θ has the term ½ xᵀ (L Lᵀ + α I) x (L learnable, or α > 0)."""
        return self.quadratic or self.strong_convexity > 0.0

    def quadratic_factor(self, theta: np.ndarray) -> np.ndarray | None:
        """The learnable L (d, d) of ½ xᵀ L Lᵀ x (a view of θ), None without it."""
        if not self.quadratic:
            return None
        start = self.num_params - self.dim * self.dim
        return theta[start:].reshape(self.dim, self.dim)

    def quadratic_matrix(self, theta: np.ndarray) -> np.ndarray:
        """Q = L Lᵀ + α I (d, d), the Hessian of the quadratic part (0 without it)."""
        factor = self.quadratic_factor(theta)
        matrix = np.zeros((self.dim, self.dim)) if factor is None else factor @ factor.T
        if self.strong_convexity:
            matrix.ravel()[:: self.dim + 1] += self.strong_convexity  # the diagonal
        return matrix

    @staticmethod
    def _layer_names(layer: int) -> tuple[str | None, str, str]:
        """Names of (Wz, Wx, b) of hidden layer ``layer`` = 0, ..., L-1 (no Wz for layer 0)."""
        if layer == 0:
            return None, "W0", "b0"
        return f"Wz{layer}", f"Wx{layer}", f"b{layer}"

    @cached_property
    def layout(self) -> np.ndarray:
        """int64 offsets in θ: per hidden layer (Wz or -1, Wx, b), then w, c."""
        offsets = {name: offset for name, offset, _ in self._blocks}
        layout = []
        for layer in range(self.depth):
            layout += [offsets.get(name, -1) for name in self._layer_names(layer)]
        layout += [offsets["w"], offsets["c"]]
        return np.array(layout, dtype=np.int64)

    @cached_property
    def kernel_tables(self) -> tuple[np.ndarray, np.ndarray]:
        """(table, index): the padded per-layer matrices the numba kernels work with.

        Hidden layer l = 0, ..., L-1 is M_l = [Wz_l | Wx_l | b_l] (no Wz for l = 0)
        zero-padded to ``rows`` = h_{l+1} and ``inputs`` = prev + (d + 1) columns,
        with ``prev`` = h_l (0 for l = 0), each rounded up to a multiple of
        ``LANES``. table[l] = (rows, inputs, prev, offset, unit_row, input_row):
        offset is where M_l (row-major) starts in the packed vector, unit_row and
        input_row where layer l's units and its input matrix B_l start in the
        kernels' stacked work arrays. After the M_l come w (padded to the last
        layer's rows) and c. index[j] is the θ index of packed entry j, or -1 for
        padding (packed[j] = 0).
        """
        dim = self.dim

        def padded(count):
            return -(-count // LANES) * LANES

        def indices(offset, shape):
            return offset + np.arange(int(np.prod(shape))).reshape(shape)

        table, pieces, offset, unit_row, input_row = [], [], 0, 0, 0
        for layer in range(self.depth):
            off_z, off_x, off_b = self.layout[3 * layer : 3 * layer + 3]
            rows, prev = self.hidden[layer], (self.hidden[layer - 1] if layer > 0 else 0)
            prev_padded = padded(prev)
            block = np.full((padded(rows), prev_padded + padded(dim + 1)), -1, dtype=np.int64)
            if layer > 0:
                block[:rows, :prev] = indices(off_z, (rows, prev))
            block[:rows, prev_padded : prev_padded + dim] = indices(off_x, (rows, dim))
            block[:rows, prev_padded + dim] = indices(off_b, (rows,))
            table.append((*block.shape, prev_padded, offset, unit_row, input_row))
            pieces.append(block.ravel())
            offset += block.size
            unit_row += block.shape[0]
            input_row += block.shape[1]
        w = np.full(padded(self.hidden[-1]), -1, dtype=np.int64)
        w[: self.hidden[-1]] = indices(self.layout[-2], (self.hidden[-1],))
        pieces += [w, self.layout[-1:]]
        table = np.array(table, dtype=np.int64)
        index = np.concatenate(pieces)
        table.setflags(write=False)
        index.setflags(write=False)
        return table, index

    @cached_property
    def constrained_mask(self) -> np.ndarray:
        """Boolean mask of the entries constrained to be >= 0 (every Wz_l and w)."""
        mask = np.zeros(self.num_params, dtype=bool)
        for name, offset, shape in self._blocks:
            if name.startswith("Wz") or name == "w":
                mask[offset : offset + int(np.prod(shape))] = True
        mask.setflags(write=False)
        return mask

    @cached_property
    def _lower_bounds(self) -> np.ndarray:
        """0 at the constrained entries, −inf elsewhere: the projection is a maximum with it."""
        bounds = np.where(self.constrained_mask, 0.0, -np.inf)
        bounds.setflags(write=False)
        return bounds

    def slices(self) -> dict[str, tuple[slice, tuple[int, ...]]]:
        """Name -> (slice of θ, shape) for W0, b0, Wz1, b1, Wx1, ..., w, c."""
        return {
            name: (slice(offset, offset + int(np.prod(shape))), shape)
            for name, offset, shape in self._blocks
        }

    def views(self, theta: np.ndarray) -> dict[str, np.ndarray]:
        """Named reshaped views into θ (writeable iff θ is; c has shape (1,))."""
        theta = self.check_params(theta, "theta", require_admissible=False, copy=False)
        return {name: theta[sl].reshape(shape) for name, (sl, shape) in self.slices().items()}

    def layers(self, theta: np.ndarray) -> list[LayerParams]:
        """Per hidden layer views (weight_z, weight_x, bias) into θ."""
        named = self.views(theta)
        result = []
        for layer in range(self.depth):
            weight_z, weight_x, bias = self._layer_names(layer)
            result.append(LayerParams(named.get(weight_z), named[weight_x], named[bias]))
        return result

    def init_params(
        self, rng: np.random.Generator, anchors=None, slope: float | None = None
    ) -> np.ndarray:
        """Initial θ: entries N(0, INIT_STD²) drawn from ``rng``, then projected; L = I.

        With ``anchors`` (points (m, d), e.g. samples of ϱ0): the sample-anchored
        initialization of the module docstring, every hidden unit bending at one of them,
        with x-weights of norm ``slope`` (default ``ANCHOR_SLOPE``).
        """
        rng = require_generator(rng)
        if anchors is None and slope is not None:
            raise TypeError("slope is the sample-anchored initialization's; pass anchors too")
        theta = self.project(rng.normal(0.0, INIT_STD, size=self.num_params))
        factor = self.quadratic_factor(theta)
        if factor is not None:
            factor[...] = np.eye(self.dim)
        if anchors is not None:
            self._anchor_units(theta, rng, anchors, ANCHOR_SLOPE if slope is None else slope)
        return theta

    def _anchor_units(self, theta, rng, anchors, slope) -> None:
        """Make every hidden unit of θ bend at an anchor (in place; module docstring)."""
        anchors = as_points(anchors, "anchors", dim=self.dim)
        slope = positive_float(slope, "slope")
        layers = self.layers(theta)
        for index, layer in enumerate(layers):
            width = layer.bias.shape[0]
            directions = rng.standard_normal((width, self.dim))
            layer.weight_x[...] = slope * directions / np.linalg.norm(directions, axis=1)[:, None]
            at = anchors[rng.integers(anchors.shape[0], size=width)]
            pre_activation = np.einsum("jk,jk->j", layer.weight_x, at)
            if layer.weight_z is not None:
                below = _hidden_output(layers[:index], at)
                pre_activation += np.einsum("jk,jk->j", layer.weight_z, below)
            layer.bias[...] = -pre_activation
        if self.quadratic:
            self.views(theta)["w"][...] = 0.0

    def project(self, theta: np.ndarray) -> np.ndarray:
        """Euclidean projection of θ onto the constraint set: Wz_l, w clipped at 0 (a copy)."""
        return self._project(self.check_params(theta, "theta", require_admissible=False))

    def _project(self, theta: np.ndarray) -> np.ndarray:
        """``project`` of a checked θ (a new array; NaN stays NaN)."""
        return np.maximum(theta, self._lower_bounds)

    def is_admissible(self, theta: np.ndarray) -> bool:
        """True if every Wz_l and w entry of θ is >= 0 (φ_θ is then convex in x)."""
        theta = self.check_params(theta, "theta", require_admissible=False, copy=False)
        return bool(np.all(theta[self.constrained_mask] >= 0.0))

    def check_params(
        self, theta, name: str = "theta", require_admissible: bool = True, copy: bool = False
    ) -> np.ndarray:
        """θ as a finite float64 vector of length num_params (admissible if required)."""
        array = as_float_array(theta, name)
        if array.ndim != 1 or array.shape[0] != self.num_params:
            raise ValueError(
                f"{name} must be a flat vector of {self.num_params} parameters for "
                f"dim={self.dim}, hidden={self.hidden}; got shape {array.shape}"
            )
        nonfinite, negative = _count_violations(array, self.constrained_mask)
        if nonfinite:
            require_finite(array, name)  # raises, with the package's message
        if require_admissible and negative:
            raise ValueError(
                f"{name} violates the ICNN constraints (Wz_l >= 0 and w >= 0): {negative} "
                f"negative constrained entries; project it first with project({name})"
            )
        if copy and array is theta:
            array = array.copy()
        return array
