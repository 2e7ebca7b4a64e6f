"""How 8-bit pixel values map to the networks' [-1, 1] range, in one place.

Real images use NR-GAN's dequantisation, (v + U[0, 1)) / 128 - 1, or v / 127.5 - 1 without it. The
JPEG stage maps its input back with :func:`model_to_unit` and its decoded 8-bit output forward with
:func:`levels_to_model`, so compressed fakes and compressed reals reach D the same way (a fake left
on the 8-bit lattice while every real is dequantised would be a cue D can use).
"""
from __future__ import annotations

from typing import Optional

import torch


def levels_to_model(v: torch.Tensor, u: Optional[torch.Tensor], dequantize: bool = True) -> torch.Tensor:
    """Grey levels v (0..255, float) -> [-1, 1]; with ``dequantize`` adds u ~ U[0, 1) (same shape) first."""
    if not dequantize:
        return v / 127.5 - 1.0
    if u is None:
        raise ValueError("dequantize=True needs the uniform noise u (e.g. the 'deq' latents of the pipeline)")
    return (v + u) / 128.0 - 1.0


def model_to_unit(h: torch.Tensor, dequantize: bool = True) -> torch.Tensor:
    """[-1, 1] -> [0, 1] (= v / 255), the inverse of :func:`levels_to_model` without its noise; clamped."""
    return ((h + 1) * (128.0 / 255.0 if dequantize else 0.5)).clamp(0, 1)
