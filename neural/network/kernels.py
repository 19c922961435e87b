"""numba kernels of the ICNN (paper §3.4): first-order passes (potential, map, map VJP,
Hessian), the second-order channel (Hessian VJP) and the fused log-det kernels.

The network and its parameter layout are those of ``neural.network.architecture``; the
kernels read θ through the packed tables of ``ICNNArchitecture.kernel_tables``.

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
first-order kernels gives their matrix form). It works on blocks of points, in parallel for
more than one block (n > ``BLOCK_POINTS``); the parameter gradient is summed per block
(blocks depend on n only) and the block sums are added in block order, so results
do not depend on the number of threads (bit for bit).

Why one file of about 1000 lines: numba's cache (``cache=True``) keys a compiled kernel on
the source file that defines it, while the compiled code contains every kernel it calls.
A kernel whose callee lives in another file keeps running the old callee from the cache
after that file is edited (measured with numba 0.68: caller and callee in two modules,
the callee's body edited, the reloaded caller returned the old result). The block
kernels below call one another (the Hessian-VJP and log-det kernels continue the
first-order tape), so they share this file; the shared helpers of ``neural._kernels``
are the only callees elsewhere. Public names here are the ones other modules use.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from neural._kernels import JIT, block_bounds, exp_nonpositive, log1p_unit, sum4

__all__ = [
    "BLOCK_POINTS",
    "EVALUATE_PARALLEL",
    "EVALUATE_SERIAL",
    "HESSIAN",
    "HESSIAN_VJP",
    "LANES",
    "LARGEST_FLOAT",
    "LOG_DET_PARALLEL",
    "LOG_DET_SERIAL",
    "MAP",
    "MAP_VJP",
    "POTENTIAL",
    "activate",
    "cholesky_block",
    "cholesky_kernel",
    "cholesky_point",
    "pack",
]

BLOCK_POINTS = 128
"""Points are processed in contiguous blocks of about this many (boundaries depend on n only).

