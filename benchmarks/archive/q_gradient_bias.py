"""How strong, and how consistent in sign, is the adversarial gradient on the JPEG quality q?

For each of several untrained discriminators (residual scale 1, width 16; seeds 0..7) and each q, it
compresses the same 64 dequantised dead-leaves images with the differentiable JPEG at quality q,
maps the result like the pipeline's JPEG stage does, and prints d G_adv / d q summed over the batch, and the
mean per-image |d G_adv / d q|. A sign that stays the same across q for a given D means that D's
arbitrary preference pushes q steadily one way; Adam, which normalises gradient size, then moves q
at full speed however tiny the gradient is. The second table does the same for the Eq. 5 mask m_q.

    python benchmarks/q_gradient_bias.py
"""
from __future__ import annotations

import numpy as np
import torch

from bncr.data import open_dataset
from bncr.degradations.diff_jpeg import diff_jpeg
from bncr.models.losses import g_loss_nonsaturating
from bncr.models.pixels import levels_to_model, model_to_unit
from bncr.nets.resnet import ResNetDiscriminator


def main() -> None:
    torch.set_num_threads(1)
    ds = open_dataset("deadleaves", count=64)
    x8 = torch.from_numpy(np.stack([ds[i] for i in range(64)])).permute(0, 3, 1, 2).float()
    g = torch.Generator().manual_seed(0)
    x = levels_to_model(x8, torch.rand(x8.shape, generator=g))        # as the training loop maps reals
    print("| q | dG_adv/dq summed over 64 images, D seeds 0..7 | mean per-image abs |\n|---|---|---|")
    for qv in (20.0, 50.0, 80.0, 95.0):
        sums, mags = [], []
        for seed in range(8):
            torch.manual_seed(seed)
            D = ResNetDiscriminator(32, 16, residual_factor=1.0)
            q = torch.full((64,), qv, requires_grad=True)
            y = levels_to_model(diff_jpeg(model_to_unit(x), q) * 255, torch.rand(x.shape, generator=g))
            (gq,) = torch.autograd.grad(g_loss_nonsaturating(D(y)), q)
            sums.append(float(gq.sum()))
            mags.append(float(gq.abs().mean()))
        print(f"| {qv:.0f} | {' '.join(f'{v:+.1e}' for v in sums)} | {np.mean(mags):.1e} |")
    # The Eq. 5 mask: y = m_q * JPEG(x, q) + (1 - m_q) * x at m_q = 0.5, q = 50. Compared per unit of the
    # head's logit (sigmoid slopes at the centre: dm_q/dl = 0.25, dq/dl = 25 for q = 100 sigmoid(l)).
    print("\n| D seed | dG_adv/dm_q summed over 64 images | per logit: mask | per logit: q (q = 50) |\n|---|---|---|---|")
    for seed in range(8):
        torch.manual_seed(seed)
        D = ResNetDiscriminator(32, 16, residual_factor=1.0)
        q = torch.full((64,), 50.0, requires_grad=True)
        m = torch.full((64, 1, 1, 1), 0.5, requires_grad=True)
        y_hat = levels_to_model(diff_jpeg(model_to_unit(x), q) * 255, torch.rand(x.shape, generator=g))
        gm, gq = torch.autograd.grad(g_loss_nonsaturating(D(m * y_hat + (1 - m) * x)), (m, q))
        print(f"| {seed} | {float(gm.sum()):+.1e} | {0.25 * float(gm.abs().mean()):.1e} | {25 * float(gq.abs().mean()):.1e} |")


if __name__ == "__main__":
    main()
