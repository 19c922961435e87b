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

All parameters live in one flat float64 vector θ, in the order
W0 (h_1, d), b0 (h_1), then for l = 1, ..., L-1: Wz_l (h_{l+1}, h_l), b_l (h_{l+1}),
Wx_l (h_{l+1}, d), then w (h_L), c (1); matrices row-major. ``views(θ)`` gives the
named blocks.

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
- hessian: P is also the tangent of g along u, so ∇²φ u = W0ᵀ P_1 + Σ_l Wx_lᵀ P_{l+1};
  the Hessian is assembled from the d basis directions.

Kernels are batch-parallel over blocks of points. The parameter gradient is summed
per block of points (blocks depend on n only) and the block sums are added in a
fixed order, so results do not depend on the number of threads (bit for bit).

Initialization (the paper does not specify it; the project's convention): every
entry of θ drawn from N(0, 0.1²) with the given ``numpy.random.Generator``, then
projected onto the constraint set (Wz_l ≥ 0 and w ≥ 0 clipped at 0).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numba
import numpy as np
from numba import njit, prange

from neural._elementwise import softplus_block
from neural._validate import as_float_array, as_points, positive_int, require_generator

__all__ = [
    "ICNN",
    "ICNNArchitecture",
    "LayerParams",
    "hessian",
    "map_vjp",
    "potential",
    "transport_map",
]

INIT_STD = 0.1
"""Standard deviation of the initial parameters (entries N(0, INIT_STD²), then projected)."""

_BLOCK_POINTS = 64
"""Points are processed in contiguous blocks of about this many (boundaries depend on n only)."""


_JIT = {"cache": True, "fastmath": False, "error_model": "numpy", "nogil": True}


# ---------------------------------------------------------------------------
# Architecture and parameter layout
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class LayerParams:
    """Views of one layer's parameters: a = weight_z z_prev + bias + weight_x x.

    ``weight_z`` is None for the first layer (a_1 = W0 x + b0, weight_x = W0).
    """

    weight_z: np.ndarray | None
    weight_x: np.ndarray
    bias: np.ndarray


@dataclass(frozen=True)
class ICNNArchitecture:
    """Input dimension and hidden widths of an ICNN; owns the layout of θ.

    dim     input dimension d >= 1
    hidden  widths (h_1, ..., h_L), depth L >= 1, every h_l >= 1
    """

    dim: int
    hidden: tuple[int, ...]

    def __post_init__(self):
        positive_int(self.dim, "dim")
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
        """int64 array (d, h_1, ..., h_L) handed to the kernels."""
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
        return tuple(blocks)

    @cached_property
    def num_params(self) -> int:
        """Length m of θ (541 for dim 2, hidden (20, 20))."""
        _, offset, shape = self._blocks[-1]
        return offset + int(np.prod(shape))

    @cached_property
    def layout(self) -> np.ndarray:
        """int64 offsets handed to the kernels: per layer (Wz or -1, Wx, b), then w, c."""
        offsets = {name: offset for name, offset, _ in self._blocks}
        layout = []
        for layer in range(self.depth):
            if layer == 0:
                layout += [-1, offsets["W0"], offsets["b0"]]
            else:
                layout += [offsets[f"Wz{layer}"], offsets[f"Wx{layer}"], offsets[f"b{layer}"]]
        layout += [offsets["w"], offsets["c"]]
        return np.array(layout, dtype=np.int64)

    @cached_property
    def _constrained_slices(self) -> tuple[slice, ...]:
        return tuple(
            slice(offset, offset + int(np.prod(shape)))
            for name, offset, shape in self._blocks
            if name.startswith("Wz") or name == "w"
        )

    @cached_property
    def constrained_mask(self) -> np.ndarray:
        """Boolean mask of the entries constrained to be >= 0 (every Wz_l and w)."""
        mask = np.zeros(self.num_params, dtype=bool)
        for name, offset, shape in self._blocks:
            if name.startswith("Wz") or name == "w":
                mask[offset : offset + int(np.prod(shape))] = True
        mask.setflags(write=False)
        return mask

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
        result = [LayerParams(None, named["W0"], named["b0"])]
        for layer in range(1, self.depth):
            result.append(LayerParams(named[f"Wz{layer}"], named[f"Wx{layer}"], named[f"b{layer}"]))
        return result

    def init_params(self, rng: np.random.Generator) -> np.ndarray:
        """Initial θ: entries N(0, INIT_STD²) drawn from ``rng``, then projected."""
        rng = require_generator(rng)
        theta = rng.normal(0.0, INIT_STD, size=self.num_params)
        return self.project(theta)

    def project(self, theta: np.ndarray) -> np.ndarray:
        """Euclidean projection of θ onto the constraint set: Wz_l, w clipped at 0 (a copy)."""
        theta = self.check_params(theta, "theta", require_admissible=False, copy=True)
        mask = self.constrained_mask
        theta[mask] = np.maximum(theta[mask], 0.0)
        return theta

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
        if not np.isfinite(array).all():
            raise ValueError(f"{name} contains NaN or infinite parameters")
        if require_admissible and min(array[sl].min() for sl in self._constrained_slices) < 0.0:
            count = int(np.count_nonzero(array[self.constrained_mask] < 0.0))
            raise ValueError(
                f"{name} violates the ICNN constraints (Wz_l >= 0 and w >= 0): {count} "
                f"negative constrained entries; project it first with project({name})"
            )
        if copy and array is theta:
            array = array.copy()
        return array


# ---------------------------------------------------------------------------
# numba kernels (unchecked: the public functions below validate their inputs)
#
# Points are processed in blocks of about _BLOCK_POINTS points. Inside a block,
# every activation array is stored unit-major, shape (units, points), so that the
# inner loops run over points: contiguous, vectorizable, and no sum is
# reassociated (fastmath=False). Block boundaries depend on n only; the parameter
# gradient is summed per block, then over blocks in block order.
# ---------------------------------------------------------------------------


@njit(**_JIT)
def _unit_offsets(widths):
    """Start of each hidden layer's rows in the (units, points) activation arrays."""
    depth = widths.size - 1
    offsets = np.zeros(depth + 1, dtype=np.int64)
    for layer in range(depth):
        offsets[layer + 1] = offsets[layer] + widths[layer + 1]
    return offsets


@njit(**_JIT)
def _block_bounds(num_points):
    """Blocks [bounds[b], bounds[b+1]) of about _BLOCK_POINTS points, a function of n only."""
    blocks = max(1, (num_points + _BLOCK_POINTS - 1) // _BLOCK_POINTS)
    bounds = np.empty(blocks + 1, dtype=np.int64)
    for b in range(blocks + 1):
        bounds[b] = (b * num_points) // blocks
    return bounds


@njit(**_JIT)
def _add_product(theta, offset, row_stride, column_stride, rows, columns, source, source_start,
                 target, target_start):  # fmt: skip
    """target[target_start + r, :] += Σ_c M[r, c] source[source_start + c, :].

    M[r, c] = theta[offset + r * row_stride + c * column_stride], so a stored weight
    block W (shape (rows, columns), row-major) is (columns, 1) and Wᵀ is (1, rows_W).
    Four target rows at a time share each source row load.
    """
    points = source.shape[1]
    r = 0
    while r + 4 <= rows:
        t0 = target[target_start + r]
        t1 = target[target_start + r + 1]
        t2 = target[target_start + r + 2]
        t3 = target[target_start + r + 3]
        for c in range(columns):
            base = offset + r * row_stride + c * column_stride
            m0 = theta[base]
            m1 = theta[base + row_stride]
            m2 = theta[base + 2 * row_stride]
            m3 = theta[base + 3 * row_stride]
            s = source[source_start + c]
            for i in range(points):
                v = s[i]
                t0[i] += m0 * v
                t1[i] += m1 * v
                t2[i] += m2 * v
                t3[i] += m3 * v
        r += 4
    while r < rows:
        t0 = target[target_start + r]
        for c in range(columns):
            m0 = theta[offset + r * row_stride + c * column_stride]
            s = source[source_start + c]
            for i in range(points):
                t0[i] += m0 * s[i]
        r += 1


@njit(**_JIT)
def _add_layer_gradient(grad, widths, layout, offsets, layer, p_current, q_current, value,
                        tangent_value, x_t, u_t):  # fmt: skip
    """Adds the block's ∂φ̇/∂(Wz_l, Wx_l, b_l) of one layer into ``grad``.

    ∂/∂Wz = Σ_i P_i z_iᵀ + Q_i ż_iᵀ, ∂/∂Wx = Σ_i P_i x_iᵀ + Q_i u_iᵀ, ∂/∂b = Σ_i P_i
    (module docstring) are the blocks of one product [P Q] @ [[z, x, 1], [ż, u, 0]],
    (width, 2 points) @ (2 points, prev + d + 1), done by BLAS (np.dot).
    """
    dim = widths[0]
    points = x_t.shape[1]
    width = widths[layer + 1]
    prev = widths[layer] if layer > 0 else 0
    prev_start = offsets[layer - 1] if layer > 0 else 0
    columns = prev + dim + 1
    left = np.empty((width, 2 * points))
    for o in range(width):
        p = p_current[o]
        q = q_current[o]
        row = left[o]
        for i in range(points):
            row[i] = p[i]
            row[points + i] = q[i]
    right = np.empty((2 * points, columns))
    for k in range(prev):
        z = value[prev_start + k]
        z_dot = tangent_value[prev_start + k]
        for i in range(points):
            right[i, k] = z[i]
            right[points + i, k] = z_dot[i]
    for j in range(dim):
        for i in range(points):
            right[i, prev + j] = x_t[j, i]
            right[points + i, prev + j] = u_t[j, i]
    for i in range(points):
        right[i, prev + dim] = 1.0
        right[points + i, prev + dim] = 0.0
    sums = np.dot(left, right)
    off_z = layout[3 * layer]
    off_x = layout[3 * layer + 1]
    off_b = layout[3 * layer + 2]
    for o in range(width):
        for k in range(prev):
            grad[off_z + o * prev + k] += sums[o, k]
        for j in range(dim):
            grad[off_x + o * dim + j] += sums[o, prev + j]
        grad[off_b + o] += sums[o, prev + dim]


@njit(**_JIT)
def _forward_block(theta, widths, layout, offsets, x_t, u_t, with_tangent, pre, value, slope,
                   curvature, tangent_pre, tangent_value, scratch):  # fmt: skip
    """Primal pass (a, s(a), s'(a), s''(a)) and, with the tangent, (ȧ, ż) along u.

    x_t, u_t are (d, points); the activation arrays (units, points). ``slope`` and
    ``curvature`` may have zero rows when not needed (then nothing is written).
    """
    dim = widths[0]
    depth = widths.size - 1
    points = x_t.shape[1]
    pre_flat = pre.reshape(pre.size)
    value_flat = value.reshape(value.size)
    slope_flat = slope.reshape(slope.size)
    curvature_flat = curvature.reshape(curvature.size)
    for layer in range(depth):
        width = widths[layer + 1]
        start = offsets[layer]
        off_z = layout[3 * layer]
        off_x = layout[3 * layer + 1]
        off_b = layout[3 * layer + 2]
        for o in range(width):
            row = pre[start + o]
            bias = theta[off_b + o]
            for i in range(points):
                row[i] = bias
        _add_product(theta, off_x, dim, 1, width, dim, x_t, 0, pre, start)
        if layer > 0:
            prev = widths[layer]
            _add_product(theta, off_z, prev, 1, width, prev, value, offsets[layer - 1], pre, start)
        lo = start * points
        hi = (start + width) * points
        softplus_block(
            pre_flat[lo:hi],
            value_flat[lo:hi],
            slope_flat[lo:hi] if slope_flat.size > 0 else slope_flat,
            curvature_flat[lo:hi] if curvature_flat.size > 0 else curvature_flat,
            scratch,
            hi - lo,
        )
        if with_tangent:
            for o in range(width):
                row = tangent_pre[start + o]
                for i in range(points):
                    row[i] = 0.0
            _add_product(theta, off_x, dim, 1, width, dim, u_t, 0, tangent_pre, start)
            if layer > 0:
                prev = widths[layer]
                _add_product(
                    theta, off_z, prev, 1, width, prev, tangent_value, offsets[layer - 1],
                    tangent_pre, start,
                )  # fmt: skip
            for o in range(width):
                a_dot = tangent_pre[start + o]
                z_dot = tangent_value[start + o]
                s1 = slope[start + o]
                for i in range(points):
                    z_dot[i] = s1[i] * a_dot[i]


@njit(**_JIT)
def _backward_block(theta, widths, layout, offsets, x_t, u_t, with_tangent, value, slope,
                    curvature, tangent_pre, tangent_value, q_current, p_current, q_next, p_next,
                    grad, map_out, hvp_out):  # fmt: skip
    """Reverse pass over a block: Q_l (= g_l) and, with the tangent, P_l (module docstring).

    Adds ∂φ̇/∂θ summed over the block into ``grad`` (if grad.size > 0), T(x)ᵀ into
    ``map_out`` (d, points) and (∇²φ(x) u)ᵀ into ``hvp_out`` (d, points) (if not
    empty). Q/P buffers are (widest, points).
    """
    dim = widths[0]
    depth = widths.size - 1
    points = x_t.shape[1]
    want_grad = grad.size > 0
    want_map = map_out.size > 0
    want_hvp = hvp_out.size > 0
    off_w = layout[3 * depth]
    width = widths[depth]
    last = offsets[depth - 1]
    for o in range(width):
        w_o = theta[off_w + o]
        q = q_current[o]
        s1 = slope[last + o]
        for i in range(points):
            q[i] = w_o * s1[i]
    if with_tangent:
        for o in range(width):
            w_o = theta[off_w + o]
            p = p_current[o]
            s2 = curvature[last + o]
            a_dot = tangent_pre[last + o]
            for i in range(points):
                p[i] = w_o * s2[i] * a_dot[i]
            if want_grad:
                z_dot = tangent_value[last + o]
                total = 0.0
                for i in range(points):
                    total += z_dot[i]
                grad[off_w + o] += total
    for layer in range(depth - 1, -1, -1):
        width = widths[layer + 1]
        off_z = layout[3 * layer]
        off_x = layout[3 * layer + 1]
        if want_grad:
            _add_layer_gradient(
                grad, widths, layout, offsets, layer, p_current, q_current, value,
                tangent_value, x_t, u_t,
            )  # fmt: skip
        if want_map:  # T += Wxᵀ Q
            _add_product(theta, off_x, 1, dim, dim, width, q_current, 0, map_out, 0)
        if want_hvp:  # ∇²φ u += Wxᵀ P
            _add_product(theta, off_x, 1, dim, dim, width, p_current, 0, hvp_out, 0)
        if layer == 0:
            break
        prev = widths[layer]
        prev_start = offsets[layer - 1]
        for k in range(prev):
            adj_q = q_next[k]
            for i in range(points):
                adj_q[i] = 0.0
        _add_product(theta, off_z, 1, prev, prev, width, q_current, 0, q_next, 0)  # Wzᵀ Q
        if with_tangent:
            for k in range(prev):
                adj_p = p_next[k]
                for i in range(points):
                    adj_p[i] = 0.0
            _add_product(theta, off_z, 1, prev, prev, width, p_current, 0, p_next, 0)  # Wzᵀ P
            for k in range(prev):
                adj_p = p_next[k]
                adj_q = q_next[k]
                s1 = slope[prev_start + k]
                s2 = curvature[prev_start + k]
                a_dot = tangent_pre[prev_start + k]
                for i in range(points):
                    adj_p[i] = adj_p[i] * s1[i] + adj_q[i] * s2[i] * a_dot[i]
                    adj_q[i] = adj_q[i] * s1[i]
            p_current, p_next = p_next, p_current
        else:
            for k in range(prev):
                adj_q = q_next[k]
                s1 = slope[prev_start + k]
                for i in range(points):
                    adj_q[i] = adj_q[i] * s1[i]
        q_current, q_next = q_next, q_current


@njit(**_JIT)
def _block_inputs(x, start, stop):
    """Transpose of x[start:stop] as a (d, points) array."""
    dim = x.shape[1]
    out = np.empty((dim, stop - start))
    for i in range(start, stop):
        for j in range(dim):
            out[j, i - start] = x[i, j]
    return out


@njit(**_JIT)
def _widths_summary(widths):
    """(total hidden units, widest layer)."""
    total = 0
    widest = 0
    for layer in range(1, widths.size):
        total += widths[layer]
        widest = max(widest, widths[layer])
    return total, widest


def _make_kernels(parallel):
    """Compile the batch kernels, serial (range) or parallel (prange) over blocks."""
    loop = prange if parallel else range
    jit = njit(parallel=parallel, **_JIT)

    @jit
    def potential_kernel(theta, widths, layout, x):
        n = x.shape[0]
        depth = widths.size - 1
        units, widest = _widths_summary(widths)
        offsets = _unit_offsets(widths)
        bounds = _block_bounds(n)
        out = np.empty(n)
        off_w = layout[3 * depth]
        off_c = layout[3 * depth + 1]
        last = offsets[depth - 1]
        for b in loop(bounds.size - 1):
            start = bounds[b]
            points = bounds[b + 1] - start
            x_t = _block_inputs(x, start, bounds[b + 1])
            pre = np.empty((units, points))
            value = np.empty((units, points))
            none = np.empty((0, points))
            scratch = np.empty(2 * widest * points, dtype=np.int64)
            _forward_block(
                theta, widths, layout, offsets, x_t, x_t, False, pre, value, none, none,
                none, none, scratch,
            )  # fmt: skip
            phi = np.full(points, theta[off_c])
            for o in range(widths[depth]):
                w_o = theta[off_w + o]
                z = value[last + o]
                for i in range(points):
                    phi[i] += w_o * z[i]
            out[start : start + points] = phi
        return out

    @jit
    def map_kernel(theta, widths, layout, x):
        n, dim = x.shape
        units, widest = _widths_summary(widths)
        offsets = _unit_offsets(widths)
        bounds = _block_bounds(n)
        out = np.empty((n, dim))
        for b in loop(bounds.size - 1):
            start = bounds[b]
            points = bounds[b + 1] - start
            x_t = _block_inputs(x, start, bounds[b + 1])
            pre = np.empty((units, points))
            value = np.empty((units, points))
            slope = np.empty((units, points))
            none = np.empty((0, points))
            scratch = np.empty(2 * widest * points, dtype=np.int64)
            q_current = np.empty((widest, points))
            q_next = np.empty((widest, points))
            map_t = np.zeros((dim, points))
            _forward_block(
                theta, widths, layout, offsets, x_t, x_t, False, pre, value, slope, none,
                none, none, scratch,
            )  # fmt: skip
            _backward_block(
                theta, widths, layout, offsets, x_t, x_t, False, value, slope, none, none,
                none, q_current, none, q_next, none, np.empty(0), map_t, none,
            )  # fmt: skip
            out[start : start + points] = map_t.T
        return out

    @jit
    def map_vjp_kernel(theta, widths, layout, x, u):
        n = x.shape[0]
        units, widest = _widths_summary(widths)
        offsets = _unit_offsets(widths)
        bounds = _block_bounds(n)
        blocks = bounds.size - 1
        partial = np.zeros((blocks, theta.size))
        for b in loop(blocks):
            start = bounds[b]
            points = bounds[b + 1] - start
            x_t = _block_inputs(x, start, bounds[b + 1])
            u_t = _block_inputs(u, start, bounds[b + 1])
            pre = np.empty((units, points))
            value = np.empty((units, points))
            slope = np.empty((units, points))
            curvature = np.empty((units, points))
            tangent_pre = np.empty((units, points))
            tangent_value = np.empty((units, points))
            scratch = np.empty(2 * widest * points, dtype=np.int64)
            q_current = np.empty((widest, points))
            p_current = np.empty((widest, points))
            q_next = np.empty((widest, points))
            p_next = np.empty((widest, points))
            none = np.empty((0, points))
            _forward_block(
                theta, widths, layout, offsets, x_t, u_t, True, pre, value, slope, curvature,
                tangent_pre, tangent_value, scratch,
            )  # fmt: skip
            _backward_block(
                theta, widths, layout, offsets, x_t, u_t, True, value, slope, curvature,
                tangent_pre, tangent_value, q_current, p_current, q_next, p_next, partial[b],
                none, none,
            )  # fmt: skip
        total = partial[0].copy()
        for b in range(1, blocks):
            row = partial[b]
            for k in range(theta.size):
                total[k] += row[k]
        return total

    @jit
    def hessian_kernel(theta, widths, layout, x):
        n, dim = x.shape
        units, widest = _widths_summary(widths)
        offsets = _unit_offsets(widths)
        bounds = _block_bounds(n)
        out = np.empty((n, dim, dim))
        for b in loop(bounds.size - 1):
            start = bounds[b]
            points = bounds[b + 1] - start
            x_t = _block_inputs(x, start, bounds[b + 1])
            pre = np.empty((units, points))
            value = np.empty((units, points))
            slope = np.empty((units, points))
            curvature = np.empty((units, points))
            tangent_pre = np.empty((units, points))
            tangent_value = np.empty((units, points))
            scratch = np.empty(2 * widest * points, dtype=np.int64)
            q_current = np.empty((widest, points))
            p_current = np.empty((widest, points))
            q_next = np.empty((widest, points))
            p_next = np.empty((widest, points))
            none = np.empty((0, points))
            direction = np.zeros((dim, points))
            for k in range(dim):
                direction[:, :] = 0.0
                direction[k, :] = 1.0
                column = np.zeros((dim, points))
                _forward_block(
                    theta, widths, layout, offsets, x_t, direction, True, pre, value, slope,
                    curvature, tangent_pre, tangent_value, scratch,
                )  # fmt: skip
                _backward_block(
                    theta, widths, layout, offsets, x_t, direction, True, value, slope,
                    curvature, tangent_pre, tangent_value, q_current, p_current, q_next,
                    p_next, np.empty(0), none, column,
                )  # fmt: skip
                for i in range(points):
                    for j in range(dim):
                        out[start + i, j, k] = column[j, i]
        return out

    return potential_kernel, map_kernel, map_vjp_kernel, hessian_kernel


(
    _potential_serial,
    _map_serial,
    _map_vjp_serial,
    _hessian_serial,
) = _make_kernels(parallel=False)
(
    _potential_parallel,
    _map_parallel,
    _map_vjp_parallel,
    _hessian_parallel,
) = _make_kernels(parallel=True)


def _use_parallel(num_points: int) -> bool:
    """Parallel kernels when there are at least two blocks of points and two threads."""
    return num_points > _BLOCK_POINTS and numba.get_num_threads() > 1


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


def _run(kernels, architecture, theta, *arrays):
    """Call the serial or parallel kernel on validated inputs."""
    serial, parallel = kernels
    kernel = parallel if _use_parallel(arrays[0].shape[0]) else serial
    return kernel(theta, architecture.widths, architecture.layout, *arrays)


_POTENTIAL = (_potential_serial, _potential_parallel)
_MAP = (_map_serial, _map_parallel)
_MAP_VJP = (_map_vjp_serial, _map_vjp_parallel)
_HESSIAN = (_hessian_serial, _hessian_parallel)


def potential(architecture: ICNNArchitecture, theta, x) -> np.ndarray:
    """φ_θ(x_i) for points x (n, d) -> (n,) (paper §3.4, the ICNN potential)."""
    _check_architecture(architecture)
    theta = architecture.check_params(theta, "theta")
    x = as_points(x, "x", dim=architecture.dim)
    return _run(_POTENTIAL, architecture, theta, x)


def transport_map(architecture: ICNNArchitecture, theta, x) -> np.ndarray:
    """T_θ(x_i) = ∇_x φ_θ(x_i) for points x (n, d) -> (n, d) (the map of §3.2, §3.4)."""
    _check_architecture(architecture)
    theta = architecture.check_params(theta, "theta")
    x = as_points(x, "x", dim=architecture.dim)
    return _run(_MAP, architecture, theta, x)


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
    return _run(_MAP_VJP, architecture, theta, x, u)


def hessian(architecture: ICNNArchitecture, theta, x) -> np.ndarray:
    """∇²_x φ_θ(x_i) for points x (n, d) -> (n, d, d), positive semidefinite for admissible θ."""
    _check_architecture(architecture)
    theta = architecture.check_params(theta, "theta")
    x = as_points(x, "x", dim=architecture.dim)
    return _run(_HESSIAN, architecture, theta, x)


# ---------------------------------------------------------------------------
# The network object
# ---------------------------------------------------------------------------


class ICNN:
    """An ICNN potential φ_θ with fixed, admissible parameters (paper §3.4).

    ICNN(dim, hidden, rng) draws θ with ``rng`` (see ``INIT_STD``);
    ICNN(dim, hidden, params=θ) uses the given θ, which must satisfy the
    constraints (project it first with ``ICNN.project`` / ``architecture.project``).
    The parameters are a read-only copy; ``with_params`` returns a new network.

    Example (DESIGN §6)::

        net = ICNN(dim=2, hidden=(20, 20), rng=np.random.default_rng(0))
        net.num_params  # 541
        net.potential(x)  # (n,)
        net.map(x)  # (n, d)
        net.map_vjp(x, u)  # (541,)
    """

    __slots__ = ("_params", "architecture")

    def __init__(self, dim: int, hidden, rng: np.random.Generator | None = None, *, params=None):
        if hasattr(hidden, "__iter__"):
            hidden = tuple(hidden)
        architecture = ICNNArchitecture(dim, hidden)
        if (rng is None) == (params is None):
            raise TypeError(
                "ICNN needs exactly one of rng (a numpy.random.Generator, to draw θ) "
                "or params (a flat parameter vector)"
            )
        if params is None:
            theta = architecture.init_params(rng)
        else:
            theta = architecture.check_params(params, "params").copy()
        theta.setflags(write=False)
        object.__setattr__(self, "architecture", architecture)
        object.__setattr__(self, "_params", theta)

    def __setattr__(self, name, value):
        raise AttributeError("ICNN is immutable; use with_params(theta) for new parameters")

    def __repr__(self) -> str:
        return f"ICNN(dim={self.dim}, hidden={self.hidden}, num_params={self.num_params})"

    @classmethod
    def from_architecture(cls, architecture: ICNNArchitecture, params) -> ICNN:
        """A network with the given architecture and (admissible) parameters."""
        return cls(architecture.dim, architecture.hidden, params=params)

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
        return ICNN(self.dim, self.hidden, params=theta)

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
        return _run(_POTENTIAL, self.architecture, self._params, self._points(x))

    def map(self, x) -> np.ndarray:
        """T_θ(x_i) = ∇_x φ_θ(x_i) -> (n, d)."""
        return _run(_MAP, self.architecture, self._params, self._points(x))

    def map_vjp(self, x, u) -> np.ndarray:
        """∇_θ Σ_i ⟨u_i, T_θ(x_i)⟩ -> (num_params,)."""
        x = self._points(x)
        u = _check_cotangent(u, x, self.architecture)
        return _run(_MAP_VJP, self.architecture, self._params, x, u)

    def hessian(self, x) -> np.ndarray:
        """∇²_x φ_θ(x_i) -> (n, d, d)."""
        return _run(_HESSIAN, self.architecture, self._params, self._points(x))
