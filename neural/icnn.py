"""Input convex neural networks (ICNN, paper §3.4) with hand-written derivatives.

The potential (paper §3.4, DESIGN §4), for an input x in R^d and hidden widths
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

Optional strongly convex quadratic part (DESIGN §4b; not in the paper):

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

Derivatives are written by hand and compiled with numba:
- map T_θ(x) = ∇_x φ_θ(x): reverse mode, g_L = w ⊙ s'(a_L),
  g_l = (Wz_lᵀ g_{l+1}) ⊙ s'(a_l), T = W0ᵀ g_1 + Σ_l Wx_lᵀ g_{l+1}.
- map_vjp(x, u) = ∇_θ Σ_i ⟨u_i, T_θ(x_i)⟩: every loss of the schemes (paper
  §3.4.1, eq. 3.7 and the (gd, expl.)/(gd, impl.) objectives) has this form with a
  cotangent u. Σ_i ⟨u_i, ∇φ(x_i)⟩ is the directional derivative φ̇ along u,
  computed in forward mode (ȧ_1 = W0 u, ż_l = s'(a_l) ⊙ ȧ_l,
  ȧ_{l+1} = Wz_l ż_l + Wx_l u, φ̇ = wᵀ ż_L) and differentiated in reverse mode
  through both the primal and the tangent pass (exact second-order backprop).
  With Q_l = ∂φ̇/∂ȧ_l (= g_l above) and P_l = ∂φ̇/∂a_l:
  Q_L = w ⊙ s'(a_L), P_L = w ⊙ s''(a_L) ⊙ ȧ_L,
  Q_l = (Wz_lᵀ Q_{l+1}) ⊙ s'(a_l),
  P_l = (Wz_lᵀ P_{l+1}) ⊙ s'(a_l) + (Wz_lᵀ Q_{l+1}) ⊙ s''(a_l) ⊙ ȧ_l,
  and ∂/∂Wz_l = P_{l+1} z_lᵀ + Q_{l+1} ż_lᵀ, ∂/∂Wx_l = P_{l+1} xᵀ + Q_{l+1} uᵀ,
  ∂/∂b_l = P_{l+1}, ∂/∂W0 = P_1 xᵀ + Q_1 uᵀ, ∂/∂b0 = P_1, ∂/∂w = ż_L, ∂/∂c = 0.
- hessian: ∇²φ u = ∇_x φ̇, and x enters only the primal pre-activations, so
  ∇²φ u = W0ᵀ P_1 + Σ_l Wx_lᵀ P_{l+1}; the Hessian is assembled from the d basis
  directions u = e_k.

One numba kernel runs these passes for all four quantities (the comment above the
kernels gives their matrix form). It works on blocks of points, in parallel for
more than one block (n > ``_BLOCK_POINTS``); the parameter gradient is summed per block
(blocks depend on n only) and the block sums are added in block order, so results
do not depend on the number of threads (bit for bit).

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
thousands of steps); from anchored units they end at UVP 0.04 to 0.33 % (README).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numba
import numpy as np
from numba import njit, prange

from gridflow.checks import (
    as_float_array,
    as_points,
    flag,
    positive_float,
    positive_int,
    require_finite,
    require_generator,
)
from neural._kernels import JIT, block_bounds, exp_nonpositive, log1p_unit, sum4

__all__ = [
    "ICNN",
    "ICNNArchitecture",
    "LayerParams",
    "hessian",
    "hessian_vjp",
    "map_vjp",
    "potential",
    "transport_map",
]

INIT_STD = 0.1
"""Standard deviation of the initial parameters (entries N(0, INIT_STD²), then projected)."""

ANCHOR_SLOPE = 5.0
"""Norm of every hidden unit's x-weights in the sample-anchored initialization (1/length:
its softplus bends over about 1/ANCHOR_SLOPE). Chosen on the paper's mixture (modes of
standard deviations 0.2 to 0.7), where slopes 5 and 8 trained best and 3, 2 and 1 gradually
worse. For a smooth, unimodal source the default draw is better: on the d = 8 Gaussian pair
of the dimension study the KL runs from anchored units end about 4 times farther from T*,
the regression onto T* 20 times (README, error budget)."""

_BLOCK_POINTS = 128
"""Points are processed in contiguous blocks of about this many (boundaries depend on n only).

