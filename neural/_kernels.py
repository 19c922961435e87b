"""numba building blocks shared by the ICNN, score and MMD kernels.

- ``JIT``: the compile options of every kernel (docs/mathematics.md, 'Numerical
  conventions'): cached, no fastmath, so no sum is reassociated and no multiply-add is
  fused; the loop vectorizer still widens loops whose iterations are independent, which
  leaves every result the same sequence of IEEE operations as written.
- ``block_bounds``: split n points (or rows) into blocks whose boundaries depend on
  n only, so that per-block partial sums, added in block order, give results that
  do not depend on the number of threads.
- ``sum4``: a sum in a fixed order with four interleaved partial sums (four
  independent addition chains instead of one).
- ``squared_distances``: ‖y − x_j‖² from one point to a range of points.
- ``exp_nonpositive`` and ``log1p_unit``: exp(v) for v <= 0 and log(1 + e) for
  0 <= e <= 1 from arithmetic, comparisons and bit operations only. numba without
  Intel SVML compiles ``math.exp`` and ``math.log1p`` to scalar libm calls, which
  the loop vectorizer cannot widen; these two are inlined and vectorized. Both are
  the fdlibm algorithms (reduction, then the fdlibm minimax polynomial or rational
  function), within 1 ulp of the correctly rounded value in the tests
  (``tests/neural/test_kernels.py``).
"""

from __future__ import annotations

import numpy as np
from numba import njit, types
from numba.extending import intrinsic

__all__ = [
    "JIT",
    "block_bounds",
    "dot4",
    "exp_nonpositive",
    "log1p_unit",
    "squared_distances",
    "sum4",
]

JIT = {"cache": True, "fastmath": False, "error_model": "numpy", "nogil": True}
"""Options of every numba kernel of the package (docs/mathematics.md, 'Numerical conventions')."""


# --------------------------------------------------------------------------- blocks and sums


