"""UNIR (Pajot, de Bezenac, Gallinari, ICLR 2019) with this project's degradation pipeline as its measurement F.

For a real degraded batch y: x^ = G(y); fresh degradation parameters theta' are drawn and y^ = F(x^, theta');
D tells y from y^ (LSGAN). G's loss adds the back-measurement term

    lambda_back * || F(G(y^), theta') - sg(y^) ||^2          (the same theta'; no gradient into the target y^)

which asks G to undo on y^ exactly the degradation that made it. D sees the *degraded* y^ (the first public
release of UNIR showed D the un-degraded G(y), a known flaw; later versions and the BNCR-GAN paper's reading of
UNIR as a conditional AmbientGAN use y^).

F is a :class:`bncr.models.pipeline.DegradationPipeline`: ``F.sample_latents`` draws theta' (kernels or z_k,
noise parameters or z_n, qualities or z_q, the noise image eps and the dequantisation noise), ``F(x, theta')``
applies them. So "the same theta'" is the same latents dict, and two applications with it are the same
function of x.

- UNIR-dagger: F = the setting's true simulator (:func:`known_measurement`; the pipeline's *known* stages with the
  setting's per-degradation rates, AmbientGAN's model).
- BNCR-GAN+UNIR: F = the frozen G_k, G_n, G_q (with their masks) of a trained BNCR-GAN run
  (:func:`learned_measurement`); gradients flow through F to x^, JPEG through the differentiable JPEG.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import torch
import torch.nn as nn

from ..degradations.settings import Setting
from ..errors import UserError
from ..models.pipeline import DegradationPipeline
from ..models.registry import get_model
from .config import default


def known_measurement(setting: Setting, resolution: int, data_seed: int = 0, dequantize: bool = True,
                      bank_size: int = default("bank_size")) -> DegradationPipeline:
    """The setting's true simulator as F (AmbientGAN's stages; a bank of `bank_size` draws independent of the
    images)."""
    if setting.is_clean:
        raise UserError(f"setting {setting.name} degrades nothing: UNIR needs a degradation to invert "
                        f"(choose a setting with blur, noise or JPEG, `bncr settings`)")
    F = DegradationPipeline(get_model("ambientgan"), setting, resolution, data_seed=data_seed, dequantize=dequantize,
                           bank_size=bank_size)
    return F.eval().requires_grad_(False)


def learned_measurement(run: str | Path, device: Any = "cpu") -> tuple[DegradationPipeline, dict, int]:
    """(F, the run's complete config, its resolution): the frozen degradation generators of a BNCR-GAN run (EMA)."""
    from ..api import load_pipeline, load_snapshot
    _, F, cfg = load_pipeline(run, device)
    if not F.generators() and "known" not in F.spec.stages:
        raise UserError(f"{run}: model {cfg['model']} has no degradation stage to use as UNIR's measurement "
                        f"(train bncr-gan, or use --known-setting)")
    return F.requires_grad_(False), cfg, int(load_snapshot(run)["resolution"])


# ---------------------------------------------------------------------------------------------- losses
def lsgan_d(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """LSGAN discriminator loss 0.5 E[(D(real) - 1)^2] + 0.5 E[D(fake)^2]."""
    return 0.5 * ((real_logits - 1) ** 2).mean() + 0.5 * (fake_logits ** 2).mean()


def lsgan_g(fake_logits: torch.Tensor) -> torch.Tensor:
    """LSGAN generator loss E[(D(fake) - 1)^2]."""
    return ((fake_logits - 1) ** 2).mean()


def measure(G: nn.Module, F: DegradationPipeline, y: torch.Tensor,
            gen: Optional[torch.Generator]) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
    """(x^ = G(y), y^ = F(x^, theta'), theta') with fresh parameters theta' drawn from `gen`."""
    x_hat = G(y)
    theta = F.sample_latents(y.shape[0], gen, y.device)
    return x_hat, F(x_hat, theta).y, theta


def back_measurement(G: nn.Module, F: DegradationPipeline, y_hat: torch.Tensor,
                     theta: dict[str, torch.Tensor]) -> torch.Tensor:
    """|| F(G(y^), theta') - sg(y^) ||^2 (mean over values): theta' is the one that made y^, y^ the fixed target."""
    return ((F(G(y_hat), theta).y - y_hat.detach()) ** 2).mean()


def unir_d_terms(D: nn.Module, y: torch.Tensor, y_hat: torch.Tensor) -> dict[str, torch.Tensor]:
    """D's loss: real degraded y vs the re-degraded restorations y^ (detached)."""
    return {"D_adv": lsgan_d(D(y), D(y_hat.detach()))}


def unir_g_terms(G: nn.Module, D: nn.Module, F: DegradationPipeline, y_hat: torch.Tensor,
                 theta: dict[str, torch.Tensor], lambda_back: float) -> dict[str, torch.Tensor]:
    """G's loss terms: LSGAN on y^, and the back-measurement term with the same theta'."""
    terms = {"G_adv": lsgan_g(D(y_hat))}
    if lambda_back > 0:
        terms["G_back"] = lambda_back * back_measurement(G, F, y_hat, theta)
    return terms
