"""Plain-numpy versions of the ICNN kernels (same formulas, vectorized over points).

They serve twice: as an independent implementation the tests compare
``neural.network.kernels`` against, and as the baseline of
``validation/benchmark_neural.py``. Inputs are assumed valid (no checks); shapes as in
``neural.network.functions``.
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit

__all__ = ["icnn_map", "icnn_map_vjp", "icnn_potential"]


def _softplus(a):
    return np.logaddexp(0.0, a)


def _layers(architecture, theta):
    """[(Wz or None, Wx, b) per hidden layer], w, c."""
    named = architecture.views(theta)
    layers = [(p.weight_z, p.weight_x, p.bias) for p in architecture.layers(theta)]
    return layers, named["w"], named["c"][0]


def _forward(architecture, theta, x, u=None):
    """Pre-activations a_l, s(a_l), s'(a_l), s''(a_l) and tangents ȧ_l, ż_l along u."""
    layers, _, _ = _layers(architecture, theta)
    pre, value, slope, curvature, tangent_pre, tangent_value = [], [], [], [], [], []
    for weight_z, weight_x, bias in layers:
        a = x @ weight_x.T + bias
        if weight_z is not None:
            a = a + value[-1] @ weight_z.T
        sig = expit(a)
        pre.append(a)
        value.append(_softplus(a))
        slope.append(sig)
        curvature.append(sig * expit(-a))
        if u is not None:
            a_dot = u @ weight_x.T
            if weight_z is not None:
                a_dot = a_dot + tangent_value[-1] @ weight_z.T
            tangent_pre.append(a_dot)
            tangent_value.append(sig * a_dot)
    return pre, value, slope, curvature, tangent_pre, tangent_value


def icnn_potential(architecture, theta, x):
    """φ_θ(x) (n,)."""
    _, w, c = _layers(architecture, theta)
    _, value, *_ = _forward(architecture, theta, x)
    return value[-1] @ w + c


def icnn_map(architecture, theta, x):
    """∇_x φ_θ(x) (n, d) by reverse mode."""
    layers, w, _ = _layers(architecture, theta)
    _, _, slope, *_ = _forward(architecture, theta, x)
    g = w * slope[-1]
    out = np.zeros_like(x)
    for layer in range(len(layers) - 1, -1, -1):
        weight_z, weight_x, _ = layers[layer]
        out += g @ weight_x
        if weight_z is not None:
            g = (g @ weight_z) * slope[layer - 1]
    return out


def icnn_map_vjp(architecture, theta, x, u):
    """∇_θ Σ_i ⟨u_i, ∇_x φ_θ(x_i)⟩ (num_params,) by second-order reverse mode."""
    layers, w, _ = _layers(architecture, theta)
    _, value, slope, curvature, tangent_pre, tangent_value = _forward(architecture, theta, x, u)
    grads = {}
    q = w * slope[-1]
    p = w * curvature[-1] * tangent_pre[-1]
    grads["w"] = tangent_value[-1].sum(axis=0)
    grads["c"] = np.zeros(1)
    for layer in range(len(layers) - 1, -1, -1):
        weight_z = layers[layer][0]
        name_z, name_x, name_b = architecture._layer_names(layer)
        grads[name_b] = p.sum(axis=0)
        grads[name_x] = p.T @ x + q.T @ u
        if weight_z is None:
            break
        grads[name_z] = p.T @ value[layer - 1] + q.T @ tangent_value[layer - 1]
        adj_p = p @ weight_z
        adj_q = q @ weight_z
        p = adj_p * slope[layer - 1] + adj_q * curvature[layer - 1] * tangent_pre[layer - 1]
        q = adj_q * slope[layer - 1]
    out = np.empty(architecture.num_params)
    for name, (sl, _) in architecture.slices().items():
        out[sl] = grads[name].ravel()
    return out
