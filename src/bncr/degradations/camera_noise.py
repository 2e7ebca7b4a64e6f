"""Camera noise of the data side, after Brooks et al. (2019), "Unprocessing images".

Per image: shot variance s ~ log-uniform[1e-4, 1.2e-2]; read variance r from the log-linear
relation log r = 2.18 log s + 1.20 + N(0, 0.26^2) (natural logs); then y = x + N(0, x*s + r).
Brooks et al. apply it to linear raw intensities; here it is applied to [0, 1] sRGB-like images,
a simplification that keeps the law (variance linear in intensity) and its parameter range.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

SHOT_MIN, SHOT_MAX = 1e-4, 1.2e-2
READ_SLOPE, READ_INTERCEPT, READ_STD = 2.18, 1.20, 0.26


@dataclass(frozen=True)
class NoiseParams:
    shot: float  # variance per unit intensity
    read: float  # signal-independent variance


def sample_noise_params(rng: np.random.Generator) -> NoiseParams:
    """Draw (shot, read) variances with the Brooks et al. law."""
    log_shot = rng.uniform(math.log(SHOT_MIN), math.log(SHOT_MAX))
    log_read = READ_SLOPE * log_shot + READ_INTERCEPT + rng.normal(0.0, READ_STD)
    return NoiseParams(shot=math.exp(log_shot), read=math.exp(log_read))


def add_camera_noise(x: np.ndarray, params: NoiseParams, rng: np.random.Generator) -> np.ndarray:
    """y = x + N(0, x*shot + read) for x float in [0, 1] (not clipped here)."""
    var = np.clip(x, 0.0, None) * params.shot + params.read
    return x + rng.standard_normal(x.shape) * np.sqrt(var)
