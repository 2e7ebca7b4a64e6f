"""How much a learned stage changes the run's own images, against the true stage applied to the same images.

recovery.py compares the learned *parameters* (kernels, q, m_q) with the truth's. Eq. 3 and Eq. 5 blend the degraded
and the undegraded image with a soft mask, so a model may use the mask as a strength knob (m_q = 0.55 compresses
every image at about half strength) and the parameters alone do not say how much an image changes. Here both act on
the same clean fakes x = G_x(z): blur as rms(x * k - x), JPEG as rms(y - u) on the learned stage's input u, both in
grey levels (0..255), per image.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import torch

from ..degradations.settings import Setting
from ..models.pipeline import DegradationPipeline
from ..models.registry import ModelSpec
from .recovery import Row

GREY = 127.5   # model range [-1, 1] -> grey levels


def _rms(a: torch.Tensor) -> np.ndarray:
    return (a.flatten(1).pow(2).mean(1).sqrt() * GREY).cpu().numpy()


def _truth(stage: str, pipe: DegradationPipeline, cfg: dict, setting: Setting, n: int,
           device: torch.device) -> DegradationPipeline:
    """The setting's true simulator for `stage` alone ("blur" or "jpeg"), as AmbientGAN applies it (a bank of 2n
    true draws: AmbientGAN's 4,096 take seconds to draw)."""
    spec = ModelSpec(f"truth-{stage}", f"the true {stage} of the setting", **{stage: "known"})
    tp = DegradationPipeline(spec, setting, pipe.resolution, kernel_size=pipe.kernel_size, bank_size=2 * n,
                             data_seed=int(cfg["data_seed"]), dequantize=bool(cfg["dequantize"]))
    return tp.to(device).eval()


@torch.no_grad()
def stage_strengths(G_x: torch.nn.Module, pipe: DegradationPipeline, cfg: dict, setting: Setting, n: int = 512,
                    seed: int = 0) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{"blur" | "jpeg": (learned, true)} per-image rms changes (grey levels) on n clean fakes, for each stage the
    model learns (generator or parameter) and the setting has."""
    dev = next(G_x.parameters()).device
    g = torch.Generator().manual_seed(seed)
    x = G_x(torch.randn(n, int(cfg["z_dim"]), generator=g).to(dev))
    out = pipe(x, pipe.sample_latents(n, g, dev))
    learned = ("generator", "parameter")
    res = {}
    if pipe.spec.blur in learned and setting.p_blur > 0:
        tp = _truth("blur", pipe, cfg, setting, n, dev)
        res["blur"] = (_rms(out.x_blur - x), _rms(tp(x, tp.sample_latents(n, g, dev)).x_blur - x))
    if pipe.spec.jpeg in learned and setting.p_jpeg > 0:
        tp = _truth("jpeg", pipe, cfg, setting, n, dev)
        u = out.u.clamp(-1, 1)          # y is clamped after the stage; compare both on the same clamped input
        res["jpeg"] = (_rms(out.y - u), _rms(tp(u, tp.sample_latents(n, g, dev)).y - u))
    return res


def strength_rows(strengths: dict[str, tuple[np.ndarray, np.ndarray]]) -> list[Row]:
    """Recovery-table rows: mean change learned vs true, error = learned / true - 1."""
    labels = {"blur": "blur strength on G_x's images: rms of x * k - x (grey levels)",
              "jpeg": "JPEG strength on the stage's input: rms of y - u (grey levels)"}
    rows = []
    for stage, (gen, true) in strengths.items():
        g, t = float(np.mean(gen)), float(np.mean(true))
        err: Optional[float] = g / t - 1 if t > 0 else None
        rows.append(Row(f"{stage}_strength", labels[stage], g, t, err, fmt=".2f", err_fmt="+.0%"))
    return rows
