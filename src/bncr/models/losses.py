"""Losses: non-saturating GAN, R1, diversity-sensitive (DS) and adaptive consistency (AC, Eq. 7-8)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..degradations.blur import kernel_entropy
from ..train.config import default


def d_loss_nonsaturating(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """-log D(y^r) - log(1 - D(y^g)), mean over the batch."""
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def g_loss_per_image(fake_logits: torch.Tensor) -> torch.Tensor:
    """-log D(y^g) per image, shape (N,) (D scores images independently)."""
    return F.softplus(-fake_logits).flatten()


def g_loss_nonsaturating(fake_logits: torch.Tensor) -> torch.Tensor:
    """-log D(y^g) (non-saturating generator loss), mean over the batch."""
    return g_loss_per_image(fake_logits).mean()


def r1_penalty(real_logits: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """sum over pixels of (dD/dy^r)^2, mean over the batch (NR-GAN: no 1/2 factor)."""
    (grad,) = torch.autograd.grad(real_logits.sum(), real, create_graph=True)
    return grad.pow(2).flatten(1).sum(1).mean()


def diversity_sensitive(out: torch.Tensor, z: torch.Tensor, eps: float = 1e-8,
                        tau: float = 0.0) -> torch.Tensor:
    """L_DS = -min( mean_i(mean|o_i - o_i'| / mean|z_i - z_i'|), tau ) over pairs of the batch's two halves.

    Minimising it (with a positive weight) makes outputs differ when latents differ, so a
    degradation generator does not collapse to one kernel / quality / noise level. tau > 0 bounds
    the batch's mean reward as in DSGAN (Yang et al. 2019, the expectation inside the min): once the
    outputs differ enough on average the term stops acting, so it resists a collapse without demanding
    a spread (a 0/1 mixture of masks is left alone). tau = 0 leaves it unbounded (the paper's form).
    """
    h = out.shape[0] // 2
    d_out = (out[:h] - out[h:2 * h]).abs().flatten(1).mean(1)
    d_z = (z[:h] - z[h:2 * h]).abs().flatten(1).mean(1)
    reward = (d_out / (d_z + eps)).mean()
    if tau > 0:
        reward = reward.clamp(max=tau)
    return -reward


def total_variation(x: torch.Tensor) -> torch.Tensor:
    """Anisotropic total variation per value: mean_i of (sum |x[h+1]-x[h]| + sum |x[w+1]-x[w]|) / x_i.numel().

    A prior on G_x's output: a monotone edge costs its height whether sharp or blurred, while overshoot
    (the halos of an over-sharpened G_x under a too-wide learned kernel), grain and block steps cost extra.
    """
    dh = (x[..., 1:, :] - x[..., :-1, :]).abs().flatten(1).sum(1)
    dw = (x[..., :, 1:] - x[..., :, :-1]).abs().flatten(1).sum(1)
    return ((dh + dw) / x[0].numel()).mean()


def ac_blur_weight(k: torch.Tensor, mu_k: float) -> torch.Tensor:
    """exp(-mu_k H(k)) per kernel: 1 for the identity kernel, small for strong blur."""
    return torch.exp(-mu_k * kernel_entropy(k))


def ac_comp_weight(q: torch.Tensor, mu_q: float) -> torch.Tensor:
    """exp(-mu_q (100 - q) / 100) per image: 1 at q = 100, small for strong compression."""
    return torch.exp(-mu_q * (100.0 - q) / 100.0)


def adaptive_consistency(before: torch.Tensor, after: torch.Tensor, weight: torch.Tensor,
                         norm: str = default("ac_norm")) -> torch.Tensor:
    """mean_i w_i ||before_i - after_i||^2, gradient only through `before`.

    norm="sum": the squared L2 norm over the image's values, as Eq. 7-8 write it; norm="mean": the
    same divided by the number of values (3,072 at 32x32 RGB), i.e. a 3,072x weaker term.
    The weight and the degraded image `after` are detached: the adversarial loss regularises the
    degraded image, the AC loss only the image before the irreversible process (paper Sec. 6).
    """
    if norm not in ("sum", "mean"):
        raise ValueError(f"norm must be 'sum' or 'mean', got {norm!r}")
    se = (before - after.detach()).pow(2).flatten(1)
    se = se.sum(1) if norm == "sum" else se.mean(1)
    return (weight.detach() * se).mean()