128 keeps the schemes' batches (n = 100) in one block, run serially: each block has
a fixed cost (allocations, loop set-up, two BLAS calls), so one block of 100 beats
two of 50 on one core, and a parallel region on a busy 2-core machine can wait a
scheduler time slice (milliseconds) for its second thread. Measured on this machine
(one core busy): map_vjp at n = 256 takes ~145 µs serially, ~95 µs in parallel."""

_LANES = 4
"""Vector width (float64 lanes of AVX2) to which the kernels pad units and points."""


# ---------------------------------------------------------------------------
# Architecture and parameter layout
# ---------------------------------------------------------------------------


_LARGEST_FLOAT = float(np.finfo(np.float64).max)


@njit(**JIT)
def _count_violations(theta, constrained):
    """(non-finite entries, negative entries where ``constrained``) of θ, in one pass."""
    nonfinite = 0
    negative = 0
    for k in range(theta.size):  # branch-free, so that the loop vectorizes
        value = theta[k]
        nonfinite += not (abs(value) <= _LARGEST_FLOAT)  # NaN and ±inf
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
        ``_LANES``. table[l] = (rows, inputs, prev, offset, unit_row, input_row):
        offset is where M_l (row-major) starts in the packed vector, unit_row and
        input_row where layer l's units and its input matrix B_l start in the
        kernels' stacked work arrays. After the M_l come w (padded to the last
        layer's rows) and c. index[j] is the θ index of packed entry j, or -1 for
        padding (packed[j] = 0).
        """
        dim = self.dim

        def padded(count):
            return -(-count // _LANES) * _LANES

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


# ---------------------------------------------------------------------------
# numba kernels (unchecked: the public functions below validate their inputs)
#
# Hidden layer l = 0, ..., L-1 computes a_{l+1} from the packed matrix
# M_l = [Wz_l | Wx_l | b_l] (no Wz for l = 0, where Wx_0 = W0) and, for a block of
# p points, the input matrix B_l = [[z_l, ż_l], [x, u], [1, 0]] (rows: units of
# z_l, coordinates, bias; the first p columns are the primal pass, the next p the
# tangent pass along u). In this form the module docstring's recursions read
#     [a_{l+1}, ȧ_{l+1}] = M_l B_l                 forward, primal and tangent at once
#     ∂φ̇/∂M_l = [P_{l+1}, Q_{l+1}] B_lᵀ            every parameter block of the layer
#     M_lᵀ [P_{l+1}, Q_{l+1}]                      rows Wz_lᵀ[P, Q] (→ P_l, Q_l) and Wx_lᵀ[P, Q]
# The backward pass starts from the adjoint [0, w] of [z_L, ż_L] (φ̇ = wᵀ ż_L), which
# the activation step turns into P_L = w ⊙ s''(a_L) ⊙ ȧ_L and Q_L = w ⊙ s'(a_L). The
# map kernel runs the same passes without the tangent (columns: Q only). The Hessian
# kernel runs K = d tangent passes along e_1, ..., e_d at once: B_l = [[z, ż_1..ż_d],
# [x, e_1..e_d], [1, 0..0]] and adjoints [P_1..P_d, Q] (Q does not depend on the
# direction), so that T = Σ_l Wx_lᵀ Q_{l+1} and ∇²φ e_k = Σ_l Wx_lᵀ P_{k, l+1}.
#
# Unit counts are zero-padded to multiples of _LANES and a block's points to a
# multiple of _LANES, so every inner loop runs over whole vector lanes. Padded units
# have zero weights; padded points have x = u = 0, hence P = 0 and ż = 0, so they
# add exact zeros to the gradient, and their outputs are not stored. Arrays are
# unit-major (units, points); inner loops run over points, contiguous and
# vectorized, with no sum reassociated (fastmath=False).
# ---------------------------------------------------------------------------

_POTENTIAL, _MAP, _MAP_VJP, _HESSIAN, _HESSIAN_VJP = 0, 1, 2, 3, 4
"""Kernel modes; _MAP_VJP carries the tangent pass along u, _HESSIAN the d tangent passes
along e_1..e_d (output per point: T, then ∇²φ row-major), _HESSIAN_VJP first and second
tangents along the columns of factors C (u = C flattened)."""

_ROWS, _INPUTS, _PREV, _OFFSET, _UNIT_ROW, _INPUT_ROW = 0, 1, 2, 3, 4, 5
"""Columns of the layer table (``ICNNArchitecture.kernel_tables``)."""


@njit(**JIT)
def _pack(theta, index):
    """The packed weights: packed[j] = θ[index[j]], 0 where index[j] = -1 (padding)."""
    packed = np.zeros(index.size)
    for j in range(index.size):
        if index[j] >= 0:
            packed[j] = theta[index[j]]
    return packed


@njit(**JIT)
def _layer_weights(table, packed, layer):
    """The padded M_l = [Wz_l | Wx_l | b_l] of hidden layer ``layer``, a view of ``packed``."""
    rows = table[layer, _ROWS]
    width = table[layer, _INPUTS]
    offset = table[layer, _OFFSET]
    return packed[offset : offset + rows * width].reshape((rows, width))


@njit(**JIT)
def _layer_inputs(table, inputs, layer):
    """The input matrix B_l of hidden layer ``layer``, rows of the stacked ``inputs``."""
    row = table[layer, _INPUT_ROW]
    return inputs[row : row + table[layer, _INPUTS]]


@njit(**JIT)
def _multiply(weights, source, target, begin, end):
    """target[:rows, begin:end] = weights @ source[:, begin:end], weights (rows, inner) with
    rows, inner multiples of 4.

    Four target rows and four source rows per pass: each target entry is summed in
    the order of ``inner`` (as a plain loop would), with four times fewer
    loads and stores of the target.
    """
    rows, inner = weights.shape
    for r in range(0, rows, _LANES):
        t0 = target[r]
        t1 = target[r + 1]
        t2 = target[r + 2]
        t3 = target[r + 3]
        for i in range(begin, end):
            t0[i] = 0.0
            t1[i] = 0.0
            t2[i] = 0.0
            t3[i] = 0.0
        for c in range(0, inner, _LANES):
            s0 = source[c]
            s1 = source[c + 1]
            s2 = source[c + 2]
            s3 = source[c + 3]
            m00 = weights[r, c]
            m01 = weights[r, c + 1]
            m02 = weights[r, c + 2]
            m03 = weights[r, c + 3]
            m10 = weights[r + 1, c]
            m11 = weights[r + 1, c + 1]
            m12 = weights[r + 1, c + 2]
            m13 = weights[r + 1, c + 3]
            m20 = weights[r + 2, c]
            m21 = weights[r + 2, c + 1]
            m22 = weights[r + 2, c + 2]
            m23 = weights[r + 2, c + 3]
            m30 = weights[r + 3, c]
            m31 = weights[r + 3, c + 1]
            m32 = weights[r + 3, c + 2]
            m33 = weights[r + 3, c + 3]
            for i in range(begin, end):
                v0 = s0[i]
                v1 = s1[i]
                v2 = s2[i]
                v3 = s3[i]
                t0[i] = (((t0[i] + m00 * v0) + m01 * v1) + m02 * v2) + m03 * v3
                t1[i] = (((t1[i] + m10 * v0) + m11 * v1) + m12 * v2) + m13 * v3
                t2[i] = (((t2[i] + m20 * v0) + m21 * v1) + m22 * v2) + m23 * v3
                t3[i] = (((t3[i] + m30 * v0) + m31 * v1) + m32 * v2) + m33 * v3


@njit(**JIT)
def _block_layout(table, start, stop):
    """Sizes shared by the block kernels for the points [start, stop): (count, points
    padded to whole lanes, stacked unit rows, first row of [z_L, ...] in the stacked inputs,
    offset of w in the packed weights, widest layer (rows or inputs))."""
    depth = table.shape[0]
    count = stop - start
    points = (count + _LANES - 1) // _LANES * _LANES
    last = table[depth - 1]
    widest = 0
    for layer in range(depth):
        widest = max(widest, table[layer, _ROWS], table[layer, _INPUTS])
    return (
        count,
        points,
        last[_UNIT_ROW] + last[_ROWS],
        last[_INPUT_ROW] + last[_INPUTS],
        last[_OFFSET] + last[_ROWS] * last[_INPUTS],
        widest,
    )


@njit(**JIT)
def _softplus_row(a, z, exponentials, points, want_value):
    """exponentials = exp(−|a|) and, if ``want_value``, z = s(a) = max(a, 0) + log1p(exp(−|a|))
    over the first ``points`` entries of one row (the shared start of every activation)."""
    for i in range(points):
        exponentials[i] = exp_nonpositive(-abs(a[i]))
    if want_value:
        for i in range(points):
            z[i] = max(a[i], 0.0) + log1p_unit(exponentials[i])


@njit(**JIT)
def _activate(pre, out, slope, curvature, exponentials, points, want_value, tangents):
    """Softplus terms of a layer from its pre-activations ``pre`` (rows, columns).

    With e = exp(−|a|): s(a) = max(a, 0) + log1p(e) into the primal columns of
    ``out`` (if ``want_value``), s'(a) = 1/(1 + e) or e/(1 + e) into ``slope``, and
    with ``tangents`` K >= 1 tangent passes s''(a) = e/(1 + e)² into ``curvature`` and
    ż_k = s'(a) ȧ_k into the k-th tangent columns of ``out``. One pass per quantity
    keeps each loop short (the vectorized exp and log1p are long dependency chains).
    """
    for o in range(pre.shape[0]):
        a = pre[o]
        z = out[o]
        s1 = slope[o]
        _softplus_row(a, z, exponentials, points, want_value)
        if tangents:
            s2 = curvature[o]
            for i in range(points):
                e = exponentials[i]
                inverse = 1.0 / (1.0 + e)
                s1[i] = inverse if a[i] >= 0.0 else e * inverse
                s2[i] = e * inverse * inverse
            for k in range(tangents):
                first = (1 + k) * points
                for i in range(points):
                    z[first + i] = s1[i] * a[first + i]
        else:
            for i in range(points):
                e = exponentials[i]
                inverse = 1.0 / (1.0 + e)
                s1[i] = inverse if a[i] >= 0.0 else e * inverse


@njit(**JIT)
def _adjoint_activation(adjoint, slope, curvature, pre, out, points, tangents):
    """[P_1..P_K, Q]_l from the adjoints [Wzᵀ P_1..Wzᵀ P_K, Wzᵀ Q] of z_l (module docstring).

    P_k = (Wzᵀ P_k) ⊙ s' + (Wzᵀ Q) ⊙ s'' ⊙ ȧ_k and Q = (Wzᵀ Q) ⊙ s'; without tangents
    (K = 0) the columns hold Q only.
    """
    q_start = tangents * points
    for o in range(slope.shape[0]):
        g = adjoint[o]
        s1 = slope[o]
        result = out[o]
        if tangents:
            s2 = curvature[o]
            a = pre[o]
            for k in range(tangents):
                first = k * points
                for i in range(points):
                    g_q = g[q_start + i]
                    result[first + i] = g[first + i] * s1[i] + g_q * s2[i] * a[first + points + i]
            for i in range(points):
                result[q_start + i] = g[q_start + i] * s1[i]
        else:
            for i in range(points):
                result[i] = g[i] * s1[i]


@njit(**JIT)
def _adjoint_step(table, layer, adjoint, slope, curvature, pre, out, points, tangents):
    """[P, Q] of hidden layer ``layer`` into ``out`` from the adjoints of its outputs."""
    unit = table[layer, _UNIT_ROW]
    rows = table[layer, _ROWS]
    _adjoint_activation(
        adjoint,
        slope[unit : unit + rows],
        curvature[unit : unit + rows],  # no rows without the tangent
        pre[unit : unit + rows],
        out,
        points,
        tangents,
    )


# ---------------------------------------------------------------------------
# Third order: ∇_θ Σ_i [⟨u_i, ∇φ(x_i)⟩ + β ⟨S_i, ∇²φ(x_i)⟩] for symmetric S_i
# (``hessian_vjp``: u = 0, β = 1, S_i = C_i C_iᵀ; the score-free KL gradient:
# u_i = weight ∇V(T(x_i)) + extra, β = −weight, S_i = ∇²φ(x_i)⁻¹)
#
# The tape holds K tangent passes along directions c_1..c_K of each point (the module
# docstring's notation, ȧ_k, ż_k): the Hessian kernel's passes along e_1..e_d (K = d),
# or the columns of C_i (``hessian_vjp``). With S_i = C_i G_i C_iᵀ (G = I for
# ``hessian_vjp``; C = I, G = S for the score-free gradient), ⟨S, ∇²φ⟩ =
# Σ_kl G_kl c_kᵀ ∇²φ c_l is the second derivative of φ along the c_k weighted by G, so
# one second-order channel carries it in forward mode (a forward "Laplacian"):
#     t_1 = 0,  ζ = s'' q + s' t,  q = ȧᵀ G ȧ = Σ_kl G_kl ȧ_k ȧ_l,  t_{l+1} = Wz_l ζ_l,
#     ⟨S, ∇²φ⟩ = wᵀ ζ_L  (t = Σ_kl G_kl ä_kl, ä_kl the mixed second tangents),
# and ⟨u, ∇φ⟩ = Σ_k ū_k φ̇_k = Σ_k ū_k wᵀ ż_L,k with ū = C⁻¹ u (= u for C = I). With
# (Z, Ż_k, Z̈), (A, Ȧ_k, Ä) the adjoints of (z, ż_k, ζ), (a, ȧ_k, t), reverse mode gives
#     Ä = Z̈ s',  Ȧ_k = Ż_k s' + 2 Z̈ s'' (G ȧ)_k,  A = Z s' + Σ_k Ż_k s'' ȧ_k + Z̈ κ,
#     κ = s''' q + s'' t,  s''' = s''(1 − 2 s');
#     ∂/∂M_l = [A, Ȧ_1..K, Ä] B_lᵀ,  (Z, Ż_k, Z̈) below = Wz_lᵀ (A, Ȧ_k, Ä),
#     ∂/∂w = Σ_k ū_k ż_L,k + β ζ_L,
# starting from the adjoints (0, ū_k w, β w) of (z_L, ż_L,k, ζ_L). A block of p points
# is one matrix of (K + 2) p columns [primal | tangents 1..K | second order], with
# B_l = [[z, ż_k, ζ], [x, c_k, 0], [1, 0, 0]]. Padded points have zero adjoints.
# The score-free gradient runs the Hessian kernel on such a matrix (its first (K + 1) p
# columns), factors ∇²φ(x_i), and continues on the same tape: nothing is recomputed.
# ---------------------------------------------------------------------------


@njit(**JIT)
def _weighted_tangent(gram, a, k, directions, points, out):
    """out = (G ȧ)_k = Σ_l G_kl ȧ_l over the points, G per point in ``gram`` (K, K, p).

    Every loop here and in the second-order kernels below runs over views indexed from 0:
    with an offset index (a[first + i]) numba's negative-index handling keeps LLVM from
    vectorizing them."""
    for l in range(directions):
        weight = gram[k, l]
        tangent = a[(1 + l) * points : (2 + l) * points]
        if l == 0:
            for i in range(points):
                out[i] = weight[i] * tangent[i]
        else:
            for i in range(points):
                out[i] += weight[i] * tangent[i]


@njit(**JIT)
def _adjoint_activation_second(adjoint, slope, curvature, kappa, pre, out, points, directions,
                               gram, weighted):  # fmt: skip
    """(A, Ȧ_k, Ä) into ``out`` from the adjoints (Z, Ż_k, Z̈) in ``adjoint`` (comment above).

    ``gram`` (K, K, p) holds G per point, or has no entries for G = I; ``weighted`` is
    scratch for (G ȧ)_k.
    """
    second = (1 + directions) * points
    for o in range(slope.shape[0]):
        g = adjoint[o]
        a = pre[o]
        g0, g2 = g[:points], g[second : second + points]
        r0, r2 = out[o, :points], out[o, second : second + points]
        s1, s2, k_row = slope[o], curvature[o], kappa[o]
        for i in range(points):
            r0[i] = g0[i] * s1[i] + g2[i] * k_row[i]
        for i in range(points):
            r2[i] = g2[i] * s1[i]
        for k in range(directions):
            first = (1 + k) * points
            g1, tangent = g[first : first + points], a[first : first + points]
            r1 = out[o, first : first + points]
            if gram.size:
                _weighted_tangent(gram, a, k, directions, points, weighted)
            else:
                weighted[:points] = tangent
            for i in range(points):
                r0[i] += g1[i] * s2[i] * tangent[i]
            for i in range(points):
                r1[i] = g1[i] * s1[i] + 2.0 * g2[i] * s2[i] * weighted[i]


@njit(**JIT)
def _adjoint_step_second(table, layer, adjoint, slope, curvature, kappa, pre, out, points,
                         directions, gram, weighted):  # fmt: skip
    """(A, Ȧ_k, Ä) of hidden layer ``layer`` into ``out`` from the adjoints of its outputs."""
    unit = table[layer, _UNIT_ROW]
    rows = table[layer, _ROWS]
    _adjoint_activation_second(adjoint, slope[unit : unit + rows], curvature[unit : unit + rows],
                               kappa[unit : unit + rows], pre[unit : unit + rows], out, points,
                               directions, gram, weighted)  # fmt: skip


@njit(**JIT)
def _point_rows(table, x, directions, tangents, start, count, points, inputs):
    """Rows [x, c_1..c_K], [1, 0..0] and their zero padding of every B_l in ``inputs``.

    Points x[start : start + count]: x in the first ``points`` columns, then K =
    ``tangents`` groups of ``points`` columns, c_k of point i at directions[i, j K + k]
    (j the coordinate); every other column of these rows is 0.
    """
    depth, dim = table.shape[0], x.shape[1]
    for layer in range(depth):
        base = table[layer, _INPUT_ROW] + table[layer, _PREV]
        inputs[base : table[layer, _INPUT_ROW] + table[layer, _INPUTS]] = 0.0
        for j in range(dim):
            row = inputs[base + j]
            for i in range(count):
                row[i] = x[start + i, j]
            for k in range(tangents):
                first = (1 + k) * points
                for i in range(count):
                    row[first + i] = directions[start + i, j * tangents + k]
        inputs[base + dim, :points] = 1.0


@njit(**JIT)
def _forward(table, packed, inputs, pre, slope, curvature, exponentials, points, tangents,
             value_of_last):  # fmt: skip
    """[a_{l+1}, ȧ_{l+1,k}] = M_l B_l and the activation terms, layer by layer.

    ``inputs`` holds the point rows of every B_l (``_point_rows``); each layer writes
    [z, ż_k] into the rows of the next B_l (after B_{L-1}: [z_L, ż_L,k], z_L only if
    ``value_of_last``, which φ itself needs). Works on the first (1 + K) ``points`` columns.
    """
    depth = table.shape[0]
    last = table[depth - 1]
    top_row = last[_INPUT_ROW] + last[_INPUTS]
    columns = (1 + tangents) * points
    for layer in range(depth):
        rows = table[layer, _ROWS]
        unit = table[layer, _UNIT_ROW]
        following = table[layer + 1, _INPUT_ROW] if layer < depth - 1 else top_row
        _multiply(_layer_weights(table, packed, layer), _layer_inputs(table, inputs, layer),
                  pre[unit : unit + rows], 0, columns)  # fmt: skip
        want_value = layer < depth - 1 or value_of_last
        _activate(pre[unit : unit + rows], inputs[following : following + rows],
                  slope[unit : unit + rows], curvature[unit : unit + rows], exponentials, points,
                  want_value, tangents)  # fmt: skip


@njit(**JIT)
def _second_order_forward(table, packed, inputs, pre, slope, curvature, kappa, points,
                          directions, gram):  # fmt: skip
    """The second-order channel t, ζ of every layer and κ (comment above) from a first-order
    tape in K = ``directions`` directions (``_forward``): t_1 = 0, t_{l+1} = Wz_l ζ_l.

    ``gram`` (K, K, p) holds G per point, or has no entries for G = I.
    """
    depth = table.shape[0]
    last = table[depth - 1]
    top_row = last[_INPUT_ROW] + last[_INPUTS]
    second = (1 + directions) * points
    form = np.empty(points)  # q = ȧᵀ G ȧ
    weighted = np.empty(points)
    for layer in range(depth):
        rows = table[layer, _ROWS]
        unit = table[layer, _UNIT_ROW]
        following = table[layer + 1, _INPUT_ROW] if layer < depth - 1 else top_row
        prev = table[layer, _PREV]
        a_layer = pre[unit : unit + rows]
        if layer == 0:  # a_1 = W0 x + b0 is linear in x
            a_layer[:, second : second + points] = 0.0
        else:
            _multiply(_layer_weights(table, packed, layer)[:, :prev],
                      _layer_inputs(table, inputs, layer)[:prev], a_layer, second,
                      second + points)  # fmt: skip
        for o in range(rows):
            a = a_layer[o]
            form[:] = 0.0
            for k in range(directions):
                first = (1 + k) * points
                tangent = a[first : first + points]
                if gram.size:
                    _weighted_tangent(gram, a, k, directions, points, weighted)
                else:
                    weighted[:] = tangent
                for i in range(points):
                    form[i] += tangent[i] * weighted[i]
            t = a[second : second + points]
            z = inputs[following + o, second : second + points]
            s1, s2, k_row = slope[unit + o], curvature[unit + o], kappa[unit + o]
            for i in range(points):
                z[i] = s2[i] * form[i] + s1[i] * t[i]
            for i in range(points):
                k_row[i] = s2[i] * (1.0 - 2.0 * s1[i]) * form[i] + s2[i] * t[i]


@njit(**JIT)
def _second_order_reverse(table, packed, inputs, pre, slope, curvature, kappa, start, count,
                          points, directions, gram, first_seed, second_seed, out):  # fmt: skip
    """∂/∂(packed θ) of Σ_{i in block} [Σ_k ū_ik φ̇(x_i; c_ik) + β ⟨S_i, ∇²φ(x_i)⟩] into ``out``.

    From the second-order tape (``_forward`` then ``_second_order_forward`` with the same
    ``gram``); ū = ``first_seed`` (n, K), or no first-order term if it has no rows;
    β = ``second_seed``.
    """
    depth = table.shape[0]
    _, _, _, top_row, offset_w, widest = _block_layout(table, start, start + count)
    columns = (2 + directions) * points
    second = (1 + directions) * points
    last = table[depth - 1]
    work = np.empty((3, widest, columns))
    current, following, adjoint = work[0], work[1], work[2]
    adjoint[: last[_ROWS]] = 0.0  # the rest is written before it is read
    weighted = np.empty(points)
    top = inputs[top_row:]
    for o in range(last[_ROWS]):  # adjoints (0, ū_k w, β w) of (z_L, ż_L,k, ζ_L)
        w_o = packed[offset_w + o]
        adjoint[o, second : second + count] = second_seed * w_o
        total = second_seed * sum4(top[o, second:], count)
        if first_seed.shape[0] > 0:
            for k in range(directions):
                begin = (1 + k) * points
                for i in range(count):
                    seed = first_seed[start + i, k]
                    adjoint[o, begin + i] = seed * w_o
                    total += seed * top[o, begin + i]
        out[offset_w + o] = total

    _adjoint_step_second(table, depth - 1, adjoint, slope, curvature, kappa, pre, current, points,
                         directions, gram, weighted)  # fmt: skip
    for layer in range(depth - 1, -1, -1):
        rows = table[layer, _ROWS]
        width = table[layer, _INPUTS]
        prev = table[layer, _PREV]
        offset = table[layer, _OFFSET]
        gradient = out[offset : offset + rows * width].reshape((rows, width))
        np.dot(current[:rows], _layer_inputs(table, inputs, layer).T, gradient)
        if layer == 0:
            break
        _multiply(_layer_weights(table, packed, layer)[:, :prev].T, current[:rows], adjoint[:prev],
                  0, columns)  # fmt: skip
        _adjoint_step_second(table, layer - 1, adjoint, slope, curvature, kappa, pre, following,
                             points, directions, gram, weighted)  # fmt: skip
        current, following = following, current


@njit(**JIT)
def _tape_arrays(table, start, stop, directions, second_order):
    """Uninitialized (inputs, pre, slope, curvature) of a tape of K = ``directions`` tangent
    passes of the points [start, stop), with room for the second-order channel if asked."""
    _, points, units, top_row, _, _ = _block_layout(table, start, stop)
    columns = (1 + directions + (1 if second_order else 0)) * points
    rows = top_row + table[table.shape[0] - 1, _ROWS]
    return (
        np.empty((rows, columns)),
        np.empty((units, columns)),
        np.empty((units, points)),
        np.empty((units if directions else 0, points)),
    )


@njit(**JIT)
def _hessian_vjp_block(table, packed, x, factors, start, stop, out):
    """∂/∂(packed θ) of Σ_{i in [start, stop)} Σ_m φ̈(x_i; c_im) into ``out`` (packed layout).

    ``factors`` (n, d K) holds C_i (d, K) row-major: c_im[j] = factors[i, j K + m].
    """
    directions = factors.shape[1] // x.shape[1]
    count, points, units, _, _, _ = _block_layout(table, start, stop)
    inputs, pre, slope, curvature = _tape_arrays(table, start, stop, directions, True)
    kappa = np.empty((units, points))
    identity = np.empty((0, 0, 0))
    _point_rows(table, x, factors, directions, start, count, points, inputs)
    _forward(table, packed, inputs, pre, slope, curvature, np.empty(points), points, directions,
             False)  # fmt: skip
    _second_order_forward(table, packed, inputs, pre, slope, curvature, kappa, points, directions,
                          identity)  # fmt: skip
    _second_order_reverse(table, packed, inputs, pre, slope, curvature, kappa, start, count,
                          points, directions, identity, np.empty((0, directions)), 1.0,
                          out)  # fmt: skip


@njit(**JIT)
def _point_weights(inverses, start, count, points):
    """G = S_i = ``inverses[i]`` of the points [start, start + count) as (d, d, points),
    contiguous over the points, 0 for padded points."""
    dim = inverses.shape[1]
    gram = np.zeros((dim, dim, points))
    for i in range(count):
        for k in range(dim):
            for m in range(dim):
                gram[k, m, i] = inverses[start + i, k, m]
    return gram


@njit(**JIT)
def _tangents(mode, dim):
    """Number of tangent passes of a first-order mode: 1 (_MAP_VJP), d (_HESSIAN), else 0."""
    if mode == _MAP_VJP:
        return 1
    if mode == _HESSIAN:
        return dim
    return 0


@njit(**JIT)
def _run_block(table, packed, x, u, start, stop, mode, out, inputs, pre, slope, curvature):
    """Points x[start:stop] through the network, results into the flat array ``out``.

    mode _POTENTIAL: φ(x_i) into out[i]; _MAP: T(x_i) into out[i d : (i + 1) d];
    _HESSIAN: T(x_i), then ∇²φ(x_i) row-major, into out[i (d + d²) : (i + 1)(d + d²)]
    (u: the directions e_1..e_d, ``_basis_directions``); _MAP_VJP: the block's ∂φ̇/∂θ
    into out in the packed layout (∂φ̇/∂M_l at M_l's offset, then ∂φ̇/∂w; ∂φ̇/∂c = 0).
    Work arrays from ``_tape_arrays``; after the call they hold the forward tape.
    Layer l's rows in the stacked arrays: units (``pre``, ``slope``, ``curvature``)
    from table[l, _UNIT_ROW], B_l (``inputs``) from table[l, _INPUT_ROW]; the rows
    after B_{L-1} hold [z_L, ż_L].
    """
    depth, dim = table.shape[0], x.shape[1]
    count, points, _, top_row, offset_w, widest = _block_layout(table, start, stop)
    tangents = _tangents(mode, dim)
    columns = (1 + tangents) * points
    last = table[depth - 1]
    _point_rows(table, x, u, tangents, start, count, points, inputs)
    _forward(table, packed, inputs, pre, slope, curvature, np.empty(points), points, tangents,
             mode == _POTENTIAL)  # fmt: skip

    top = inputs[top_row:]
    if mode == _POTENTIAL:
        for i in range(count):
            out[start + i] = packed[offset_w + last[_ROWS]]  # c
        for o in range(last[_ROWS]):
            w_o = packed[offset_w + o]
            for i in range(count):
                out[start + i] += w_o * top[o, i]
        return

    work = np.empty((3, widest, columns))
    current, following, adjoint = work[0], work[1], work[2]
    q_start = tangents * points
    stride = dim + dim * dim if mode == _HESSIAN else dim
    # adjoint of z_L from φ̇ = wᵀ ż_L (and φ = wᵀ z_L): [0, w]
    for o in range(last[_ROWS]):
        adjoint[o, :q_start] = 0.0
        adjoint[o, q_start : q_start + points] = packed[offset_w + o]
        if mode == _MAP_VJP:  # ∂φ̇/∂w = Σ_i ż_L
            out[offset_w + o] = sum4(top[o, points:], points)
    _adjoint_step(table, depth - 1, adjoint, slope, curvature, pre, current, points, tangents)
    for layer in range(depth - 1, -1, -1):
        rows = table[layer, _ROWS]
        width = table[layer, _INPUTS]
        prev = table[layer, _PREV]
        offset = table[layer, _OFFSET]
        pq = current[:rows]
        if mode == _MAP_VJP:  # ∂φ̇/∂M_l = [P, Q] B_lᵀ
            gradient = out[offset : offset + rows * width].reshape((rows, width))
            np.dot(pq, _layer_inputs(table, inputs, layer).T, gradient)
            if layer == 0:
                break
            needed = prev  # only Wzᵀ [P, Q]
        else:
            needed = prev + _LANES * ((dim + _LANES - 1) // _LANES)  # and Wxᵀ [P, Q]
        _multiply(_layer_weights(table, packed, layer)[:, :needed].T, pq, adjoint[:needed], 0,
                  columns)  # fmt: skip
        if mode != _MAP_VJP:  # T += Wxᵀ Q, ∇²φ e_k += Wxᵀ P_k
            for j in range(dim):
                row = adjoint[prev + j]
                for i in range(count):
                    out[(start + i) * stride + j] += row[q_start + i]
                for k in range(tangents):
                    for i in range(count):
                        out[(start + i) * stride + dim + j * dim + k] += row[k * points + i]
        if layer == 0:
            break
        _adjoint_step(table, layer - 1, adjoint, slope, curvature, pre, following, points,
                      tangents)  # fmt: skip
        current, following = following, current


@njit(**JIT)
def _evaluate_block(table, packed, x, u, start, stop, mode, out):
    """``_run_block`` with its own work arrays; _HESSIAN_VJP: ``_hessian_vjp_block``."""
    if mode == _HESSIAN_VJP:
        _hessian_vjp_block(table, packed, x, u, start, stop, out)
        return
    tangents = _tangents(mode, x.shape[1])
    inputs, pre, slope, curvature = _tape_arrays(table, start, stop, tangents, False)
    _run_block(table, packed, x, u, start, stop, mode, out, inputs, pre, slope, curvature)


@njit(**JIT)
def _basis_directions(n, dim):
    """The directions e_1..e_d of every point in the layout of ``_point_rows``: (n, d²)."""
    directions = np.zeros((n, dim * dim))
    for i in range(n):
        for j in range(dim):
            directions[i, j * dim + j] = 1.0
    return directions


@njit(**JIT)
def _output_size(mode, n, dim):
    """Length of the flat output of a mode without parameter gradient."""
    if mode == _POTENTIAL:
        return n
    if mode == _HESSIAN:
        return n * (dim + dim * dim)
    return n * dim


@njit(**JIT)
def _unpack_gradient(results, index, num_params):
    """θ-gradient from per-block packed gradients (blocks, packed size): the blocks summed in
    block order (independent of the thread count), then θ[index[j]] <- packed entry j."""
    total = results[0].copy()
    for b in range(1, results.shape[0]):
        for k in range(total.size):
            total[k] += results[b, k]
    gradient = np.zeros(num_params)
    for j in range(index.size):
        if index[j] >= 0:
            gradient[index[j]] = total[j]
    return gradient


def _make_evaluate(parallel):
    """The batch kernel over blocks of points, serial (range) or parallel (prange)."""
    loop = prange if parallel else range

    @njit(parallel=parallel, **JIT)
    def evaluate(theta, table, index, x, u, mode):
        n, dim = x.shape
        packed = _pack(theta, index)
        bounds = block_bounds(n, _BLOCK_POINTS, _LANES)
        blocks = bounds.size - 1
        directions = _basis_directions(n, dim) if mode == _HESSIAN else u
        if mode == _MAP_VJP or mode == _HESSIAN_VJP:  # one packed gradient per block
            results = np.zeros((blocks, packed.size))
            for b in loop(blocks):
                _evaluate_block(table, packed, x, directions, bounds[b], bounds[b + 1], mode,
                                results[b])  # fmt: skip
            return _unpack_gradient(results, index, theta.size)
        out = np.zeros(_output_size(mode, n, dim))  # the blocks fill disjoint parts
        for b in loop(blocks):
            _evaluate_block(table, packed, x, directions, bounds[b], bounds[b + 1], mode, out)
        return out

    return evaluate


_EVALUATE_SERIAL = _make_evaluate(parallel=False)
_EVALUATE_PARALLEL = _make_evaluate(parallel=True)


# ---------------------------------------------------------------------------
# The log-determinant (DESIGN §4b, ``neural.training.kl``): ∇²φ(x_i) = R_i R_iᵀ, log det, C_i = R_i⁻ᵀ,
# and the fused kernels of the score-free KL gradient. They live here, with the block
# kernels they call, because numba's cache tracks only the file that defines a kernel.
# ---------------------------------------------------------------------------


@njit(**JIT)
def _cholesky_point(hessian, lower, factor):
    """H = R Rᵀ (R lower, into ``lower``) and C = R⁻ᵀ (upper, into ``factor``) of one (d, d) H.

    Returns log det H = 2 Σ_j log R_jj, or NaN if H is not numerically positive definite
    (a pivot that is not > 0, or NaN) or C is not finite; the outputs are then partial.
    """
    d = hessian.shape[0]
    for j in range(d):
        pivot = hessian[j, j]
        for k in range(j):
            pivot -= lower[j, k] * lower[j, k]
        if not pivot > 0.0:
            return np.nan
        lower[j, j] = math.sqrt(pivot)
        for r in range(j + 1, d):
            value = hessian[r, j]
            for k in range(j):
                value -= lower[r, k] * lower[j, k]
            lower[r, j] = value / lower[j, j]
    total = 0.0
    for j in range(d):
        total += math.log(lower[j, j])
    largest = 0.0
    for column in range(d):  # R⁻¹ by forward substitution, stored transposed (C = R⁻ᵀ)
        factor[column, column] = 1.0 / lower[column, column]
        for r in range(column + 1, d):
            value = 0.0
            for k in range(column, r):
                value -= lower[r, k] * factor[column, k]
            factor[column, r] = value / lower[r, r]
        for r in range(column):
            factor[column, r] = 0.0
        for r in range(column, d):
            largest = max(largest, abs(factor[column, r]))
    if not (largest <= _LARGEST_FLOAT and abs(total) <= _LARGEST_FLOAT):
        return np.nan
    return 2.0 * total


@njit(**JIT)
def _cholesky_block(outputs, quadratic, start, count, points, gram, inverses, log_det):
    """``_cholesky_point`` for the points [start, start + count) at once, each loop over the
    points (so that it vectorizes), with the same operations in the same order: H_i = the
    Hessian kernel's ∇²φ(x_i) (row-major after T in ``outputs``, d + d² per point) + Q;
    S_i = C_i C_iᵀ = H_i⁻¹ into ``gram`` (d, d, points; 0 for padded points) and
    ``inverses[i]``; log det H_i into ``log_det[i]`` (NaN where ``_cholesky_point`` gives
    NaN, the other outputs then partial). Returns the number of NaN log-determinants."""
    d = quadratic.shape[0]
    stride = d + d * d
    hessian = np.empty((d, d, count))
    lower = np.zeros((d, d, count))
    factor = np.zeros((d, d, count))
    failed = np.zeros(count, dtype=np.bool_)
    for j in range(d):
        for k in range(d):
            entry, shift = hessian[j, k], quadratic[j, k]
            for i in range(count):
                entry[i] = outputs[(start + i) * stride + d + j * d + k] + shift
    pivot = np.empty(count)
    value = np.empty(count)
    for j in range(d):
        pivot[:] = hessian[j, j]
        for k in range(j):
            row = lower[j, k]
            for i in range(count):
                pivot[i] -= row[i] * row[i]
        diagonal = lower[j, j]
        for i in range(count):
            failed[i] |= not pivot[i] > 0.0
            diagonal[i] = math.sqrt(pivot[i]) if pivot[i] > 0.0 else 1.0
        for r in range(j + 1, d):
            value[:] = hessian[r, j]
            for k in range(j):
                left, right = lower[r, k], lower[j, k]
                for i in range(count):
                    value[i] -= left[i] * right[i]
            entry = lower[r, j]
            for i in range(count):
                entry[i] = value[i] / diagonal[i]
    largest = np.zeros(count)
    for column in range(d):  # R⁻¹ by forward substitution, stored transposed (C = R⁻ᵀ)
        entry, diagonal = factor[column, column], lower[column, column]
        for i in range(count):
            entry[i] = 1.0 / diagonal[i]
        for r in range(column + 1, d):
            value[:] = 0.0
            for k in range(column, r):
                left, right = lower[r, k], factor[column, k]
                for i in range(count):
                    value[i] -= left[i] * right[i]
            entry, diagonal = factor[column, r], lower[r, r]
            for i in range(count):
                entry[i] = value[i] / diagonal[i]
        for r in range(column, d):
            entry = factor[column, r]
            for i in range(count):
                largest[i] = max(largest[i], abs(entry[i]))
    failures = 0
    for i in range(count):
        total = 0.0
        for j in range(d):
            total += math.log(lower[j, j, i])
        finite = largest[i] <= _LARGEST_FLOAT and abs(total) <= _LARGEST_FLOAT
        log_det[start + i] = 2.0 * total if finite and not failed[i] else np.nan
        failures += np.isnan(log_det[start + i])
    gram[:, :, count:] = 0.0
    for j in range(d):
        for k in range(d):
            entry = gram[j, k]
            entry[:count] = 0.0
            for m in range(d):
                left, right = factor[j, m], factor[k, m]
                for i in range(count):
                    entry[i] += left[i] * right[i]
            for i in range(count):
                inverses[start + i, j, k] = entry[i]
    return failures


@njit(**JIT)
def _cholesky_kernel(hessians, log_det, factors):
    """log det H_i and C_i = R_i⁻ᵀ of every point (``_cholesky_point``); returns the number
    of points whose H is not numerically positive definite (their outputs are partial)."""
    n, d = hessians.shape[0], hessians.shape[1]
    lower = np.zeros((d, d))
    failures = 0
    for i in range(n):
        log_det[i] = _cholesky_point(hessians[i], lower, factors[i])
        failures += np.isnan(log_det[i])
    return failures


@njit(**JIT)
def _tape_shapes(table, start, stop, directions):
    """(rows, units, columns, points): inputs and pre of the Hessian kernel's tape with the
    second-order channel are (rows, columns) and (units, columns), slope, curvature and κ
    (units, points) (``_tape_arrays``)."""
    _, points, units, top_row, _, _ = _block_layout(table, start, stop)
    columns = (2 + directions) * points
    return top_row + table[table.shape[0] - 1, _ROWS], units, columns, points


@njit(**JIT)
def _tape_views(buffer, table, start, stop, directions):
    """(inputs, pre, slope, curvature, κ) of the points [start, stop): C-contiguous views of
    consecutive parts of the 1D ``buffer``."""
    rows, units, columns, points = _tape_shapes(table, start, stop, directions)
    pre_start = rows * columns
    slope_start = pre_start + units * columns
    curvature_start = slope_start + units * points
    kappa_start = curvature_start + units * points
    return (
        buffer[:pre_start].reshape((rows, columns)),
        buffer[pre_start:slope_start].reshape((units, columns)),
        buffer[slope_start:curvature_start].reshape((units, points)),
        buffer[curvature_start:kappa_start].reshape((units, points)),
        buffer[kappa_start : kappa_start + units * points].reshape((units, points)),
    )


def _make_log_det_kernels(parallel):
    """(forward, reverse) of the score-free KL gradient (``neural.training.kl``) over blocks of points.

    forward: per block the Hessian kernel (``_run_block``, mode _HESSIAN) on a tape with
    room for the second-order channel, kept in row b of one buffer; per point H_i (+ Q,
    the quadratic part) factored: log det H_i and S_i = H_i⁻¹ = C_i C_iᵀ; then the
    second-order channel weighted by S_i (``_second_order_forward``), which needs no
    cotangent. Returns (tape, T, S, log det, number of H_i not positive definite).
    reverse: per block the reverse sweep (``_second_order_reverse``) with the cotangents
    u_i on T and β S_i on ∇²φ, on that tape; the block gradients are summed in block order
    (independent of the thread count).
    """
    loop = prange if parallel else range

    @njit(parallel=parallel, **JIT)
    def forward(theta, table, index, x, quadratic):
        n, dim = x.shape
        packed = _pack(theta, index)
        bounds = block_bounds(n, _BLOCK_POINTS, _LANES)
        blocks = bounds.size - 1
        longest = 0
        for b in range(blocks):
            longest = max(longest, bounds[b + 1] - bounds[b])
        rows, units, columns, points = _tape_shapes(table, 0, longest, dim)
        tape = np.empty((blocks, (rows + units) * columns + 3 * units * points))
        directions = _basis_directions(n, dim)
        stride = dim + dim * dim
        outputs = np.zeros(n * stride)  # per point T, then ∇²φ row-major (mode _HESSIAN)
        inverses = np.empty((n, dim, dim))
        log_det = np.empty(n)
        failures = np.zeros(blocks, dtype=np.int64)
        for b in loop(blocks):
            start, stop = bounds[b], bounds[b + 1]
            inputs, pre, slope, curvature, kappa = _tape_views(tape[b], table, start, stop, dim)
            _run_block(table, packed, x, directions, start, stop, _HESSIAN, outputs, inputs, pre,
                       slope, curvature)  # fmt: skip
            count, points = stop - start, slope.shape[1]
            gram = np.empty((dim, dim, points))
            failures[b] = _cholesky_block(outputs, quadratic, start, count, points, gram,
                                          inverses, log_det)  # fmt: skip
            _second_order_forward(table, packed, inputs, pre, slope, curvature, kappa, points,
                                  dim, gram)  # fmt: skip
        y = np.empty((n, dim))
        for i in range(n):
            for j in range(dim):
                y[i, j] = outputs[i * stride + j]
        return tape, y, inverses, log_det, failures.sum()

    @njit(parallel=parallel, **JIT)
    def reverse(tape, theta, table, index, inverses, cotangent, second_seed):
        packed = _pack(theta, index)
        n, dim = cotangent.shape
        bounds = block_bounds(n, _BLOCK_POINTS, _LANES)
        blocks = bounds.size - 1
        results = np.zeros((blocks, packed.size))
        for b in loop(blocks):
            start, stop = bounds[b], bounds[b + 1]
            inputs, pre, slope, curvature, kappa = _tape_views(tape[b], table, start, stop, dim)
            count, points = stop - start, slope.shape[1]
            gram = _point_weights(inverses, start, count, points)
            _second_order_reverse(table, packed, inputs, pre, slope, curvature, kappa, start,
                                  count, points, dim, gram, cotangent, second_seed,
                                  results[b])  # fmt: skip
        return _unpack_gradient(results, index, theta.size)

    return forward, reverse


_LOG_DET_SERIAL = _make_log_det_kernels(parallel=False)
_LOG_DET_PARALLEL = _make_log_det_kernels(parallel=True)


def _use_parallel(num_points: int) -> bool:
    """Parallel kernels when there are at least two blocks of points and two threads."""
    return num_points > _BLOCK_POINTS and numba.get_num_threads() > 1


def _evaluate(architecture, theta, x, u, mode, parallel=None):
    """The flat output of a kernel mode (``_evaluate_block``); inputs unchecked (u = x if unused).

    ``parallel`` None chooses by the number of points (``_use_parallel``).
    """
    if parallel is None:
        parallel = _use_parallel(x.shape[0])
    kernel = _EVALUATE_PARALLEL if parallel else _EVALUATE_SERIAL
    table, index = architecture.kernel_tables
    return kernel(theta, table, index, x, u, mode)


# Unchecked versions of the public functions (θ, x, u already validated; θ may be
# outside the constraint set, e.g. for finite differences).


def _potential(architecture, theta, x):
    values = _evaluate(architecture, theta, x, x, _POTENTIAL)
    if architecture.has_quadratic_part:
        values += 0.5 * np.einsum("ij,jk,ik->i", x, architecture.quadratic_matrix(theta), x)
    return values


def _transport_map(architecture, theta, x):
    values = _evaluate(architecture, theta, x, x, _MAP).reshape(x.shape)
    if architecture.has_quadratic_part:
        values += x @ architecture.quadratic_matrix(theta)  # Q symmetric
    return values


def _map_vjp(architecture, theta, x, u):
    """With the quadratic part: ∂/∂L Σ_i u_iᵀ L Lᵀ x_i = (Uᵀ X + Xᵀ U) L."""
    gradient = _evaluate(architecture, theta, x, u, _MAP_VJP)
    factor = architecture.quadratic_factor(theta)
    if factor is not None:
        coupling = u.T @ x
        gradient[-factor.size :] = ((coupling + coupling.T) @ factor).ravel()
    return gradient


def _hessian_vjp(architecture, theta, x, factors):
    """∇_θ Σ_i tr(C_iᵀ ∇²φ(x_i) C_i) for factors C (n, d, K); with L: 2 Σ_i C_i C_iᵀ L."""
    n, dim, directions = factors.shape
    flat = np.ascontiguousarray(factors.reshape(n, dim * directions))
    gradient = _evaluate(architecture, theta, x, flat, _HESSIAN_VJP)
    factor = architecture.quadratic_factor(theta)
    if factor is not None:
        cotangent = np.einsum("nik,njk->ij", factors, factors)
        gradient[-factor.size :] = (2.0 * cotangent @ factor).ravel()
    return gradient


def _hessian(architecture, theta, x):
    """∇²φ(x_i) from the d tangent passes along e_1..e_d, run at once (plus Q)."""
    n, dim = x.shape
    out = _evaluate(architecture, theta, x, x, _HESSIAN).reshape(n, dim + dim * dim)
    hessians = np.ascontiguousarray(out[:, dim:].reshape(n, dim, dim))
    if architecture.has_quadratic_part:
        hessians += architecture.quadratic_matrix(theta)
    return hessians


# ---------------------------------------------------------------------------
# Pure functions on (architecture, θ, x)
# ---------------------------------------------------------------------------


def _check_architecture(architecture):
    if not isinstance(architecture, ICNNArchitecture):
        raise TypeError(
            f"architecture must be an ICNNArchitecture, got {type(architecture).__name__}"
        )


def _check_cotangent(u, x, architecture):
    u = as_points(u, "u", dim=architecture.dim)
    if u.shape != x.shape:
        raise ValueError(
            f"u must have the shape of x, {x.shape} (one cotangent per point), got {u.shape}"
        )
    return u


def potential(architecture: ICNNArchitecture, theta, x) -> np.ndarray:
    """φ_θ(x_i) for points x (n, d) -> (n,) (paper §3.4, the ICNN potential)."""
    _check_architecture(architecture)
    theta = architecture.check_params(theta, "theta")
    x = as_points(x, "x", dim=architecture.dim)
    return _potential(architecture, theta, x)


def transport_map(architecture: ICNNArchitecture, theta, x) -> np.ndarray:
    """T_θ(x_i) = ∇_x φ_θ(x_i) for points x (n, d) -> (n, d) (the map of §3.2, §3.4)."""
    _check_architecture(architecture)
    theta = architecture.check_params(theta, "theta")
    x = as_points(x, "x", dim=architecture.dim)
    return _transport_map(architecture, theta, x)


def map_vjp(architecture: ICNNArchitecture, theta, x, u) -> np.ndarray:
    """∇_θ Σ_i ⟨u_i, T_θ(x_i)⟩ -> (num_params,) for points x and cotangents u, both (n, d).

    The gradient of every loss of paper §3.4.1 (eq. 3.7 and the (gd, expl.),
    (gd, impl.) objectives) is of this form, with u computed outside the network
    (e.g. u_i = (ŝ(T(x_i)) + ∇V(T(x_i))) / n for eq. 3.7). Exact (second-order
    reverse mode), see the module docstring.
    """
    _check_architecture(architecture)
    theta = architecture.check_params(theta, "theta")
    x = as_points(x, "x", dim=architecture.dim)
    u = _check_cotangent(u, x, architecture)
    return _map_vjp(architecture, theta, x, u)


def hessian_vjp(architecture: ICNNArchitecture, theta, x, factors) -> np.ndarray:
    """∇_θ Σ_i ⟨C_i C_iᵀ, ∇²φ_θ(x_i)⟩ -> (num_params,), for points x (n, d), factors (n, d, K).

    The θ-VJP of the Hessian with the symmetric cotangents S_i = C_i C_iᵀ, i.e. the
    gradient of Σ_i Σ_m c_imᵀ ∇²φ_θ(x_i) c_im with the columns c_im of C_i frozen.
    With C_i C_iᵀ = H_i⁻¹ it is Σ_i tr(H_i⁻¹ ∂_θ H_i) = ∇_θ Σ_i log det H_i, the
    score-free part of the KL gradient (DESIGN §4b, ``neural.training.kl``). Third-order
    backpropagation (the comment above ``_hessian_vjp_block``).
    """
    _check_architecture(architecture)
    theta = architecture.check_params(theta, "theta")
    x = as_points(x, "x", dim=architecture.dim)
    factors = as_float_array(factors, "factors")
    if factors.ndim != 3 or factors.shape[:2] != x.shape or factors.shape[2] < 1:
        raise ValueError(
            f"factors must have shape ({x.shape[0]}, {x.shape[1]}, K), K >= 1 (one (d, K) "
            f"factor per point), got {factors.shape}"
        )
    require_finite(factors, "factors")
    return _hessian_vjp(architecture, theta, x, factors)


def hessian(architecture: ICNNArchitecture, theta, x) -> np.ndarray:
    """∇²_x φ_θ(x_i) for points x (n, d) -> (n, d, d), positive semidefinite for admissible θ."""
    _check_architecture(architecture)
    theta = architecture.check_params(theta, "theta")
    x = as_points(x, "x", dim=architecture.dim)
    return _hessian(architecture, theta, x)


# ---------------------------------------------------------------------------
# The network object
# ---------------------------------------------------------------------------


class ICNN:
    """An ICNN potential φ_θ with fixed, admissible parameters (paper §3.4).

    ICNN(dim, hidden, rng) draws θ with ``rng`` (see ``INIT_STD``);
    ICNN(dim, hidden, rng, anchors=samples) with every hidden unit bending at one of the
    samples (the sample-anchored initialization of the module docstring; ``slope``,
    default ``ANCHOR_SLOPE``);
    ICNN(dim, hidden, params=θ) uses the given θ, which must satisfy the
    constraints (project it first with ``ICNN.project`` / ``architecture.project``).
    ``quadratic`` and ``strong_convexity`` add ½ xᵀ(L Lᵀ + α I)x (module docstring).
    The parameters are a read-only copy; ``with_params`` returns a new network.

    Example (DESIGN §6)::

        net = ICNN(dim=2, hidden=(20, 20), rng=np.random.default_rng(0))
        net.num_params  # 541
        net.potential(x)  # (n,)
        net.map(x)  # (n, d)
        net.map_vjp(x, u)  # (541,)
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

    def __repr__(self) -> str:
        extra = ""
        if self.architecture.quadratic:
            extra += ", quadratic=True"
        if self.architecture.strong_convexity:
            extra += f", strong_convexity={self.architecture.strong_convexity}"
        return f"ICNN(dim={self.dim}, hidden={self.hidden}{extra}, num_params={self.num_params})"

    @classmethod
    def from_architecture(cls, architecture: ICNNArchitecture, params) -> ICNN:
        """A network with the given architecture and (admissible) parameters."""
        _check_architecture(architecture)
        return cls(
            architecture.dim,
            architecture.hidden,
            params=params,
            quadratic=architecture.quadratic,
            strong_convexity=architecture.strong_convexity,
        )

    @property
    def dim(self) -> int:
        return self.architecture.dim

    @property
    def hidden(self) -> tuple[int, ...]:
        return self.architecture.hidden

    @property
    def num_params(self) -> int:
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
        """A new network with the same architecture and parameters θ (checked, copied)."""
        return ICNN.from_architecture(self.architecture, theta)

    def project(self, theta) -> np.ndarray:
        """Projection of θ onto the constraint set (Wz_l, w clipped at 0), a new vector."""
        return self.architecture.project(theta)

    def is_admissible(self, theta=None) -> bool:
        """Whether θ (default: this network's parameters) satisfies Wz_l >= 0, w >= 0."""
        return self.architecture.is_admissible(self._params if theta is None else theta)

    def _points(self, x) -> np.ndarray:
        # the parameters were checked at construction and are read-only
        return as_points(x, "x", dim=self.architecture.dim)

    def potential(self, x) -> np.ndarray:
        """φ_θ(x_i) -> (n,)."""
        return _potential(self.architecture, self._params, self._points(x))

    def map(self, x) -> np.ndarray:
        """T_θ(x_i) = ∇_x φ_θ(x_i) -> (n, d)."""
        return _transport_map(self.architecture, self._params, self._points(x))

    def map_vjp(self, x, u) -> np.ndarray:
        """∇_θ Σ_i ⟨u_i, T_θ(x_i)⟩ -> (num_params,)."""
        x = self._points(x)
        u = _check_cotangent(u, x, self.architecture)
        return _map_vjp(self.architecture, self._params, x, u)

    def hessian(self, x) -> np.ndarray:
        """∇²_x φ_θ(x_i) -> (n, d, d)."""
        return _hessian(self.architecture, self._params, self._points(x))

    def hessian_vjp(self, x, factors) -> np.ndarray:
        """∇_θ Σ_i ⟨C_i C_iᵀ, ∇²φ_θ(x_i)⟩ -> (num_params,) (``neural.icnn.hessian_vjp``)."""
        return hessian_vjp(self.architecture, self._params, x, factors)
