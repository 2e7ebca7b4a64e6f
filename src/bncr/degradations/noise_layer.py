"""Generator-side noise n = G_n(z_n) under a noise prior (NR-GAN, and Brooks et al. camera noise).

The noise generator G_n does not output the noise itself but a *scale* g; the noise is sampled by
reparameterisation, n = eps * sigma(x, g) with eps ~ N(0, 1) per pixel, so gradients reach G_n
through sigma while eps stays random. The prior fixes how sigma depends on the clean image x.
As in NR-GAN, x enters sigma detached: the noise model never pushes gradients into G_x.

Priors and the image range each expects (y = x + n in that range):

  "additive"        n = eps * g                                  x, g, n in [-1, 1] (NR-GAN)
  "multiplicative"  n = eps * g * (x + 1)                        x, g, n in [-1, 1] (NR-GAN)
  "poisson"         n = eps * g * sqrt((x + 1) / 2) * 2          x, g, n in [-1, 1] (NR-GAN)
  "brooks"          n = eps * sqrt(a * x + b)                    x, n in [0, 1]     (Brooks et al.)

For the three NR-GAN priors g is G_n's tanh output, broadcastable to x (usually shape (N, C, H, W)
like x; NR-GAN's G_n has G_x's architecture). "brooks" is the signal-dependent model of the data
side, y = x + N(0, x * shot + read) (Brooks et al. 2019, "Unprocessing images"): there
g = (a, b) = (shot variance, read variance), non-negative, as

  (N, 2)          one (a, b) per image (what the data side samples: a log-uniform in
                  [1e-4, 1.2e-2], log b = 2.18 log a + 1.2 + N(0, 0.26^2)), or
  (N, 2, H, W)    per-pixel maps a(i, j), b(i, j), shared by the channels,

so a G_n for this prior ends in two non-negative outputs, e.g. exp() of two log-variance heads
(the variances span orders of magnitude) or a softplus. eps is drawn independently per channel.
To use "brooks" in a [-1, 1] pipeline: x01 = (x + 1) / 2, n = 2 * generated_noise(x01, g, "brooks").
"""
from __future__ import annotations

from typing import Optional

import torch

from bncr.errors import UserError, check_values

__all__ = ["NOISE_PRIORS", "PRIOR_RANGES", "generated_noise"]

NOISE_PRIORS = ("additive", "multiplicative", "poisson", "brooks")

#: image value range each prior expects for x (and returns n in)
PRIOR_RANGES = {
    "additive": (-1.0, 1.0),
    "multiplicative": (-1.0, 1.0),
    "poisson": (-1.0, 1.0),
    "brooks": (0.0, 1.0),
}


def _brooks_params(g: torch.Tensor, x: torch.Tensor) -> tuple:
    n = x.shape[0]
    if g.shape[0] != n or g.dim() not in (2, 4) or g.shape[1] != 2:
        raise UserError(
            "generated_noise: prior 'brooks' needs g = (a, b) of shape (N, 2) or (N, 2, H, W) with "
            f"N={n}; got {tuple(g.shape)}"
        )
    if g.dim() == 4 and (g.shape[2] not in (1, x.shape[2]) or g.shape[3] not in (1, x.shape[3])):
        raise UserError(
            f"generated_noise: prior 'brooks' per-pixel maps must be (N, 2, {x.shape[2]}, {x.shape[3]}), "
            f"got {tuple(g.shape)}"
        )
    check_values(~(g.detach() < 0), "generated_noise: prior 'brooks' needs non-negative variances (a, b); got a "
                 "negative value (end G_n with exp or softplus, not tanh)")
    if g.dim() == 2:
        return g[:, 0].view(n, 1, 1, 1), g[:, 1].view(n, 1, 1, 1)
    return g[:, 0:1], g[:, 1:2]


def generated_noise(x: torch.Tensor, g: torch.Tensor, prior: str, eps: Optional[torch.Tensor] = None,
                    *, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Sample n = eps * sigma(x.detach(), g) for a noise prior (see the module docstring).

    Args:
        x: clean image (N, C, H, W) in the prior's range (PRIOR_RANGES[prior]); only used
            detached, to set the noise level and the shape.
        g: G_n's output: for "additive" / "multiplicative" / "poisson" the scale in [-1, 1],
            broadcastable to x; for "brooks" the variances (a, b) >= 0, shape (N, 2) or (N, 2, H, W).
        prior: one of NOISE_PRIORS.
        eps: standard normal noise of x's shape; drawn (with `generator` if given) when None.

    Returns:
        n with x's shape, differentiable with respect to g (reparameterisation), not x.
        Add it to x in the same range: y = x + n.
    """
    if prior not in NOISE_PRIORS:
        raise UserError(f"generated_noise: unknown noise prior {prior!r}; choose one of {NOISE_PRIORS}")
    if not torch.is_tensor(x) or not x.is_floating_point() or x.dim() != 4:
        shape = tuple(x.shape) if torch.is_tensor(x) else type(x).__name__
        raise UserError(f"generated_noise: x must be a float tensor of shape (N, C, H, W), got {shape}")
    if not torch.is_tensor(g) or not g.is_floating_point():
        raise UserError("generated_noise: g (the noise generator's output) must be a float tensor")
    if eps is None:
        eps = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    elif eps.shape != x.shape:
        raise UserError(f"generated_noise: eps must have x's shape {tuple(x.shape)}, got {tuple(eps.shape)}")
    xd = x.detach()
    if prior == "brooks":
        a, b = _brooks_params(g, x)
        var = a * xd.clamp_min(0.0) + b  # as the data side (camera_noise.add_camera_noise)
        # sqrt has an infinite slope at 0: floor the variance (1e-12 = std 1e-6, far below 1/255).
        return eps * torch.sqrt(var.clamp_min(1e-12))
    try:
        ok = torch.broadcast_shapes(g.shape, x.shape) == x.shape
    except RuntimeError:
        ok = False
    if not ok:
        raise UserError(
            f"generated_noise: g of shape {tuple(g.shape)} does not broadcast to x's {tuple(x.shape)}"
        )
    if prior == "additive":
        return eps * g
    if prior == "multiplicative":
        return eps * g * (xd + 1.0)
    # "poisson": NR-GAN's Poisson-like prior, sigma proportional to the square root of the intensity.
    return eps * g * torch.sqrt(((xd + 1.0) / 2.0).clamp_min(0.0)) * 2.0
