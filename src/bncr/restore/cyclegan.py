"""CycleGAN-double-dagger (Zhu et al. 2017) with set-level labels: degraded images (domain A) <-> clean images (B).

The labels are set-level: which training images carry at least one degradation (blur, noise or JPEG) and which
carry none, as the degraded dataset's manifest records them (:func:`bncr.degradations.settings.decisions`); no
pairs. So it is defined only on partially degraded settings (O-Q in Table 4), not on N, where no image is clean.

Losses as CycleGAN's defaults: LSGAN for both discriminators (D's loss halved), L1 cycle losses weighted by
`cycle` (10), identity losses weighted by `identity * cycle` (0.5 * 10), a history pool of 50 generated
images shown to each D. Networks scaled to 32x32: both generators are the restorer
(:class:`bncr.restore.nets.RestorationGenerator`), both discriminators NR-GAN's ResNet D. The restorer
of a CycleGAN run is G_AB (degraded -> clean).
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import torch
import torch.nn as nn

from ..degradations.settings import Setting, decisions
from ..errors import UserError
from .unir import lsgan_d, lsgan_g


def domains(setting: Setting, data_seed: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(indices of degraded images, indices of clean images) among the first n training images."""
    degraded = np.array([any(decisions(setting, data_seed, i)) for i in range(n)], dtype=bool)
    a, b = np.flatnonzero(degraded), np.flatnonzero(~degraded)
    if len(b) == 0:
        fix = ("more training images (--count)" if min(setting.p_blur, setting.p_noise, setting.p_jpeg) < 1
               else "a partially degraded setting such as O, P or Q, or UNIR")
        raise UserError(f"setting {setting.name}: none of the {n} training images is clean, so CycleGAN has no "
                        f"clean domain (the paper leaves it out on N); use {fix}")
    if len(a) == 0:
        raise UserError(f"setting {setting.name}: none of the {n} training images is degraded; nothing to restore")
    return a, b


class ImagePool:
    """CycleGAN's history of generated images: D sees, half of the time, an older fake instead of the newest."""

    def __init__(self, size: int, gen: torch.Generator):
        self.size, self.gen, self.images = size, gen, []

    def __call__(self, fakes: torch.Tensor) -> torch.Tensor:
        if self.size == 0:
            return fakes
        out = []
        for f in fakes.detach():
            if len(self.images) < self.size:
                self.images.append(f)
                out.append(f)
            elif torch.rand((), generator=self.gen) < 0.5:
                i = int(torch.randint(0, self.size, (), generator=self.gen))
                out.append(self.images[i])
                self.images[i] = f
            else:
                out.append(f)
        return torch.stack(out)


def cyclegan_g_terms(G_ab: nn.Module, G_ba: nn.Module, D_a: nn.Module, D_b: nn.Module, a: torch.Tensor,
                     b: torch.Tensor, cycle: float, identity: float) -> tuple[dict[str, torch.Tensor], torch.Tensor,
                                                                            torch.Tensor]:
    """(G's loss terms, fake_b = G_ab(a), fake_a = G_ba(b)) for degraded a and clean b."""
    fake_b, fake_a = G_ab(a), G_ba(b)
    l1 = lambda u, v: (u - v).abs().mean()  # noqa: E731
    terms = {"G_adv": lsgan_g(D_b(fake_b)) + lsgan_g(D_a(fake_a)),
             "G_cycle": cycle * (l1(G_ba(fake_b), a) + l1(G_ab(fake_a), b))}
    if identity > 0:
        terms["G_idt"] = identity * cycle * (l1(G_ab(b), b) + l1(G_ba(a), a))
    return terms, fake_b, fake_a


def cyclegan_d_terms(D_a: nn.Module, D_b: nn.Module, a: torch.Tensor, b: torch.Tensor, fake_a: torch.Tensor,
                     fake_b: torch.Tensor, pool_a: Optional[ImagePool] = None,
                     pool_b: Optional[ImagePool] = None) -> dict[str, torch.Tensor]:
    """Both discriminators' LSGAN losses (fakes detached, through the history pools when given)."""
    fa, fb = fake_a.detach(), fake_b.detach()
    return {"D_a": lsgan_d(D_a(a), D_a(pool_a(fa) if pool_a else fa)),
            "D_b": lsgan_d(D_b(b), D_b(pool_b(fb) if pool_b else fb))}
