"""Elementwise numba helpers shared by the kernels: exp and softplus on blocks.

Numba without Intel SVML compiles ``math.exp`` and ``math.log1p`` to scalar libm
calls, which the loop vectorizer cannot widen; in the ICNN and Sinkhorn kernels
those calls are most of the run time. The helpers here use only arithmetic,
comparisons and integer bit operations, so that LLVM vectorizes the loops over a
block (with ``fastmath=False``: no reassociation, every result is the same
sequence of IEEE operations as written). Accuracy is checked against ``math``
in ``tests/neural/test_icnn.py`` (a few ulp).

- ``exp_nonpositive_block(values, out, scratch, length)``: exp(v) for v <= 0
  (Cody-Waite reduction v = k ln2 + r, |r| <= ln2/2, degree-12 Taylor polynomial,
  2^k assembled from the exponent bits). Values below -708 give 0 (the true
  value is below 3e-308).
- ``softplus_block(pre, value, slope, curvature, scratch, length)``: for a
  block of pre-activations a, the softplus s(a) = log(1 + e^a) written as
  max(a, 0) + log1p(e^{-|a|}) (no overflow for any a), its derivative
  s'(a) = sigmoid(a) and second derivative s''(a) = e^{-|a|} / (1 + e^{-|a|})^2.
  log1p(e) for e in [0, 1] uses the exact identity log1p(e) = 2 atanh(e / (2 + e))
  and the atanh series on [0, 1/3].
"""

from __future__ import annotations

import numpy as np
from numba import njit

_INV_LN2 = 1.4426950408889634
_LN2_HIGH = 6.93147180369123816490e-01  # ln 2 split into a high part with zero low bits
_LN2_LOW = 1.90821492927058770002e-10
_ROUND_MAGIC = 6755399441055744.0  # 1.5 * 2**52: x + magic rounds x to an integer
_EXP_FLOOR = -708.0  # exp(-708) ~ 3.3e-308, the smallest normal range we assemble

_JIT = {"cache": True, "fastmath": False, "error_model": "numpy", "nogil": True}


@njit(**_JIT)
def exp_nonpositive_block(values, out, scratch, length):
    """out[i] = exp(values[i]) for i < length, assuming values[i] <= 0.

    ``scratch`` is an int64 work array of at least ``length`` entries.
    Positive inputs are not supported (the caller guarantees v <= 0).
    """
    rounded = scratch.view(np.float64)
    for i in range(length):
        v = max(values[i], _EXP_FLOOR)
        shifted = v * _INV_LN2 + _ROUND_MAGIC
        k = shifted - _ROUND_MAGIC
        r = (v - k * _LN2_HIGH) - k * _LN2_LOW
        p = 1.0 / 479001600.0
        p = 1.0 / 39916800.0 + r * p
        p = 1.0 / 3628800.0 + r * p
        p = 1.0 / 362880.0 + r * p
        p = 1.0 / 40320.0 + r * p
        p = 1.0 / 5040.0 + r * p
        p = 1.0 / 720.0 + r * p
        p = 1.0 / 120.0 + r * p
        p = 1.0 / 24.0 + r * p
        p = 1.0 / 6.0 + r * p
        p = 0.5 + r * p
        p = 1.0 + r * p
        p = 1.0 + r * p
        out[i] = p if values[i] >= _EXP_FLOOR else 0.0
        rounded[i] = shifted
    # The low mantissa bits of `shifted` hold 2**51 + k; (k + 1023) << 52 is 2**k.
    for i in range(length):
        scratch[i] = (scratch[i] + 1023) << 52
    for i in range(length):
        out[i] *= rounded[i]


@njit(**_JIT)
def _log1p_unit(e):
    """log(1 + e) for 0 <= e <= 1 as 2 atanh(s), s = e / (2 + e) in [0, 1/3]."""
    s = e / (2.0 + e)
    t = s * s
    p = 1.0 / 35.0
    p = 1.0 / 33.0 + t * p
    p = 1.0 / 31.0 + t * p
    p = 1.0 / 29.0 + t * p
    p = 1.0 / 27.0 + t * p
    p = 1.0 / 25.0 + t * p
    p = 1.0 / 23.0 + t * p
    p = 1.0 / 21.0 + t * p
    p = 1.0 / 19.0 + t * p
    p = 1.0 / 17.0 + t * p
    p = 1.0 / 15.0 + t * p
    p = 1.0 / 13.0 + t * p
    p = 1.0 / 11.0 + t * p
    p = 1.0 / 9.0 + t * p
    p = 1.0 / 7.0 + t * p
    p = 1.0 / 5.0 + t * p
    p = 1.0 / 3.0 + t * p
    return 2.0 * (s + s * (t * p))


@njit(**_JIT)
def softplus_block(pre, value, slope, curvature, scratch, length):
    """Softplus s, s' and s'' of ``pre[:length]`` into the three output arrays.

    ``slope`` or ``curvature`` may be empty arrays (size 0) when not needed;
    ``scratch`` is an int64 work array of at least ``2 * length`` entries. No
    output may share memory with ``pre`` (aliasing would stop vectorization).
    """
    exponentials = scratch[length : 2 * length].view(np.float64)
    for i in range(length):
        value[i] = -abs(pre[i])
    exp_nonpositive_block(value, exponentials, scratch, length)  # e = exp(-|a|)
    want_slope = slope.size > 0
    want_curvature = curvature.size > 0
    for i in range(length):
        a = pre[i]
        e = exponentials[i]
        inverse = 1.0 / (1.0 + e)
        if want_slope:
            slope[i] = inverse if a >= 0.0 else e * inverse
        if want_curvature:
            curvature[i] = e * inverse * inverse
        value[i] = max(a, 0.0) + _log1p_unit(e)
