"""LPIPS (Zhang et al. 2018) for the restoration experiments, through the `lpips` package.

LPIPS is a *paired* distance (restored image vs its ground truth), so it is not part of `bncr eval`,
which compares a generator's samples with a dataset. We do not re-implement it: the `lpips` package
(the authors' code, with its calibrated linear layers inside the package) is the reference. Its
AlexNet backbone comes from torchvision, which downloads the ImageNet weights to the torch hub cache
(``~/.cache/torch/hub/checkpoints/alexnet-owt-7be5be79.pth``) on first use. Where the package or the
backbone weights are missing, :func:`lpips_model` raises one clear :class:`~bncr.errors.UserError`
saying what to install or where to put the file.
"""
from __future__ import annotations

import importlib
from typing import Any

import torch

from ..errors import UserError

INSTALL_HINT = ("install it with `pip install lpips` (it needs torchvision matching your torch) on a machine "
                "with internet once, so that torchvision caches the AlexNet weights under "
                "~/.cache/torch/hub/checkpoints/")


def lpips_model(net: str = "alex") -> Any:
    """The `lpips` package's LPIPS network (eval mode, no gradients), or a UserError saying how to get it."""
    if net not in ("alex", "vgg", "squeeze"):
        raise UserError(f"LPIPS backbone must be alex, vgg or squeeze, got {net!r}")
    try:
        lp = importlib.import_module("lpips")
    except Exception as e:  # ImportError, or torchvision failing to import beside this torch
        raise UserError(f"LPIPS needs the `lpips` package, which could not be imported ({type(e).__name__}: "
                        f"{str(e).splitlines()[0] if str(e) else ''}); {INSTALL_HINT}") from None
    try:
        model = lp.LPIPS(net=net, verbose=False)
    except Exception as e:  # typically the backbone download failing offline
        raise UserError(f"LPIPS could not load its {net} backbone weights ({type(e).__name__}: "
                        f"{str(e).splitlines()[0] if str(e) else ''}); {INSTALL_HINT}") from None
    return model.eval().requires_grad_(False)


@torch.no_grad()
def lpips_distance(x: torch.Tensor, y: torch.Tensor, model: Any = None, batch: int = 64) -> torch.Tensor:
    """Per-image LPIPS between x and y, float images (N, 3, H, W) in [-1, 1] (the package's convention)."""
    if x.shape != y.shape or x.dim() != 4 or x.shape[1] != 3:
        raise UserError(f"LPIPS expects two image batches of the same shape (N, 3, H, W), got "
                        f"{tuple(x.shape)} and {tuple(y.shape)}")
    if not (torch.isfinite(x).all() and torch.isfinite(y).all()):
        raise UserError("LPIPS inputs contain NaN or inf")
    model = model if model is not None else lpips_model()
    dev = next(model.parameters()).device
    out = [model(x[i:i + batch].to(dev), y[i:i + batch].to(dev)).flatten().cpu() for i in range(0, len(x), batch)]
    return torch.cat(out)