@njit(**JIT)
def block_bounds(count, block, multiple):
    """Boundaries (blocks + 1,) of blocks of about ``block`` items out of ``count``.

    A function of (count, block, multiple) only. Interior boundaries are rounded
    down to a multiple of ``multiple``, so only the last block can have a length
    that is not one (the ICNN kernels pad points to whole vector lanes).
    """
    blocks = max(1, (count + block - 1) // block)
    bounds = np.empty(blocks + 1, dtype=np.int64)
    for b in range(blocks):
        bounds[b] = (b * count) // (blocks * multiple) * multiple
    bounds[blocks] = count
    return bounds


@njit(**JIT)
def _four_sums(a, b, length, products):
    """Σ_j a[j] (times b[j] if ``products``) over j < length in a fixed order: four
    interleaved partial sums s0..s3, then (s0 + s1) + (s2 + s3)."""
    s0 = 0.0
    s1 = 0.0
    s2 = 0.0
    s3 = 0.0
    j = 0
    while j + 4 <= length:
        if products:
            s0 += a[j] * b[j]
            s1 += a[j + 1] * b[j + 1]
            s2 += a[j + 2] * b[j + 2]
            s3 += a[j + 3] * b[j + 3]
        else:
            s0 += a[j]
            s1 += a[j + 1]
            s2 += a[j + 2]
            s3 += a[j + 3]
        j += 4
    while j < length:
        s0 += a[j] * b[j] if products else a[j]
        j += 1
    return (s0 + s1) + (s2 + s3)


@njit(**JIT)
def sum4(values, length):
    """Σ values[:length] in the fixed order of ``_four_sums``."""
    return _four_sums(values, values, length, False)


@njit(**JIT)
def dot4(a, b):
    """Σ_j a[j] b[j] in the fixed order of ``_four_sums``."""
    return _four_sums(a, b, a.size, True)


@njit(**JIT)
def squared_distances(point, others_t, start, stop, out):
    """out[j − start] = ‖point − others_j‖² for j in [start, stop); others_t is (d, m)."""
    dim = others_t.shape[0]
    length = stop - start
    for j in range(length):
        out[j] = 0.0
    for k in range(dim):
        coordinate = point[k]
        row = others_t[k, start:stop]  # indexed from 0, so that the loop vectorizes
        for j in range(length):
            diff = row[j] - coordinate
            out[j] += diff * diff


# --------------------------------------------------------------------------- exp and log1p


def _bit_cast(source, target):
    """An intrinsic reinterpreting the IEEE bits of a ``source`` scalar as ``target``."""

    @intrinsic
    def cast(typingctx, value):
        if value != source:
            return None

        def codegen(context, builder, signature, args):
            return builder.bitcast(args[0], context.get_value_type(target))

        return target(source), codegen

    return cast


_float_bits = _bit_cast(types.float64, types.int64)
_bits_float = _bit_cast(types.int64, types.float64)


_INV_LN2 = 1.44269504088896338700e00
_LN2_HIGH = 6.93147180369123816490e-01  # ln 2 = _LN2_HIGH + _LN2_LOW, high part with 11 zero bits
_LN2_LOW = 1.90821492927058770002e-10
_ROUND_MAGIC = 6755399441055744.0  # 1.5 * 2**52: (v + magic) - magic rounds v to an integer
_EXP_FLOOR = -708.0  # exp(-708) ~ 3.3e-308 is still normal; below, exp returns 0
# fdlibm e_exp.c: exp(r) = 1 + r + r c / (2 − c), c = r − r² (P1 + r² (P2 + ...)), |r| <= ln2/2
_EXP_P1 = 1.66666666666666019037e-01
_EXP_P2 = -2.77777777770155933842e-03
_EXP_P3 = 6.61375632143793436117e-05
_EXP_P4 = -1.65339022054652515390e-06
_EXP_P5 = 4.13813679705723846039e-08
# fdlibm e_log.c: log(1 + f) = 2s + s R(s²), s = f / (2 + f), |s| <= 0.1716
_LOG_LG1 = 6.666666666666735130e-01
_LOG_LG2 = 3.999999999940941908e-01
_LOG_LG3 = 2.857142874366239149e-01
_LOG_LG4 = 2.222219843214978396e-01
_LOG_LG5 = 1.818357216161805012e-01
_LOG_LG6 = 1.531383769920937332e-01
_LOG_LG7 = 1.479819860511658591e-01
_SQRT2_MINUS_1 = 0.41421356237309503


@njit(**JIT)
def exp_nonpositive(v):
    """exp(v) for v <= 0 (fdlibm e_exp.c); 0 for v < -708 (the true value is below 3.3e-308).

    v = k ln2 + r with k = round(v / ln2) and r = hi − lo (ln 2 in two parts, so r
    is exact to ~2⁻⁶⁴); exp(r) by fdlibm's rational approximation; 2^k assembled from
    the exponent bits of the rounding step. The callers guarantee v <= 0.
    """
    w = max(v, _EXP_FLOOR)
    shifted = w * _INV_LN2 + _ROUND_MAGIC
    k = shifted - _ROUND_MAGIC
    hi = w - k * _LN2_HIGH
    lo = k * _LN2_LOW
    r = hi - lo
    z = r * r
    c = r - z * (_EXP_P1 + z * (_EXP_P2 + z * (_EXP_P3 + z * (_EXP_P4 + z * _EXP_P5))))
    exp_r = 1.0 - ((lo - (r * c) / (2.0 - c)) - hi)
    # the low mantissa bits of `shifted` hold k (two's complement); (k + 1023) << 52 is 2^k
    two_k = _bits_float((_float_bits(shifted) + 1023) << 52)
    return exp_r * two_k if v >= _EXP_FLOOR else 0.0


@njit(**JIT)
def log1p_unit(e):
    """log(1 + e) for 0 <= e <= 1 (fdlibm e_log.c on 1 + e = 2^k (1 + f)).

    k = 0, f = e for e <= √2 − 1; k = 1, f = (e − 1)/2 otherwise, so that
    1 + f lies in [√2/2, √2]. f is exact for k = 0 (relative accuracy for tiny e).
    """
    upper = e > _SQRT2_MINUS_1
    f = 0.5 * (e - 1.0) if upper else e
    k = 1.0 if upper else 0.0
    s = f / (2.0 + f)
    z = s * s
    w = z * z
    odd = w * (_LOG_LG2 + w * (_LOG_LG4 + w * _LOG_LG6))
    even = z * (_LOG_LG1 + w * (_LOG_LG3 + w * (_LOG_LG5 + w * _LOG_LG7)))
    r = even + odd
    half_f_squared = 0.5 * f * f
    return k * _LN2_HIGH - ((half_f_squared - (s * (half_f_squared + r) + k * _LN2_LOW)) - f)