128 keeps the schemes' batches (n = 100) in one block, run serially: each block has
a fixed cost (allocations, loop set-up, two BLAS calls), so one block of 100 beats
two of 50 on one core, and a parallel region on a busy 2-core machine can wait a
scheduler time slice (milliseconds) for its second thread. Measured on this machine
(one core busy): map_vjp at n = 256 takes ~145 µs serially, ~95 µs in parallel."""

LANES = 4
"""Vector width (float64 lanes of AVX2) to which the kernels pad units and points."""

LARGEST_FLOAT = float(np.finfo(np.float64).max)
"""The largest finite float64 (|v| <= it is false for NaN and ±inf)."""


# ---------------------------------------------------------------------------
# First order (unchecked: the functions of ``neural.network.functions`` validate the inputs)
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
# Unit counts are zero-padded to multiples of LANES and a block's points to a
# multiple of LANES, so every inner loop runs over whole vector lanes. Padded units
# have zero weights; padded points have x = u = 0, hence P = 0 and ż = 0, so they
# add exact zeros to the gradient, and their outputs are not stored. Arrays are
# unit-major (units, points); inner loops run over points, contiguous and
# vectorized, with no sum reassociated (fastmath=False).
# ---------------------------------------------------------------------------

POTENTIAL, MAP, MAP_VJP, HESSIAN, HESSIAN_VJP = 0, 1, 2, 3, 4
"""Kernel modes; MAP_VJP carries the tangent pass along u, HESSIAN the d tangent passes
along e_1..e_d (output per point: T, then ∇²φ row-major), HESSIAN_VJP first and second
tangents along the columns of factors C (u = C flattened)."""

_ROWS, _INPUTS, _PREV, _OFFSET, _UNIT_ROW, _INPUT_ROW = 0, 1, 2, 3, 4, 5
"""Columns of the layer table (``ICNNArchitecture.kernel_tables``)."""


@njit(**JIT)
def pack(theta, index):
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
    for r in range(0, rows, LANES):
        t0 = target[r]
        t1 = target[r + 1]
        t2 = target[r + 2]
        t3 = target[r + 3]
        for i in range(begin, end):
            t0[i] = 0.0
            t1[i] = 0.0
            t2[i] = 0.0
            t3[i] = 0.0
        for c in range(0, inner, LANES):
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
    points = (count + LANES - 1) // LANES * LANES
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
def activate(pre, out, slope, curvature, exponentials, points, want_value, tangents):
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
        activate(pre[unit : unit + rows], inputs[following : following + rows],
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
    """Number of tangent passes of a first-order mode: 1 (MAP_VJP), d (HESSIAN), else 0."""
    if mode == MAP_VJP:
        return 1
    if mode == HESSIAN:
        return dim
    return 0


@njit(**JIT)
def _run_block(table, packed, x, u, start, stop, mode, out, inputs, pre, slope, curvature):
    """Points x[start:stop] through the network, results into the flat array ``out``.

    mode POTENTIAL: φ(x_i) into out[i]; MAP: T(x_i) into out[i d : (i + 1) d];
    HESSIAN: T(x_i), then ∇²φ(x_i) row-major, into out[i (d + d²) : (i + 1)(d + d²)]
    (u: the directions e_1..e_d, ``_basis_directions``); MAP_VJP: the block's ∂φ̇/∂θ
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
             mode == POTENTIAL)  # fmt: skip

    top = inputs[top_row:]
    if mode == POTENTIAL:
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
    stride = dim + dim * dim if mode == HESSIAN else dim
    # adjoint of z_L from φ̇ = wᵀ ż_L (and φ = wᵀ z_L): [0, w]
    for o in range(last[_ROWS]):
        adjoint[o, :q_start] = 0.0
        adjoint[o, q_start : q_start + points] = packed[offset_w + o]
        if mode == MAP_VJP:  # ∂φ̇/∂w = Σ_i ż_L
            out[offset_w + o] = sum4(top[o, points:], points)
    _adjoint_step(table, depth - 1, adjoint, slope, curvature, pre, current, points, tangents)
    for layer in range(depth - 1, -1, -1):
        rows = table[layer, _ROWS]
        width = table[layer, _INPUTS]
        prev = table[layer, _PREV]
        offset = table[layer, _OFFSET]
        pq = current[:rows]
        if mode == MAP_VJP:  # ∂φ̇/∂M_l = [P, Q] B_lᵀ
            gradient = out[offset : offset + rows * width].reshape((rows, width))
            np.dot(pq, _layer_inputs(table, inputs, layer).T, gradient)
            if layer == 0:
                break
            needed = prev  # only Wzᵀ [P, Q]
        else:
            needed = prev + LANES * ((dim + LANES - 1) // LANES)  # and Wxᵀ [P, Q]
        _multiply(_layer_weights(table, packed, layer)[:, :needed].T, pq, adjoint[:needed], 0,
                  columns)  # fmt: skip
        if mode != MAP_VJP:  # T += Wxᵀ Q, ∇²φ e_k += Wxᵀ P_k
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
    """``_run_block`` with its own work arrays; HESSIAN_VJP: ``_hessian_vjp_block``."""
    if mode == HESSIAN_VJP:
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
    if mode == POTENTIAL:
        return n
    if mode == HESSIAN:
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
        packed = pack(theta, index)
        bounds = block_bounds(n, BLOCK_POINTS, LANES)
        blocks = bounds.size - 1
        directions = _basis_directions(n, dim) if mode == HESSIAN else u
        if mode == MAP_VJP or mode == HESSIAN_VJP:  # one packed gradient per block
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


EVALUATE_SERIAL = _make_evaluate(parallel=False)
"""evaluate(θ, table, index, x, u, mode) over the blocks of points in turn."""
EVALUATE_PARALLEL = _make_evaluate(parallel=True)
"""``EVALUATE_SERIAL`` with the blocks in parallel (the same results, bit for bit)."""


# ---------------------------------------------------------------------------
# The log-determinant (``neural.training.kl``): ∇²φ(x_i) = R_i R_iᵀ, log det, C_i = R_i⁻ᵀ,
# and the fused kernels of the score-free KL gradient. They live here, with the block
# kernels they call, because numba's cache tracks only the file that defines a kernel.
# ---------------------------------------------------------------------------


@njit(**JIT)
def cholesky_point(hessian, lower, factor):
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
    if not (largest <= LARGEST_FLOAT and abs(total) <= LARGEST_FLOAT):
        return np.nan
    return 2.0 * total


@njit(**JIT)
def cholesky_block(outputs, quadratic, start, count, points, gram, inverses, log_det):
    """``cholesky_point`` for the points [start, start + count) at once, each loop over the
    points (so that it vectorizes), with the same operations in the same order: H_i = the
    Hessian kernel's ∇²φ(x_i) (row-major after T in ``outputs``, d + d² per point) + Q;
    S_i = C_i C_iᵀ = H_i⁻¹ into ``gram`` (d, d, points; 0 for padded points) and
    ``inverses[i]``; log det H_i into ``log_det[i]`` (NaN where ``cholesky_point`` gives
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
        finite = largest[i] <= LARGEST_FLOAT and abs(total) <= LARGEST_FLOAT
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
def cholesky_kernel(hessians, log_det, factors):
    """log det H_i and C_i = R_i⁻ᵀ of every point (``cholesky_point``); returns the number
    of points whose H is not numerically positive definite (their outputs are partial)."""
    n, d = hessians.shape[0], hessians.shape[1]
    lower = np.zeros((d, d))
    failures = 0
    for i in range(n):
        log_det[i] = cholesky_point(hessians[i], lower, factors[i])
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
    """(forward, reverse) of the score-free KL gradient (``neural.training.kl``) over blocks
    of points.

    forward: per block the Hessian kernel (``_run_block``, mode HESSIAN) on a tape with
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
        packed = pack(theta, index)
        bounds = block_bounds(n, BLOCK_POINTS, LANES)
        blocks = bounds.size - 1
        longest = 0
        for b in range(blocks):
            longest = max(longest, bounds[b + 1] - bounds[b])
        rows, units, columns, points = _tape_shapes(table, 0, longest, dim)
        tape = np.empty((blocks, (rows + units) * columns + 3 * units * points))
        directions = _basis_directions(n, dim)
        stride = dim + dim * dim
        outputs = np.zeros(n * stride)  # per point T, then ∇²φ row-major (mode HESSIAN)
        inverses = np.empty((n, dim, dim))
        log_det = np.empty(n)
        failures = np.zeros(blocks, dtype=np.int64)
        for b in loop(blocks):
            start, stop = bounds[b], bounds[b + 1]
            inputs, pre, slope, curvature, kappa = _tape_views(tape[b], table, start, stop, dim)
            _run_block(table, packed, x, directions, start, stop, HESSIAN, outputs, inputs, pre,
                       slope, curvature)  # fmt: skip
            count, points = stop - start, slope.shape[1]
            gram = np.empty((dim, dim, points))
            failures[b] = cholesky_block(outputs, quadratic, start, count, points, gram,
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
        packed = pack(theta, index)
        n, dim = cotangent.shape
        bounds = block_bounds(n, BLOCK_POINTS, LANES)
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


LOG_DET_SERIAL = _make_log_det_kernels(parallel=False)
"""(forward, reverse) of the score-free KL gradient over the blocks of points in turn."""
LOG_DET_PARALLEL = _make_log_det_kernels(parallel=True)
"""``LOG_DET_SERIAL`` with the blocks in parallel (the same results, bit for bit)."""
