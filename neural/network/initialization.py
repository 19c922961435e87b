"""θ0 schemes of the ICNN (the paper does not specify its initialization).

- 'normal'    the project's convention, ``ICNN`` default: every entry N(0, 0.1²), projected;
- 'torch'     ``torch_default_init``, the layer initialization of the authors' public code;
- 'anchored'  the sample-anchored initialization (``neural.network.architecture``): every
              hidden unit bends at a sample of ϱ0, with x-weights of norm ``ANCHOR_SLOPE``;
              with the quadratic part, T_θ0 = id exactly.
"""

from __future__ import annotations

import numpy as np

from gridflow.checks import require_generator
from gridflow.measures import as_sampler
from neural.network.architecture import ICNNArchitecture
from neural.network.icnn import ICNN

__all__ = ["INITS", "initial_network", "torch_default_init"]

INITS = ("normal", "torch", "anchored")
"""θ0 schemes (module docstring)."""


def torch_default_init(architecture: ICNNArchitecture, rng: np.random.Generator) -> np.ndarray:
    """θ0 as in the authors' public code (PyTorch ``nn.Linear`` defaults, then clamping).

    W0, b0, Wx_l ~ U(±1/√d); b_l ~ U(±1/√h_l); c ~ U(±1/√h_L); Wz_l, w ~ N(0, 0.1²);
    then projected (Wz_l, w clipped at 0). Draws block by block in θ order.
    """
    rng = require_generator(rng)
    if architecture.quadratic:
        raise ValueError("the 'torch' initialization is the paper network's, without the "
                         "quadratic part")  # fmt: skip
    theta = np.empty(architecture.num_params)
    for name, (sl, _shape) in architecture.slices().items():
        size = sl.stop - sl.start
        if name.startswith("Wz") or name == "w":
            theta[sl] = rng.normal(0.0, 0.1, size)
        elif name in ("W0", "b0") or name.startswith("Wx"):
            bound = 1.0 / np.sqrt(architecture.dim)
            theta[sl] = rng.uniform(-bound, bound, size)
        elif name == "c":
            bound = 1.0 / np.sqrt(architecture.hidden[-1])
            theta[sl] = rng.uniform(-bound, bound, size)
        else:  # b_l, l >= 1: bias of Linear(h_l, h_{l+1})
            layer = int(name[1:])
            bound = 1.0 / np.sqrt(architecture.hidden[layer - 1])
            theta[sl] = rng.uniform(-bound, bound, size)
    return architecture.project(theta)


def initial_network(
    dim: int,
    hidden,
    rng: np.random.Generator,
    init: str = "normal",
    *,
    source=None,
    quadratic: bool = False,
) -> ICNN:
    """θ0 drawn with ``rng`` by the scheme ``init`` (``INITS``).

    'anchored' needs ``source`` (ϱ0, with ``sample(rng, n)`` or a callable (rng, n)): as many
    samples as the network has hidden units are drawn from it with ``rng``, then the network,
    each unit bending at one of them chosen at random (with replacement). ``quadratic``: the
    ICNN's quadratic part (not with 'torch').
    """
    if init not in INITS:
        raise ValueError(f"unknown init {init!r}; choose from {', '.join(INITS)}")
    rng = require_generator(rng)
    architecture = ICNNArchitecture(dim, hidden, quadratic)  # checks dim and hidden
    if init == "torch":
        return ICNN.from_architecture(architecture, torch_default_init(architecture, rng))
    anchors = None
    if init == "anchored":
        if source is None:
            raise ValueError("the 'anchored' initialization needs the source ϱ0 (source=...)")
        count = int(sum(architecture.hidden))
        anchors = np.asarray(as_sampler(source)(rng, count), dtype=np.float64)
        if anchors.shape != (count, architecture.dim):
            raise ValueError(
                f"source.sample(rng, {count}) must return shape ({count}, {architecture.dim}) "
                f"for a network on R^{architecture.dim}, got {anchors.shape}"
            )
    return ICNN(architecture.dim, architecture.hidden, rng, quadratic=quadratic, anchors=anchors)
