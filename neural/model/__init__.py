"""Trained network maps as tools: invert, score, sample, save and load.

Modules: ``network_map`` (``NetworkMap``: T_θ = ∇φ_θ with its target, the model density
p_θ, samples), ``inverse`` (∇φ_θ* by Newton's method), ``files`` (the .npz format), ``fitting``
(a map learned from data alone).
"""

from neural.model.files import NetworkFileError
from neural.model.fitting import FitResult, FitSettings, fit
from neural.model.inverse import inverse_map
from neural.model.network_map import NetworkMap

load = NetworkMap.load

__all__ = [
    "FitResult",
    "FitSettings",
    "NetworkFileError",
    "NetworkMap",
    "fit",
    "inverse_map",
    "load",
]
