"""Trained network maps as tools: invert, score, sample, save and load.

Modules: ``network_map`` (``NetworkMap``: T_θ = ∇φ_θ with its target, the model density
p_θ, samples), ``inverse`` (∇φ_θ* by Newton's method), ``files`` (the .npz format).
"""

from neural.model.files import NetworkFileError
from neural.model.inverse import inverse_map
from neural.model.network_map import NetworkMap

load = NetworkMap.load

__all__ = ["NetworkFileError", "NetworkMap", "inverse_map", "load"]
